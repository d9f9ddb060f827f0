"""Celery tasks of the registry: thin, idempotent, each calls one service."""

from celery import shared_task

from . import services


@shared_task(acks_late=True)
def promotions_expire_stale(max_age_days: int | None = None) -> int:
    """Beat, hourly: expire pending promotion requests nobody decided in time. Returns how many."""
    return services.promotions_expire_stale(max_age_days=max_age_days)
