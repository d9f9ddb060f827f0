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
        enqueue_on_commit(tasks.promotions_expire_stale)

    promotion.refresh_from_db()
    assert promotion.status == "pending"  # not run inline
    with app.connection_for_write() as connection:
        assert connection.transport_cls == "memory"  # never a developer's Redis
        message = connection.SimpleQueue("celery").get(timeout=1)
    assert message.headers["task"] == "registry.tasks.promotions_expire_stale"
