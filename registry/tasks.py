"""Celery tasks of the registry: thin, idempotent, each calls one service."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError

from . import services
from .services import evaluations, webhooks


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=5, retry_backoff=True, retry_jitter=True)
def promotions_expire_stale(max_age_days: int | None = None) -> int:
    """Beat, hourly: expire pending promotion requests nobody decided in time. Returns how many.

    Idempotent (each request is claimed with a conditional UPDATE), so a retry
    or a second delivery expires nothing twice. Only a database hiccup
    (OperationalError, e.g. a lock timeout) is retried.
    """
    return services.promotions_expire_stale(max_age_days=max_age_days)


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    max_retries=5,
    retry_backoff=True,
    retry_jitter=True,
    soft_time_limit=evaluations.SOFT_TIME_LIMIT.total_seconds(),
    time_limit=evaluations.TIME_LIMIT.total_seconds(),
)
def evaluation_compute(evaluation_id: int) -> str:
    """Run one evaluation (on the evaluations queue, CELERY_TASK_ROUTES). acks_late + the conditional claim: a
    redelivery after a dead worker finishes it once. Past its soft time limit the run ends failed, saying so."""
    try:
        evaluation = evaluations.evaluation_run(evaluation_id=evaluation_id)
    except SoftTimeLimitExceeded:
        evaluations.evaluation_time_out(evaluation_id=evaluation_id)
        return "timed out"
    return evaluation.status if evaluation else "already claimed"


@shared_task(acks_late=True)
def evaluations_sweep() -> int:
    """Beat, every 10 minutes: evaluations a broker outage left pending are queued again."""
    return evaluations.evaluations_sweep()


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=5, retry_backoff=True, retry_jitter=True)
def webhook_deliver(delivery_id: int) -> str:
    """Try to post one webhook delivery; a failed try that may succeed later queues the next one after its backoff
    (lost with the broker? the sweep queues it when it is due). Idempotent: each try is claimed."""
    delivery = webhooks.webhook_delivery_send(delivery_id=delivery_id)
    wait = webhooks.webhook_retry_in(delivery)
    if wait is not None:
        webhook_deliver.apply_async((delivery_id,), countdown=wait, ignore_result=True)
    return "gone" if delivery is None else (delivery.last_error or delivery.status)


@shared_task(acks_late=True)
def webhook_deliveries_sweep() -> int:
    """Beat, every minute: webhook deliveries that are due (a retry, or one whose task was lost) are queued again."""
    return webhooks.webhook_deliveries_sweep()
