"""Quality gates on the pages: the gate card and the approval it blocks, evaluations, gate policies, dataset schemas."""

import io
import json
import re

import pytest
from django.core.files.uploadedfile import InMemoryUploadedFile, SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from registry import services
from registry.models import AuditEvent, DatasetSchema, Evaluation, EvaluationRow, GatePolicy, PromotionRequest, PromptVersion
from registry.services.gates import DEFAULT_MODEL_CHECKS, gate_policy_set
from registry.services.schemas import dataset_schema_set
from tests.factories import register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db

# 8 rows, worked out by hand: accuracy 6/8; confusion [[3, 1], [1, 3]]; group a: selection 3/4, TPR 1, FPR 1/2;
# group b: selection 1/4, TPR 1/2, FPR 0; DPD = 0.5, EOD = max(0.5, 0.5) = 0.5.
PREDICTIONS = b"""label,prediction,score,gender
1,1,0.9,a
1,1,0.8,a
0,0,0.2,a
0,1,0.6,a
1,0,0.4,b
1,1,0.7,b
0,0,0.1,b
0,0,0.3,b
"""
PERFECT = b"label,prediction\n1,1\n0,0\n1,1\n0,0\n"


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def evaluated(version, kind: str = "model", source: str = "holdout.csv", **metrics) -> Evaluation:
    field = "prompt_version" if isinstance(version, PromptVersion) else "model_version"
    return Evaluation.objects.create(**{field: version}, kind=kind, status="done", finished_at=timezone.now(), source=source, metrics=metrics)


def upload(client, name: str, version: int, body: bytes, filename: str = "preds.csv", **fields):
    return client.post(f"/models/{name}/versions/{version}/evaluations/", {"file": SimpleUploadedFile(filename, body), **fields}, follow=True)


def test_a_viewers_evaluation_upload_is_refused_before_the_file_is_read(viewer, editor, monkeypatch):
    register("fraud", editor)
    reads = []
    monkeypatch.setattr(InMemoryUploadedFile, "read", property(lambda self: lambda *args: reads.append(self.name) or self.file.read(*args)))
    body = io.BytesIO(b"label,prediction\n1,1\n")
    body.name = "preds.csv"

    response = logged_in(viewer).post("/models/fraud/versions/1/evaluations/", {"file": body}, follow=True)

    assert "Running an evaluation needs the editor role." in " ".join(messages_of(response))
    assert reads == []
    assert not Evaluation.objects.exists()


def test_a_viewers_schema_upload_is_refused_before_the_file_is_read(viewer, editor, monkeypatch):
    register("fraud", editor)
    reads = []
    monkeypatch.setattr(InMemoryUploadedFile, "read", property(lambda self: lambda *args: reads.append(self.name) or self.file.read(*args)))
    body = io.BytesIO(b"amount,country\n5,DE\n")
    body.name = "ref.csv"

    response = logged_in(viewer).post("/models/fraud/schema/", {"action": "infer", "file": body})

    assert response.status_code == 403
    assert reads == []
    assert not DatasetSchema.objects.exists()


@pytest.fixture
def fraud(editor):
    return register("fraud", editor)


@pytest.fixture
def gated(fraud, approver):
    """fraud v1 with a pending staging request made before the policy existed, then the default policy."""
    promotion = services.promotion_request_create(version=fraud, to_stage="staging", reason="ship it", actor=fraud.created_by)
    gate_policy_set(model=fraud.model, checks=DEFAULT_MODEL_CHECKS, actor=approver)
    return promotion


@pytest.fixture
def prompts(editor):
    services.prompts_import(files=brief_folder(), actor=editor)
    return PromptVersion.objects.get(prompt__name="summarize", version=3)


@pytest.mark.parametrize("url", ["/models/fraud/gates/", "/models/fraud/schema/", "/prompts/summarize/gates/", "/evaluations/1/"])
def test_gate_pages_need_login(url):
    response = Client().get(url)

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_gate_pages_are_helpful_when_nothing_is_set(viewer, fraud, prompts):
    client = logged_in(viewer)

    model_gates = client.get("/models/fraud/gates/").content.decode()
    prompt_gates = client.get("/prompts/summarize/gates/").content.decode()
    schema = client.get("/models/fraud/schema/").content.decode()
    version = client.get("/models/fraud/versions/1/").content.decode()

    assert 'id="no-policy"' in model_gates and 'id="policy-form"' not in model_gates and "needs the approver role" in model_gates
    assert 'id="no-policy"' in prompt_gates
    assert 'id="no-schema"' in schema and 'id="schema-form"' not in schema
    assert 'id="no-gate-policy"' in version and 'href="/models/fraud/gates/"' in version
    assert "No evaluations yet." in version and 'id="evaluate-form"' not in version


