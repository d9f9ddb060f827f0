"""An evaluation that runs out of time ends `failed` with the reason, once: interrupted at its soft time limit, or
given up after its worker was lost MAX_ATTEMPTS times (killed, or past the hard limit). Neither is claimed again,
so a run that cannot finish never loops through the sweep."""

from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from mlops_site.runs import MAX_ATTEMPTS
from registry import tasks
from registry.models import Evaluation, EvaluationStatus
from registry.services.evaluations import STALE_RUN, evaluation_request, evaluations_sweep
from tests.factories import register

pytestmark = pytest.mark.django_db
PREDICTIONS = b"label,prediction\n1,1\n0,1\n1,0\n0,0\n"


def pending_evaluation(editor, django_capture_on_commit_callbacks) -> Evaluation:
    version = register("fraud", editor)
    with django_capture_on_commit_callbacks(execute=False):
        return evaluation_request(kind="model", model_version=version, data=PREDICTIONS, filename="preds.csv", actor=editor)


def test_evaluation_past_its_soft_time_limit_ends_failed_saying_so_and_is_not_run_again(
    editor, monkeypatch, django_capture_on_commit_callbacks
):
    evaluation = pending_evaluation(editor, django_capture_on_commit_callbacks)

    def interrupted(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr("registry.evaluation.classification_metrics", interrupted)
    outcome = tasks.evaluation_compute(evaluation.pk)
    evaluation.refresh_from_db()
    Evaluation.objects.filter(pk=evaluation.pk).update(started_at=timezone.now() - STALE_RUN - timedelta(minutes=1))
    with django_capture_on_commit_callbacks(execute=False) as queued:
        swept = evaluations_sweep()

    assert outcome == "timed out"
    assert evaluation.status == EvaluationStatus.FAILED
    assert evaluation.error == "Stopped after 25 minutes, its time limit (running it again would take as long)."
    assert (swept, queued) == (0, [])
    assert tasks.evaluation_compute(evaluation.pk) == "already claimed"


@pytest.mark.parametrize(("attempts", "given_up"), [(MAX_ATTEMPTS - 1, False), (MAX_ATTEMPTS, True)])
def test_evaluation_that_lost_its_worker_max_attempts_times_is_failed_not_queued_again(
    editor, django_capture_on_commit_callbacks, attempts, given_up
):
    evaluation = pending_evaluation(editor, django_capture_on_commit_callbacks)
    Evaluation.objects.filter(pk=evaluation.pk).update(
        status=EvaluationStatus.RUNNING, started_at=timezone.now() - STALE_RUN - timedelta(minutes=1), attempts=attempts
    )

    with django_capture_on_commit_callbacks(execute=False) as queued:
        swept = evaluations_sweep()
    evaluation.refresh_from_db()

    if given_up:
        assert (swept, len(queued), evaluation.status) == (0, 0, EvaluationStatus.FAILED)
        assert evaluation.error == "Gave up after 3 attempts: each lost its worker (killed, or past the time limit of 27 minutes)."
        assert tasks.evaluation_compute(evaluation.pk) == "already claimed"
    else:
        assert (swept, len(queued), evaluation.status) == (1, 1, EvaluationStatus.RUNNING)
