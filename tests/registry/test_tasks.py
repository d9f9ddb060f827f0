import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from mlops_site.celery import app
from mlops_site.queue import enqueue_on_commit
from registry import services, tasks
from registry.models import PromotionRequest
from tests.factories import register


def _stale_request(editor, days: int = 30) -> PromotionRequest:
    version = register("fraud", editor)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=editor)
    PromotionRequest.objects.filter(pk=promotion.pk).update(requested_at=timezone.now() - timedelta(days=days))
    return promotion


@pytest.mark.django_db
def test_expire_task_calls_the_service(celery_eager, editor):
    promotion = _stale_request(editor)

    assert tasks.promotions_expire_stale.delay().get() == 1

    promotion.refresh_from_db()
    assert promotion.status == "expired"


@pytest.mark.django_db
def test_a_unit_test_without_celery_eager_enqueues_into_memory_and_nothing_runs(editor, django_capture_on_commit_callbacks):
    promotion = _stale_request(editor)
    with app.connection_for_write() as connection:
        connection.SimpleQueue("celery").clear()  # what earlier tests left in this process's in-memory broker

    with django_capture_on_commit_callbacks(execute=True):
        enqueue_on_commit("registry.tasks.promotions_expire_stale")

    promotion.refresh_from_db()
    assert promotion.status == "pending"  # not run inline
    with app.connection_for_write() as connection:
        assert connection.transport_cls == "memory"  # never a developer's Redis
        message = connection.SimpleQueue("celery").get(timeout=1)
    assert message.headers["task"] == "registry.tasks.promotions_expire_stale"


def test_enqueue_by_name_finds_a_task_whose_module_no_one_imported_yet():
    # A web process imports no tasks module at start (a worker does): the name alone must find the task.
    script = (
        "import sys, django; django.setup()\n"
        "from mlops_site.queue import task_get\n"
        "assert 'monitoring.tasks' not in sys.modules\n"
        "print(task_get('monitoring.tasks.drift_report_compute').name)\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mlops_site.settings"}

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "monitoring.tasks.drift_report_compute"


def test_enqueue_of_an_unknown_task_name_raises_at_once(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(KeyError):
        enqueue_on_commit("registry.tasks.no_such_task")

    assert callbacks == []