def test_model_and_prompt_pages_link_their_gate_policy(viewer, fraud, prompts):
    client = logged_in(viewer)

    assert 'href="/models/fraud/gates/"' in client.get("/models/fraud/").content.decode()
    assert 'href="/models/fraud/schema/"' in client.get("/models/fraud/").content.decode()
    assert 'href="/prompts/summarize/gates/"' in client.get("/prompts/summarize/").content.decode()


def test_unknown_evaluations_models_and_prompts_are_404(viewer, fraud):
    client = logged_in(viewer)

    assert client.get("/evaluations/999/").status_code == 404
    assert client.get("/evaluations/99999999999999999999999/").status_code == 404
    assert client.get("/models/nope/gates/").status_code == 404
    assert client.get("/models/nope/schema/").status_code == 404
    assert client.get("/prompts/nope/gates/").status_code == 404


# --- the gate card and the approval ------------------------------------------------------------


def test_gate_card_shows_passed_failed_and_never_ran(viewer, fraud, gated):
    first = evaluated(fraud, accuracy=0.95, f1=0.85, demographic_parity_difference=0.04)

    html = logged_in(viewer).get("/models/fraud/versions/1/").content.decode()

    card = re.search(r'<section class="card gate-card".*?</section>', html, re.S).group(0)
    assert 'data-gates="failed"' in card
    rows = dict(re.findall(r'<tr data-check="(\w+)" data-status="(\w+)">', card))
    assert rows == {"accuracy": "passed", "f1": "failed", "demographic_parity_difference": "passed", "schema_violations": "not_run"}
    accuracy = re.search(r'data-check="accuracy".*?</tr>', card, re.S).group(0)
    assert "0.95" in accuracy and "&gt;= 0.92" in accuracy and f'href="/evaluations/{first.pk}/"' in accuracy and "holdout.csv" in accuracy
    assert "never ran" in re.search(r'data-check="schema_violations".*?</tr>', card, re.S).group(0)
    assert "Gates failed: f1 0.85 &lt; 0.9; schema_violations never ran" in card


def test_gate_card_turns_green_when_every_check_passes(viewer, fraud, gated):
    evaluated(fraud, accuracy=0.95, f1=0.93, demographic_parity_difference=0.02)
    evaluated(fraud, kind="data", source="batch.csv", schema_violations=0)

    html = logged_in(viewer).get("/models/fraud/versions/1/").content.decode()

    assert 'data-gates="passed"' in html and 'id="gate-reason"' not in html


def test_approve_button_is_disabled_with_the_reason_and_the_approval_is_refused(celery_eager, approver, fraud, gated):
    evaluated(fraud, accuracy=0.88)
    client = logged_in(approver)

    html = client.get("/models/fraud/versions/1/").content.decode()
    refused = client.post(f"/promotions/{gated.pk}/approve/", {"next": "/models/fraud/versions/1/"}, follow=True)

    button = re.search(rf'<button[^>]*data-testid="approve-{gated.pk}"[^>]*>', html).group(0)
    assert "disabled" in button
    assert "Gates failed: accuracy 0.88 &lt; 0.92; f1 never ran; demographic_parity_difference never ran; schema_violations never ran" in html
    assert f'id="override-{gated.pk}"' not in html  # approvers cannot override; admins can
    assert any("Gates not passed" in m and "accuracy 0.88 < 0.92" in m for m in messages_of(refused))
    assert PromotionRequest.objects.get(pk=gated.pk).status == "pending"


def test_admin_overrides_failed_gates_with_a_reason_and_it_is_audited(admin_user, fraud, gated):
    client = logged_in(admin_user)

    html = client.get("/models/fraud/versions/1/").content.decode()
    without_reason = client.post(f"/promotions/{gated.pk}/approve/", {"override_reason": "  "}, follow=True)
    overridden = client.post(f"/promotions/{gated.pk}/approve/", {"override_reason": "hotfix for incident 42", "comment": "ok"}, follow=True)

    form = re.search(rf'<form[^>]*id="override-{gated.pk}".*?</form>', html, re.S).group(0)
    assert '<textarea name="override_reason" required' in form
    assert any("Gates not passed" in m for m in messages_of(without_reason))
    assert any("is now in staging" in m for m in messages_of(overridden))
    assert PromotionRequest.objects.get(pk=gated.pk).status == "approved"
    event = AuditEvent.objects.get(action="gate_overridden")
    assert event.reason == "hotfix for incident 42" and event.actor_name == "root" and "accuracy never ran" in event.extra["failed"]


