"""Enqueueing Celery work after a commit, without letting a broker outage break the request."""

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_on_commit(task, *args, **kwargs) -> None:
    """`task.delay(*args)` once the transaction commits. If Redis is down the row stays pending and
    the periodic sweep (beat) enqueues it again later; the request that caused it still succeeds."""

    def send():
        try:
            # ignore_result: nobody waits on these, and it keeps a down Redis from stalling the request
            # in the result backend's reconnect loop (20 retries) before the broker's fast failure.
            task.apply_async(args, kwargs, ignore_result=True)
        except Exception as exc:  # noqa: BLE001 - kombu/redis raise several types for "broker unreachable"
            logger.warning("could not enqueue %s%r: %s; the periodic sweep will retry", task.name, args, exc)

    transaction.on_commit(send)
