"""Enqueueing Celery work after a commit, without letting a broker outage break the request.

Services name the task ("monitoring.tasks.drift_report_compute") instead of importing it: the tasks
modules import the services, so a service importing its task would be an import cycle.
"""

import importlib
import logging

from celery import Task, current_app
from django.db import transaction

logger = logging.getLogger(__name__)


def task_get(name: str) -> Task:
    """The registered Celery task called `name` ("<app>.tasks.<function>"). Its module is imported first:
    a worker imports every app's tasks module when it starts, a web process only when it first sends one."""
    importlib.import_module(name.rpartition(".")[0])
    return current_app.tasks[name]


def enqueue_on_commit(task_name: str, *args, **kwargs) -> None:
    """Send the task `task_name` with these arguments once the transaction commits. If Redis is down the
    row stays pending and the periodic sweep (beat) enqueues it again later; the request that caused it
    still succeeds. An unknown task name raises here, at once (a programming error, not an outage)."""
    task = task_get(task_name)

    def send():
        try:
            # ignore_result: nobody waits on these, and it keeps a down Redis from stalling the request
            # in the result backend's reconnect loop (20 retries) before the broker's fast failure.
            # apply_async honours CELERY_TASK_ALWAYS_EAGER (unit tests run the task inline).
            task.apply_async(args, kwargs, ignore_result=True)
        except Exception as exc:  # noqa: BLE001 - kombu/redis raise several types for "broker unreachable"
            logger.warning("could not enqueue %s%r: %s; the periodic sweep will retry", task.name, args, exc)

    transaction.on_commit(send)