def test_not_enforced_policy_shows_the_gates_but_does_not_block(approver, fraud, gated):
    gate_policy_set(model=fraud.model, checks=DEFAULT_MODEL_CHECKS, enforced=False, actor=approver)
    client = logged_in(approver)

    html = client.get("/models/fraud/versions/1/").content.decode()
    approved = client.post(f"/promotions/{gated.pk}/approve/", follow=True)

    assert 'data-gates="failed"' in html and "not enforced" in html
    assert "disabled" not in re.search(rf'<button[^>]*data-testid="approve-{gated.pk}"[^>]*>', html).group(0)
    assert any("is now in staging" in m for m in messages_of(approved))


def test_request_form_warns_is_refused_and_only_an_admin_overrides(editor, admin_user, fraud, gated):
    editor_page = logged_in(editor).get("/models/fraud/versions/1/").content.decode()
    refused = logged_in(editor).post("/models/fraud/versions/1/promote/", {"to": "production", "reason": "ship"}, follow=True)
    forbidden = logged_in(editor).post("/models/fraud/versions/1/promote/", {"to": "production", "reason": "ship", "override_reason": "me"}, follow=True)
    admin_page = logged_in(admin_user).get("/models/fraud/versions/1/").content.decode()
    overridden = logged_in(admin_user).post("/models/fraud/versions/1/promote/", {"to": "production", "reason": "ship", "override_reason": "board said so"},
                                            follow=True)

    promote_form = re.search(r'<form[^>]*id="promote-form".*?</form>', editor_page, re.S).group(0)
    assert "Gates failed: accuracy never ran" in promote_form and "override_reason" not in promote_form
    assert "override_reason" in re.search(r'<form[^>]*id="promote-form".*?</form>', admin_page, re.S).group(0)
    assert any("Gates not passed" in m for m in messages_of(refused))
    assert any("Only an admin" in m for m in messages_of(forbidden))
    assert any("Requested fraud v1" in m for m in messages_of(overridden))
    assert PromotionRequest.objects.filter(to_stage="production", status="pending").count() == 1
    assert AuditEvent.objects.get(action="gate_overridden").reason == "board said so"


def test_prompt_version_page_has_the_gate_card_and_blocks_the_prod_approval(approver, prompts):
    pending = PromotionRequest.objects.filter(prompt_version__prompt__name="summarize", status="pending").first()
    gate_policy_set(prompt=pending.prompt, checks=[{"check": "format_valid", "op": ">", "threshold": 0.95}], actor=approver)
    evaluated(pending.prompt_version, kind="prompt", source="eval set v1 (2 rows)", format_valid=0.5)

    html = logged_in(approver).get(f"/prompts/summarize/versions/{pending.prompt_version.version}/").content.decode()

    assert 'data-gates="failed"' in html and 'href="/prompts/summarize/gates/"' in html
    assert "Gates failed: format_valid 0.5 &lt;= 0.95" in html
    assert "disabled" in re.search(rf'<button[^>]*data-testid="approve-{pending.pk}"[^>]*>', html).group(0)


# --- evaluations ---------------------------------------------------------------------------------


def test_editor_uploads_predictions_and_the_gate_reads_the_result(celery_eager, editor, approver, fraud, django_capture_on_commit_callbacks):
    gate_policy_set(model=fraud.model, checks=[{"check": "accuracy", "op": ">=", "threshold": 0.9}], actor=approver)
    client = logged_in(editor)

    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, "fraud", 1, PERFECT, label_column="label", prediction_column=" prediction ", group_column="", data_version="holdout-june")
    evaluation = Evaluation.objects.get()

    assert response.redirect_chain[-1][0].endswith("/models/fraud/versions/1/#evaluations")
    assert messages_of(response) == [f"Evaluation #{evaluation.pk} queued; a worker computes it."]
    assert evaluation.status == "done"
    assert evaluation.options == {"label_column": "label", "prediction_column": "prediction", "data_version": "holdout-june"}
    html = client.get("/models/fraud/versions/1/").content.decode()
    row = re.search(rf'<tr data-evaluation="{evaluation.pk}" data-status="done">.*?</tr>', html, re.S).group(0)
    assert "accuracy <b>1</b>" in row and "preds.csv · holdout-june" in row
    assert 'data-gates="passed"' in html


