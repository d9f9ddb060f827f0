"""Model evaluations end to end over HTTP: upload predictions and labels, the task computes, the gates read it.
Numbers checked against scikit-learn and fairlearn."""

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference
from sklearn import metrics as sk

from registry.models import Evaluation, RegisteredModel
from registry.services.gates import DEFAULT_MODEL_CHECKS, gate_policy_set
from tests.factories import register
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db
URL = "/api/v1/models/fraud/versions/1"


def predictions_csv(n: int, seed: int, bias: float) -> tuple[bytes, dict]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    group = rng.choice(["a", "b", "c"], n)
    score = np.clip(0.6 * y + rng.normal(0.2, 0.15, n) + np.where(group == "a", bias, 0.0), 0, 1).round(4)
    pred = (score >= 0.5).astype(int)
    text = "label,prediction,score,gender\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in zip(y, pred, score, group, strict=True))
    return text.encode(), {"y": y, "pred": pred, "score": score, "group": group}


def upload(client, body: bytes, **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(f"{URL}/evaluations", {"file": SimpleUploadedFile("preds.csv", body), **fields}, format="multipart")


def test_upload_evaluate_and_gate(celery_eager, api_as, editor, approver, viewer, django_capture_on_commit_callbacks):
    register("fraud", editor)
    gate_policy_set(model=RegisteredModel.objects.get(name="fraud"), checks=DEFAULT_MODEL_CHECKS[:3], actor=approver)
    body, truth = predictions_csv(4000, 1, bias=0.25)

    with django_capture_on_commit_callbacks(execute=True):
        queued = upload(api_as(editor), body, kind="model", options='{"group_column": "gender"}')
    evaluation = api_as(viewer).get(f"/api/v1/evaluations/{queued.json()['id']}").json()
    gates = api_as(viewer).get(f"{URL}/gates").json()

    assert queued.status_code == 202 and evaluation["status"] == "done", evaluation
    m = evaluation["metrics"]
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(truth["y"], truth["pred"]))
    assert m["f1"] == pytest.approx(sk.f1_score(truth["y"], truth["pred"]))
    assert m["roc_auc"] == pytest.approx(sk.roc_auc_score(truth["y"], truth["score"]))
    assert m["demographic_parity_difference"] == pytest.approx(
        demographic_parity_difference(truth["y"], truth["pred"], sensitive_features=truth["group"]))
    assert m["equalized_odds_difference"] == pytest.approx(equalized_odds_difference(truth["y"], truth["pred"], sensitive_features=truth["group"]))
    by = {c["check"]: c for c in gates["checks"]}
    assert by["demographic_parity_difference"]["status"] == "failed" and gates["passed"] is False
    assert by["accuracy"]["source"] == "preds.csv" and by["accuracy"]["evaluation_id"] == queued.json()["id"]
    refused = api_as(editor).post(f"{URL}/promotions", {"to": "production", "reason": "ship"}, format="json")
    assert_error_shape(refused, 409, "gates_failed")


@pytest.mark.parametrize(
    "body, words",
    [
        (b"label,prediction\n1,0\n0\n", "CSV"),
        (b"label,prediction\n1,\n0,1\n", "empty cell"),
        (b"truth,guess\n1,0\n", "No label column"),
        (b"label,prediction,score\n1,1,0.9\n1,0,0.1\n", None),  # a single class: AUC undefined, not a crash
    ],
)
def test_bad_files_fail_with_the_reason_and_never_pass(celery_eager, api_as, editor, viewer, django_capture_on_commit_callbacks, body, words):
    register("fraud", editor)

    with django_capture_on_commit_callbacks(execute=True):
        queued = upload(api_as(editor), body, kind="model")
    evaluation = Evaluation.objects.get(pk=queued.json()["id"])

    if words is None:
        assert evaluation.status == "done" and "roc_auc" not in evaluation.metrics
        assert "one class" in evaluation.details["classification"]["roc_auc_note"]
    else:
        assert evaluation.status == "failed" and words in evaluation.error and evaluation.metrics == {}


def test_requests_are_checked_before_anything_runs(api_as, editor, viewer):
    register("fraud", editor)

    assert_error_shape(upload(api_as(editor), b"", kind="model"), 400)
    assert_error_shape(upload(api_as(editor), b"a\n1\n", kind="data"), 400)  # no schema yet
    assert_error_shape(upload(api_as(editor), b"a\n1\n", kind="model", options='{"colour": 1}'), 400)
    assert upload(api_as(viewer), b"a\n1\n", kind="model").status_code == 403
    assert Evaluation.objects.count() == 0


def test_evaluation_list_takes_a_fixed_number_of_queries(api_as, editor, viewer, django_assert_max_num_queries):
    register("fraud", editor)
    body, _ = predictions_csv(50, 2, bias=0.0)
    for _ in range(6):
        assert upload(api_as(editor), body, kind="model").status_code == 202
    client = api_as(viewer)

    with django_assert_max_num_queries(5):  # token, roles, the version, count, page
        listed = client.get(f"{URL}/evaluations").json()

    assert listed["count"] == 6
    assert {(e["model"], e["version"], e["requested_by"], e["status"]) for e in listed["results"]} == {("fraud", 1, editor.username, "pending")}
