"""Celery tasks of monitoring: thin, idempotent, each calls one service."""

from celery import shared_task
from django.db import OperationalError

from . import services


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=5, retry_backoff=True, retry_jitter=True)
def drift_report_compute(report_id: int) -> str:
    """Run one drift report. acks_late + the conditional claim: a worker dying mid-report means a redelivery finishes it once."""
    report = services.drift_report_run(report_id=report_id)
    return report.status if report else "already claimed"


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=5, retry_backoff=True, retry_jitter=True)
def alert_notify(event_id: int) -> str:
    """Send one alert state change (webhook, e-mail). Idempotent: a notified event is not sent again."""
    event = services.alert_notify(event_id=event_id)
    return event.notification_error or "sent"


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
    """Send one budget alert (webhook, e-mail). Idempotent: a notified alert is not sent again."""
    alert = services.budget_alert_notify(alert_id=alert_id)
    return alert.notification_error or "sent"


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
    """Beat, every minute: fold new events into the minute and hour roll-ups until caught up (at most `max_seconds`).
    A redelivery or an overlapping tick is harmless: the roll-up cursor is checked under a lock, no event counts twice."""
    return services.rollups_catch_up(max_seconds=max_seconds)
