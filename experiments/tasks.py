"""Celery tasks of experiments: thin, idempotent, each calls one service."""

from celery import shared_task
from django.db import OperationalError

from . import services


@shared_task(acks_late=True, autoretry_for=(OperationalError,), max_retries=5, retry_backoff=True, retry_jitter=True)
def analysis_compute(analysis_id: int) -> str:
    """Run one analysis. acks_late + the conditional claim: a redelivery after a dead worker computes it once."""
    analysis = services.analysis_run(analysis_id=analysis_id)
    return analysis.status if analysis else "already claimed"


@shared_task(acks_late=True)
def analyses_schedule() -> int:
    """Beat, hourly: an analysis of every running experiment (and analyses a lost message left waiting)."""
    return services.analyses_schedule()
