"""Celery tasks of monitoring: thin, idempotent, each calls one service."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError

from . import services
from .services.notifications import notification_retry_in


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=5, retry_backoff=True, retry_jitter=True)
def drift_report_compute(report_id: int) -> str:
    """Run one drift report. acks_late + the conditional claim: a worker dying mid-report means a redelivery finishes it
    once. Past its soft time limit the report ends failed, saying so."""
    try:
        report = services.drift_report_run(report_id=report_id)
    except SoftTimeLimitExceeded:
        services.drift_report_time_out(report_id=report_id)
        return "timed out"
    return report.status if report else "already claimed"


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=5, retry_backoff=True, retry_jitter=True)
def alert_notify(event_id: int) -> str:
    """Try to send one alert state change (webhook, e-mail); a failed try queues the next one after its backoff.
    Idempotent: each try is claimed, a delivered event is not sent again."""
    event = services.alert_notify(event_id=event_id)
    _retry_later(alert_notify, event_id, event)
    return event.notification_error or event.notification_status


@shared_task(acks_late=True)
def drift_reports_schedule(hours: int = 1) -> int:
    """Beat, hourly: a drift report over the last `hours` for every model version with a reference and recent traffic."""
    return services.drift_reports_schedule(hours=hours)


@shared_task(acks_late=True)
def stuck_work_sweep() -> int:
    """Beat, every 10 minutes: drift reports and alert notifications a broker outage or a dead worker left behind, queued again."""
    return services.stuck_work_sweep()


@shared_task(acks_late=True)
def budgets_evaluate() -> int:
    """Beat, every 5 minutes: budget shares reached this period, each recorded and notified once."""
    return len(services.budgets_evaluate())


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=5, retry_backoff=True, retry_jitter=True)
def budget_alert_notify(alert_id: int) -> str:
    """Try to send one budget alert (webhook, e-mail); a failed try queues the next one after its backoff.
    Idempotent: each try is claimed, a delivered alert is not sent again."""
    alert = services.budget_alert_notify(alert_id=alert_id)
    _retry_later(budget_alert_notify, alert_id, alert)
    return alert.notification_error or alert.notification_status


def _retry_later(task, record_id: int, record) -> None:
    """Queue the next try when one is planned (lost with the broker? the sweeps queue it again when it is due)."""
    wait = notification_retry_in(record)
    if wait is not None:
        task.apply_async((record_id,), countdown=wait, ignore_result=True)


@shared_task(acks_late=True)
def performance_windows_schedule() -> int:
    """Beat, hourly: accuracy / F1 / AUC over the last 24 hours of every version with labelled events."""
    return services.performance_windows_schedule()


@shared_task(acks_late=True)
def ops_alerts_evaluate() -> int:
    """Beat, every minute: the operations alert rules on the latest roll-ups."""
    return len(services.ops_alerts_evaluate())


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=5, retry_backoff=True, retry_jitter=True)
def rollups_update_task(max_seconds: float = 45.0) -> int:
    """Beat, every minute: fold new events into the minute, hour and lifetime roll-ups until caught up (at most `max_seconds`).
    A redelivery or an overlapping tick is harmless: the roll-up cursor is checked under a lock, no event counts twice."""
    return services.rollups_catch_up(max_seconds=max_seconds)
