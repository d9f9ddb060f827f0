"""The sweep of monitoring work that a broker outage or a dead worker left behind.

A message can be lost (Redis was down when the row was written: mlops_site.queue logs it and the
row stays pending) and a worker can die in the middle of a task (its row stays `running`). Beat runs
`stuck_work_sweep` every 10 minutes; it queues such work again, and a second delivery of a task does
nothing (a report's conditional claim, a notification's notified_at). Budget alerts are re-sent by
`budgets_evaluate` itself, every 5 minutes.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from mlops_site.queue import enqueue_on_commit

from ..models import AlertEvent, DriftReport, ReportStatus
from .drift_reports import STALE_RUN, drift_reports_give_up
from .notifications import notification_due

BATCH = 500  # per kind and run: an outage's backlog drains over a few runs instead of flooding the queue at once


def stuck_work_sweep(*, now: datetime | None = None) -> int:
    """Queue again the drift reports still pending after STALE_RUN (their message was lost) or running for longer than
    STALE_RUN (their worker died: the claim takes them back then; after MAX_ATTEMPTS they are failed instead,
    mlops_site.runs), and the alert notifications not sent after
    STALE_RUN. Returns how many tasks were queued."""
    now = now or timezone.now()
    drift_reports_give_up(DriftReport.objects.all(), now=now)
    cutoff = now - STALE_RUN
    stuck = Q(status=ReportStatus.PENDING, requested_at__lt=cutoff) | Q(status=ReportStatus.RUNNING, started_at__lt=cutoff)
    report_ids = list(DriftReport.objects.filter(stuck).values_list("pk", flat=True)[:BATCH])
    for report_id in report_ids:
        enqueue_on_commit("monitoring.tasks.drift_report_compute", report_id)
    event_ids = list(AlertEvent.objects.filter(notification_due(now=now), silenced=False, at__lt=cutoff).values_list("pk", flat=True)[:BATCH])
    for event_id in event_ids:
        enqueue_on_commit("monitoring.tasks.alert_notify", event_id)
    return len(report_ids) + len(event_ids)
