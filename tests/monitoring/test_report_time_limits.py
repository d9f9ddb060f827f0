"""A drift report that runs out of time ends `failed` with the reason, once: interrupted at its soft time limit, or
given up by the sweep after its worker was lost MAX_ATTEMPTS times. Neither is queued again."""

from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.utils import timezone

from mlops_site.runs import MAX_ATTEMPTS
from monitoring import services, tasks
from monitoring.models import DriftReport
from monitoring.services.drift_reports import STALE_RUN
from tests.factories import register

pytestmark = pytest.mark.django_db


def pending_report(editor, django_capture_on_commit_callbacks) -> DriftReport:
    version = register("fraud", editor)
    services.reference_set_from_file(model_version=version, data=b"amount\n1\n2\n3\n", actor=editor)
    start = timezone.now() - timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=False):
        return services.drift_report_request(model_version=version, start=start, end=start + timedelta(hours=1))


def test_drift_report_past_its_soft_time_limit_ends_failed_saying_so(editor, settings, monkeypatch, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_SOFT_TIME_LIMIT = 300
    report = pending_report(editor, django_capture_on_commit_callbacks)

    def interrupted(**kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr("monitoring.services.drift_reports.window_columns", interrupted)
    outcome = tasks.drift_report_compute(report.pk)
    report.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.stuck_work_sweep(now=timezone.now() + STALE_RUN * 2)

    assert outcome == "timed out"
    assert (report.status, report.error) == ("failed", "Stopped after 5 minutes, its time limit (running it again would take as long).")
    assert queued == []


@pytest.mark.parametrize(("attempts", "given_up"), [(MAX_ATTEMPTS - 1, False), (MAX_ATTEMPTS, True)])
def test_drift_report_that_lost_its_worker_max_attempts_times_is_failed_not_queued_again(
    editor, settings, django_capture_on_commit_callbacks, attempts, given_up
):
    settings.CELERY_TASK_TIME_LIMIT = 360
    report = pending_report(editor, django_capture_on_commit_callbacks)
    DriftReport.objects.filter(pk=report.pk).update(status="running", started_at=timezone.now() - STALE_RUN * 2, attempts=attempts)

    with django_capture_on_commit_callbacks(execute=False) as queued:
        swept = services.stuck_work_sweep()
    report.refresh_from_db()

    if given_up:
        assert (swept, len(queued), report.status) == (0, 0, "failed")
        assert report.error == "Gave up after 3 attempts: each lost its worker (killed, or past the time limit of 6 minutes)."
    else:
        assert (swept, len(queued), report.status) == (1, 1, "running")
