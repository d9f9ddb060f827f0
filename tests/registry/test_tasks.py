from datetime import timedelta

import pytest
from django.utils import timezone

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