def test_a_viewer_cannot_run_an_evaluation(viewer, fraud):
    response = upload(logged_in(viewer), "fraud", 1, PERFECT)

    assert any("needs the editor role" in m for m in messages_of(response))
    assert not Evaluation.objects.exists()


@pytest.mark.parametrize(("fields", "body", "words"), [
    ({"kind": "data"}, PERFECT, "has no dataset schema yet"),
    ({"kind": "model"}, b"", "it is empty"),
    ({"kind": "weather"}, PERFECT, "kind: one of"),
])
def test_a_refused_upload_shows_the_reason_and_queues_nothing(editor, fraud, fields, body, words):
    response = upload(logged_in(editor), "fraud", 1, body, **fields)

    assert any(words in m for m in messages_of(response)), messages_of(response)
    assert not Evaluation.objects.exists()


def test_evaluation_page_shows_the_confusion_matrix_and_the_fairness_table(celery_eager, editor, viewer, fraud, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        upload(logged_in(editor), "fraud", 1, PREDICTIONS, group_column="gender")
    evaluation = Evaluation.objects.get()

    html = logged_in(viewer).get(f"/evaluations/{evaluation.pk}/").content.decode()

    assert evaluation.status == "done", evaluation.error
    figures = dict(re.findall(r"<tr><th>([a-z_]+)</th><td class=\"num\">([^<]+)</td></tr>", html))
    assert figures["accuracy"] == "0.75" and figures["demographic_parity_difference"] == "0.5" and figures["equalized_odds_difference"] == "0.5"
    confusion = re.search(r'<section class="card" id="confusion">.*?</section>', html, re.S).group(0)
    assert [re.findall(r'<td class="num">(\d+)</td>', row) for row in re.findall(r"<tr><th>\d</th>.*?</tr>", confusion)] == [["3", "1"], ["1", "3"]]
    groups = {cells[0]: cells[1:] for cells in (re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr><td>.*?</tr>",
              re.search(r'id="fairness-groups".*?</table>', html, re.S).group(0)))}
    assert groups == {"a": ["4", "0.75", "1", "0.5", "0.75"], "b": ["4", "0.25", "0.5", "0", "0.75"]}
    assert "Fairness by gender" in html and 'href="/models/fraud/versions/1/"' in html


def test_evaluation_page_names_groups_with_undefined_rates_and_the_smallest_group(celery_eager, editor, viewer, fraud, django_capture_on_commit_callbacks):
    body = b"label,prediction,gender\n1,1,a\n0,1,a\n0,0,a\n1,0,a\n0,1,c\n0,0,c\n1,1,b\n1,1,b\n1,0,b\n"  # c: no positives, b: no negatives
    with django_capture_on_commit_callbacks(execute=True):
        upload(logged_in(editor), "fraud", 1, body, group_column="gender")
    evaluation = Evaluation.objects.get()

    html = logged_in(viewer).get(f"/evaluations/{evaluation.pk}/").content.decode()

    assert evaluation.status == "done", evaluation.error
    undefined = re.search(r'id="fairness-undefined">(.*?)</p>', html, re.S).group(1)
    assert undefined == "Undefined rates, counted as 0 as fairlearn counts them: b (FPR, 3 rows), c (TPR, 2 rows)."
    assert "Smallest group: c with 2 rows." in html
    groups = {cells[0]: cells[1:] for cells in (re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr><td>.*?</tr>",
              re.search(r'id="fairness-groups".*?</table>', html, re.S).group(0)))}
    assert groups["c"][2] == "undefined (0)" and groups["b"][3] == "undefined (0)"


