"""Registry work through a real worker on committed rows: stale promotions expiring (beat), evaluations of a model
(uploaded predictions) and of a prompt (replay provider) queued by the API, and the evaluations sweep."""

from datetime import timedelta

import pytest
from django.utils import timezone
from sklearn import metrics as sk

from registry import services
from registry.models import AuditEvent, Evaluation, EvaluationRow, PromotionRequest
from registry.services import prompts as prompt_services
from tests.factories import register
from tests.prompts.conftest import brief_folder
from tests.registry.test_model_evaluations import predictions_csv, upload

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def finished(evaluation_id: int):
    return Evaluation.objects.filter(pk=evaluation_id, status__in=["done", "failed"]).first()


def test_promotions_expire_stale_beat_entry_expires_an_old_request(worker, editor):
    version = register("fraud", editor)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=editor)
    PromotionRequest.objects.filter(pk=promotion.pk).update(requested_at=timezone.now() - timedelta(days=30))

    expired = worker.beat("registry-expire-stale-promotions").get(timeout=30)

    assert expired == 1
    promotion.refresh_from_db()
    assert promotion.status == "expired"
    assert AuditEvent.objects.filter(action="promotion_expired").count() == 1


def test_evaluation_compute_scores_an_uploaded_predictions_file(worker, api_as, editor):
    register("fraud", editor)
    body, truth = predictions_csv(2000, 3, bias=0.1)

    queued = upload(api_as(editor), body, kind="model", options='{"group_column": "gender"}')
    evaluation = worker.wait_for(lambda: finished(queued.json()["id"]), "the model evaluation finished")

    # The answer is read after the commit that queued the work: a quick worker may have claimed it already.
    assert queued.status_code == 202 and queued.json()["status"] in ("pending", "running", "done")
    assert (evaluation.status, evaluation.attempts, evaluation.error) == ("done", 1, "")
    assert evaluation.metrics["accuracy"] == pytest.approx(sk.accuracy_score(truth["y"], truth["pred"]))
    assert evaluation.metrics["f1"] == pytest.approx(sk.f1_score(truth["y"], truth["pred"]))
    assert evaluation.metrics["roc_auc"] == pytest.approx(sk.roc_auc_score(truth["y"], truth["score"]))


def test_evaluation_compute_runs_a_prompt_over_its_eval_set_with_the_replay_provider(worker, api_as, editor):
    prompt_services.prompts_import(files=brief_folder(), actor=editor)
    responses = {"0": "- moved to Tuesday\n- room 4\n- bring slides", "1": "- sales up 4%\n- call me at jane@example.com\n- Q3"}

    queued = api_as(editor).post("/api/v1/prompts/summarize/versions/2/evaluations", {"provider": "replay", "responses": responses}, format="json")
    evaluation = worker.wait_for(lambda: finished(queued.json()["id"]), "the prompt evaluation finished")

    assert queued.status_code == 202
    assert evaluation.status == "done", evaluation.error
    assert evaluation.metrics["format_valid"] == 1.0 and evaluation.metrics["safety"] == 0.5  # one output leaks an e-mail address
    rows = EvaluationRow.objects.filter(evaluation=evaluation).order_by("index")
    assert [r.output for r in rows] == [responses["0"], responses["1"]]


def test_evaluations_sweep_queues_an_evaluation_a_broker_outage_left_pending(worker, broker_down, api_as, editor):
    register("fraud", editor)
    body, _ = predictions_csv(200, 4, bias=0.0)
    with broker_down():
        queued = upload(api_as(editor), body, kind="model")
    evaluation_id = queued.json()["id"]

    fresh = worker.beat("registry-evaluations-sweep").get(timeout=30)  # too recent: its message may still be on its way
    Evaluation.objects.filter(pk=evaluation_id).update(requested_at=timezone.now() - timedelta(minutes=11))
    swept = worker.beat("registry-evaluations-sweep").get(timeout=30)
    evaluation = worker.wait_for(lambda: finished(evaluation_id), "the swept evaluation finished")

    assert queued.status_code == 202 and fresh == 0 and swept == 1
    assert (evaluation.status, evaluation.attempts) == ("done", 1)
