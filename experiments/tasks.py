"""Celery tasks of experiments: thin, idempotent, each calls one service."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError

from . import services


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=5, retry_backoff=True, retry_jitter=True)
def analysis_compute(analysis_id: int) -> str:
    """Run one analysis. acks_late + the conditional claim: a redelivery after a dead worker computes it once."""
    try:
        analysis = services.analysis_run(analysis_id=analysis_id)
    except SoftTimeLimitExceeded:
        services.analysis_time_out(analysis_id=analysis_id)
        return "timed out"
    return analysis.status if analysis else "already claimed"


@shared_task(acks_late=True)
def analyses_schedule() -> int:
    """Beat, hourly: an analysis of every running experiment (and analyses a lost message left waiting)."""
    return services.analyses_schedule()


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=5, retry_backoff=True, retry_jitter=True)
def rollout_start(promotion_id: int) -> str:
    """Start the rollout of an approved canary promotion (the registry queues this by name, MLOPS_ROLLOUT_START_TASK).
    Once per promotion: a redelivery finds the rollout started; a lost message is recovered by the next tick."""
    rollout = services.rollout_start(promotion_id=promotion_id)
    return f"rollout {rollout.pk}" if rollout else "no rollout"


@shared_task(acks_late=True)
def rollouts_tick() -> str:
    """Beat, every minute: the canary controller (roll-ups brought up to date, then one step of every active rollout).
    A second beat or a redelivery within the same minute finds each rollout ticked already and does nothing."""
    return services.rollouts_tick().text()