def test_evaluation_page_lists_data_validation_violations(celery_eager, editor, viewer, fraud, django_capture_on_commit_callbacks):
    schema = {"columns": [{"name": "amount", "type": "numeric", "min": 0}, {"name": "country", "type": "categorical", "categories": ["DE", "FR"]}]}
    dataset_schema_set(model=fraud.model, schema=schema, actor=editor)
    with django_capture_on_commit_callbacks(execute=True):
        upload(logged_in(editor), "fraud", 1, b"amount,country\n5,DE\n-1,FR\n-2,XX\n", filename="batch.csv", kind="data")
    evaluation = Evaluation.objects.get()

    html = logged_in(viewer).get(f"/evaluations/{evaluation.pk}/").content.decode()

    section = re.search(r'<section class="card" id="violations">.*?</section>', html, re.S).group(0)
    below = re.search(r'<tr data-kind="below_min">.*?</tr>', section, re.S).group(0)
    assert "amount" in below and '<td class="num">2</td>' in below and "2: -1" in below and "3: -2" in below
    assert "country" in re.search(r'<tr data-kind="unknown_category">.*?</tr>', section, re.S).group(0)


def test_failed_and_pending_evaluations_say_so(viewer, fraud):
    failed = Evaluation.objects.create(model_version=fraud, kind="model", status="failed", error="No label column 'label' in the file.")
    pending = Evaluation.objects.create(model_version=fraud, kind="model")
    client = logged_in(viewer)

    failed_html = client.get(f"/evaluations/{failed.pk}/").content.decode()
    pending_html = client.get(f"/evaluations/{pending.pk}/").content.decode()

    assert "No label column &#x27;label&#x27; in the file." in failed_html and 'http-equiv="refresh"' not in failed_html
    assert 'id="in-progress"' in pending_html and 'http-equiv="refresh"' in pending_html


def test_prompt_evaluation_page_summarises_criteria_and_paginates_rows(viewer, prompts, django_assert_max_num_queries):
    evaluation = evaluated(prompts, kind="prompt", source="eval set v1 (60 rows)", format_valid=1.0, relevance=None)
    evaluation.details = {"criteria": {"bullet_count": {"type": "format_check", "runs": 60, "passed": 60, "failed": 0, "not_run": 0, "errors": 0,
                                                        "pass_rate": 1.0, "mean_value": 1.0}}}
    evaluation.save()
    EvaluationRow.objects.bulk_create(
        EvaluationRow(evaluation=evaluation, index=i, input={"text": f"text {i}"}, output=f"- out {i}", expected=f"- exp {i}",
                      checks=[{"name": "bullet_count", "type": "format_check", "status": "passed", "value": 1.0, "detail": ""}])
        for i in range(60)
    )
    client = logged_in(viewer)

    with django_assert_max_num_queries(7):  # session, user, roles, evaluation, row count, row page
        first = client.get(f"/evaluations/{evaluation.pk}/").content.decode()
    second = client.get(f"/evaluations/{evaluation.pk}/?page=2").content.decode()

    summary = re.search(r'<tr data-criterion="bullet_count">.*?</tr>', first, re.S).group(0)
    assert "format_check" in summary and '<td class="num">60</td>' in summary
    assert first.count('<tr data-row="') == 50 and second.count('<tr data-row="') == 10
    assert "page 1 of 2" in first and "- out 59" in second and "&quot;text&quot;: &quot;text 59&quot;" in second
    assert re.search(r"<th>relevance</th><td class=\"num\">—</td>", first)


def test_run_prompt_evaluation_button_queues_one(editor, viewer, prompts, settings, django_capture_on_commit_callbacks):
    client = logged_in(editor)

    page = client.get("/prompts/summarize/versions/3/").content.decode()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = client.post("/prompts/summarize/versions/3/evaluations/", {"provider": "replay"}, follow=True)
    refused = client.post("/prompts/summarize/versions/3/evaluations/", {"provider": "openai"}, follow=True)
    settings.MLOPS_LLM_BASE_URL = "http://llm.example"
    with_llm = client.get("/prompts/summarize/versions/3/").content.decode()
    by_viewer = logged_in(viewer).post("/prompts/summarize/versions/3/evaluations/", {}, follow=True)

    form = re.search(r'<form[^>]*id="run-evaluation-form".*?</form>', page, re.S).group(0)
    assert 'name="provider" value="replay"' in form and "openai" not in form
    evaluation = Evaluation.objects.get()
    assert evaluation.kind == "prompt" and evaluation.options == {"provider": "replay"} and len(callbacks) == 1
    assert messages_of(queued) == [f"Evaluation #{evaluation.pk} queued; a worker computes it."]
    assert any("MLOPS_LLM_BASE_URL" in m for m in messages_of(refused))
    assert '<option value="openai">openai</option>' in with_llm
    assert any("needs the editor role" in m for m in messages_of(by_viewer)) and Evaluation.objects.count() == 1


