"""An analysis that runs out of time ends `failed` with the reason, once: interrupted at its soft time limit, or
given up by the hourly schedule after its worker was lost MAX_ATTEMPTS times. Neither is queued again."""

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from experiments import services, tasks
from experiments.models import Analysis
from experiments.services.analysis import STALE_RUN
from mlops_site.runs import MAX_ATTEMPTS

pytestmark = pytest.mark.django_db


def test_analysis_past_its_soft_time_limit_ends_failed_saying_so(running, settings, monkeypatch):
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 300
    analysis = services.analysis_request(experiment=running, enqueue=False)

    def interrupted(experiment):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr("experiments.services.analysis.experiment_results_compute", interrupted)
    outcome = tasks.analysis_compute(analysis.pk)
    analysis.refresh_from_db()

    assert outcome == "timed out"
    assert (analysis.status, analysis.error) == ("failed", "Stopped after 5 minutes, its time limit (running it again would take as long).")
    assert tasks.analysis_compute(analysis.pk) == "already claimed"


@pytest.mark.parametrize(("attempts", "given_up"), [(MAX_ATTEMPTS - 1, False), (MAX_ATTEMPTS, True)])
def test_analysis_that_lost_its_worker_max_attempts_times_is_failed_not_queued_again(
    running, settings, django_capture_on_commit_callbacks, attempts, given_up
):
    settings.CELERY_TASK_TIME_LIMIT = 360
    analysis = services.analysis_request(experiment=running, enqueue=False)
    Analysis.objects.filter(pk=analysis.pk).update(status="running", started_at=timezone.now() - STALE_RUN * 2, attempts=attempts)

    with django_capture_on_commit_callbacks(execute=False):
        queued = services.analyses_schedule()  # a fresh analysis of the running experiment, and the stuck one unless given up
    analysis.refresh_from_db()

    if given_up:
        assert (queued, analysis.status) == (1, "failed")
        assert analysis.error == "Gave up after 3 attempts: each lost its worker (killed, or past the time limit of 6 minutes)."
    else:
        assert (queued, analysis.status) == (2, "running")
