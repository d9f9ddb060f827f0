from datetime import timedelta

import pytest
from django.utils import timezone

from registry import services, tasks
from registry.models import AuditEvent, PromotionRequest
from tests.factories import register


def _stale_request(editor, days: int = 30) -> PromotionRequest:
    version = register("fraud", editor)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=editor)
    PromotionRequest.objects.filter(pk=promotion.pk).update(requested_at=timezone.now() - timedelta(days=days))
    return promotion


@pytest.mark.django_db
def test_expire_task_calls_the_service(editor):
    promotion = _stale_request(editor)

    assert tasks.promotions_expire_stale.delay().get() == 1

    promotion.refresh_from_db()
    assert promotion.status == "expired"


@pytest.mark.worker
def test_real_worker_on_real_redis_runs_the_task(celery_worker_proc, editor):
    promotion = _stale_request(editor)

    result = tasks.promotions_expire_stale.apply_async(kwargs={"max_age_days": 7}, queue=celery_worker_proc.queue)

    assert result.get(timeout=30) == 1
    promotion.refresh_from_db()
    assert promotion.status == "expired"
    assert AuditEvent.objects.filter(action="promotion_expired").count() == 1
    assert "promotions_expire_stale" in celery_worker_proc.log.read_text()