@pytest.mark.parametrize(("url", "limit"), [("/models/fraud/versions/1/", 12), ("/prompts/summarize/versions/3/", 14)])
def test_version_pages_use_a_constant_number_of_queries(approver, fraud, gated, prompts, django_assert_max_num_queries, url, limit):
    # 5 more than before the gates: the policy and the finished evaluations (gate status), the newest A/B test result,
    # the evaluation count and page.
    gate_policy_set(prompt=prompts.prompt, checks=[{"check": "format_valid", "op": ">", "threshold": 0.95}], actor=approver)
    for i in range(30):
        evaluated(fraud, accuracy=0.9 + i / 1000, f1=0.9)
        evaluated(prompts, kind="prompt", format_valid=0.9)
    client = logged_in(approver)

    with django_assert_max_num_queries(limit):
        html = client.get(url).content.decode()

    assert 'data-gates="failed"' in html and html.count("<tr data-evaluation=") == 20


# --- gate policy pages -------------------------------------------------------------------------


def policy_post(client, url: str, rows: list[tuple[str, str, str]], **extra):
    data = {"check": [r[0] for r in rows], "op": [r[1] for r in rows], "threshold": [r[2] for r in rows], **extra}
    return client.post(url, data)


def test_approver_edits_the_model_policy(approver, fraud):
    client = logged_in(approver)

    saved = policy_post(client, "/models/fraud/gates/", [("accuracy", ">=", "0.9"), ("", ">=", ""), ("f1", ">", "0.8")], enforced="on", action="save")
    page = client.get("/models/fraud/gates/").content.decode()

    assert saved.status_code == 302
    policy = GatePolicy.objects.get(model=fraud.model)
    assert policy.checks == [{"check": "accuracy", "op": ">=", "threshold": 0.9}, {"check": "f1", "op": ">", "threshold": 0.8}] and policy.enforced
    assert re.search(r'<tr data-check="accuracy"><td>accuracy</td><td class="num">&gt;= 0.9</td></tr>', page)
    assert 'value="accuracy"' in page and "bob" in page
    assert AuditEvent.objects.filter(action="gate_policy_set", subject="model:fraud").count() == 1


def test_policy_form_removes_adds_and_sets_the_defaults(approver, fraud):
    gate_policy_set(model=fraud.model, checks=[{"check": "accuracy", "op": ">=", "threshold": 0.9}, {"check": "f1", "op": ">=", "threshold": 0.8}],
                    actor=approver)
    client = logged_in(approver)

    added = policy_post(client, "/models/fraud/gates/", [("accuracy", ">=", "0.9"), ("f1", ">=", "0.8")], enforced="on", action="add")
    removed = policy_post(client, "/models/fraud/gates/", [("accuracy", ">=", "0.9"), ("f1", ">=", "0.8")], remove="0", action="save")
    after_remove = GatePolicy.objects.get(model=fraud.model)
    assert after_remove.checks == [{"check": "f1", "op": ">=", "threshold": 0.8}] and not after_remove.enforced
    defaults = client.post("/models/fraud/gates/", {"action": "defaults", "enforced": "on"})

    assert added.status_code == 200 and added.content.decode().count('class="policy-row"') == 3
    assert removed.status_code == 302
    policy = GatePolicy.objects.get(model=fraud.model)
    assert defaults.status_code == 302 and policy.checks == DEFAULT_MODEL_CHECKS and policy.enforced


@pytest.mark.parametrize(("rows", "words"), [
    ([("accuracy", ">=", "high")], "checks[0]: threshold: a finite number."),
    ([("accuracy", ">=", "0.9"), ("accuracy", "<", "1")], "accuracy is listed twice"),
    ([("accuracy", "=~", "0.9")], "op: one of"),
    ([("", ">=", "0.9")], "check: a figure name"),
])
def test_a_bad_policy_is_shown_with_the_reason_and_nothing_is_saved(approver, fraud, rows, words):
    gate_policy_set(model=fraud.model, checks=[{"check": "f1", "op": ">=", "threshold": 0.8}], actor=approver)

    response = policy_post(logged_in(approver), "/models/fraud/gates/", rows, enforced="on", action="save")

    html = response.content.decode()
    assert response.status_code == 400 and words in re.search(r'id="policy-error">(.*?)</p>', html, re.S).group(1).replace("&lt;", "<")
    assert f'value="{rows[0][0]}"' in html  # the input comes back as typed
    assert GatePolicy.objects.get(model=fraud.model).checks == [{"check": "f1", "op": ">=", "threshold": 0.8}]


