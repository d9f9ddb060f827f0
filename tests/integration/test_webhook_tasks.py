"""Registry webhooks through a real worker: an approval's signed post reaches a real receiver on 127.0.0.1, and the
sweep's beat entry sends a delivery whose task was lost."""

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.utils import timezone

from registry import services
from registry.models import WebhookDelivery
from registry.services import webhooks
from tests.factories import register

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_webhook_deliver_posts_a_signed_approval_to_the_receiver(worker, site, editor, approver):
    version = register("fraud", editor)
    webhooks.webhook_create(model_name="fraud", url=site.inbox.url, secret="ci-secret", events=["promotion_approved"], actor=approver)
    promotion = services.promotion_request_create(version=version, to_stage="production", reason="better", actor=editor)

    services.promotion_approve(promotion_id=promotion.pk, actor=approver)
    [post] = worker.wait_for(lambda: site.inbox.posts(event="promotion_approved", promotion_id=promotion.pk), "the approval's webhook arrived")
    delivery = worker.wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").first(), "the delivery recorded as delivered")

    assert post["signature"] == "sha256=" + hmac.new(b"ci-secret", post["raw"], hashlib.sha256).hexdigest()
    assert (post["json"]["subject"], post["json"]["version"], post["json"]["stage"]) == ({"kind": "model", "name": "fraud"}, 1, "production")
    assert post["json"]["delivery_id"] == delivery.pk and delivery.attempts == 1
    assert list(delivery.tries.values_list("status_code", "error")) == [(200, "")]


def test_the_webhook_deliveries_beat_entry_sends_a_delivery_whose_task_was_lost(worker, broker_down, site, editor, approver):
    register("fraud", editor)
    webhooks.webhook_create(model_name="fraud", url=site.inbox.url, events=["version_registered"], actor=approver)
    with broker_down():
        register("fraud", editor)
    worker.drain()
    lost = list(site.inbox.received)
    WebhookDelivery.objects.update(created_at=timezone.now() - timedelta(minutes=5))

    queued = worker.beat("registry-webhook-deliveries").get(timeout=30)
    [post] = worker.wait_for(lambda: site.inbox.posts(event="version_registered", version=2), "the swept delivery arrived")

    assert lost == [] and queued == 1 and post["json"]["subject"]["name"] == "fraud"
    assert WebhookDelivery.objects.get().status == "delivered"