def test_editors_and_viewers_cannot_change_a_policy(editor, viewer, fraud):
    editor_page = logged_in(editor).get("/models/fraud/gates/").content.decode()

    for user in (editor, viewer):
        response = policy_post(logged_in(user), "/models/fraud/gates/", [("accuracy", ">=", "0.9")], action="save")
        assert response.status_code == 403 and "needs the approver role" in response.content.decode()
    assert 'id="policy-form"' not in editor_page
    assert not GatePolicy.objects.exists()


def test_approver_sets_a_prompt_policy_with_its_criteria_offered(approver, prompts):
    client = logged_in(approver)

    page = client.get("/prompts/summarize/gates/").content.decode()
    saved = policy_post(client, "/prompts/summarize/gates/", [("bullet_count", ">=", "1")], enforced="on", action="save")

    assert '<option value="bullet_count">' in page and '<option value="format_valid">' in page
    assert saved.status_code == 302
    assert GatePolicy.objects.get(prompt=prompts.prompt).checks == [{"check": "bullet_count", "op": ">=", "threshold": 1.0}]


# --- dataset schema page -----------------------------------------------------------------------


def test_editor_infers_the_schema_from_a_reference_file(editor, viewer, fraud):
    response = logged_in(editor).post("/models/fraud/schema/", {"action": "infer", "file": SimpleUploadedFile("ref.csv", b"amount,country\n5,DE\n10.5,FR\n")})
    html = logged_in(viewer).get("/models/fraud/schema/").content.decode()

    assert response.status_code == 302
    assert DatasetSchema.objects.get(model=fraud.model).source == "inferred from ref.csv (2 rows)"
    amount = re.search(r'<tr data-column="amount">.*?</tr>', html, re.S).group(0)
    assert "numeric" in amount and "5 … 10.5" in amount
    country = re.search(r'<tr data-column="country">.*?</tr>', html, re.S).group(0)
    assert '<span class="tag">DE</span>' in country and '<span class="tag">FR</span>' in country
    assert 'id="infer-form"' not in html


def test_editor_edits_the_schema_json(editor, fraud):
    schema = {"columns": [{"name": "age", "type": "integer", "min": 18, "max": 99, "nullable_share": 0.05}]}
    client = logged_in(editor)

    response = client.post("/models/fraud/schema/", {"action": "edit", "schema": json.dumps(schema)})
    html = client.get("/models/fraud/schema/").content.decode()

    assert response.status_code == 302
    assert DatasetSchema.objects.get(model=fraud.model).schema["columns"][0]["max"] == 99
    row = re.search(r'<tr data-column="age">.*?</tr>', html, re.S).group(0)
    assert "18 … 99" in row and "0.05" in row


@pytest.mark.parametrize(("text", "words"), [
    ("{not json", "The schema is not valid JSON"),
    ('{"columns": [{"name": "age", "type": "text"}]}', "unknown &#x27;type&#x27;"),
    ("[]", "Schema refused"),
])
def test_a_bad_schema_is_shown_with_the_reason_and_nothing_is_saved(editor, fraud, text, words):
    response = logged_in(editor).post("/models/fraud/schema/", {"action": "edit", "schema": text})

    html = response.content.decode()
    assert response.status_code == 400 and words in re.search(r'id="schema-error">(.*?)</p>', html, re.S).group(1)
    assert text.replace('"', "&quot;") in html  # the text comes back as typed
    assert not DatasetSchema.objects.exists()


def test_a_viewer_cannot_set_a_schema(viewer, fraud):
    response = logged_in(viewer).post("/models/fraud/schema/", {"action": "edit", "schema": '{"columns": [{"name": "a", "type": "numeric"}]}'})

    assert response.status_code == 403 and not DatasetSchema.objects.exists()


def test_infer_without_a_file_or_with_a_bad_file_says_why(editor, fraud):
    client = logged_in(editor)

    missing = client.post("/models/fraud/schema/", {"action": "infer"})
    bad = client.post("/models/fraud/schema/", {"action": "infer", "file": SimpleUploadedFile("ref.csv", b"")})

    assert missing.status_code == 400 and "Choose a reference file" in missing.content.decode()
    assert bad.status_code == 400 and "Reference file refused" in bad.content.decode()
    assert not DatasetSchema.objects.exists()
