"""The Webhooks section in a real Chromium under the site's Content Security Policy: an approver adds a signed webhook on
a model's page, sends a test that reaches a receiver on 127.0.0.1, sees the delivery, approves a promotion that posts
the approval, and deletes the webhook."""

import hashlib
import hmac
import json

import pytest

from registry import services
from registry.models import RegistryWebhook
from tests.conftest import make_user
from tests.factories import register
from tests.registry.test_webhooks import Receiver
from tests.test_browser import log_in
from tests.test_browser_csp import WATCH_VIOLATIONS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "a-long-test-password-0"


def test_an_approver_adds_tests_and_deletes_a_webhook_and_an_approval_posts_to_it(live_server, page, celery_eager):
    editor = make_user("alice", "editor", password=PASSWORD)
    make_user("bob", "approver", password=PASSWORD)
    hook = Receiver()
    celery_eager.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{hook.port}"]
    version = register("fraud", editor)
    refused = []
    page.on("console", lambda msg: msg.type == "error" and refused.append(msg.text))
    page.on("dialog", lambda dialog: dialog.accept())
    page.add_init_script(WATCH_VIOLATIONS)
    log_in(page, live_server, "bob", PASSWORD)

    page.goto(live_server.url + "/models/fraud/")
    page.fill("#webhook-form input[name=url]", hook.url)
    page.fill("#webhook-form input[name=secret]", "page-secret")
    page.check("#webhook-form input[value=promotion_approved]")
    page.click("#webhook-form button[type=submit]")
    page.wait_for_selector(".webhook")
    added = page.locator("#webhooks").inner_text()
    page.click(".webhook button:has-text('Send a test')")
    page.wait_for_selector(".webhook tr[data-delivery=delivered]")
    promotion = services.promotion_request_create(version=version, to_stage="production", reason="r", actor=editor)
    services.promotion_approve(promotion_id=promotion.pk, actor=make_user("carol", "approver"))
    page.reload()
    deliveries = page.locator(".webhook tr[data-delivery]").count()
    violations = page.evaluate("window.cspViolations")
    page.click(".webhook button:has-text('Delete')")
    page.wait_for_selector("#webhooks .empty")

    assert "page-secret" not in added and "signed" in added and hook.url in added
    assert [p["json"]["event"] for p in hook.posts] == ["ping", "promotion_approved"] and deliveries == 2
    assert all(p["headers"]["X-MLOps-Signature"] == "sha256=" + hmac.new(b"page-secret", p["body"], hashlib.sha256).hexdigest() for p in hook.posts)
    assert json.loads(hook.posts[1]["body"])["promotion_id"] == promotion.pk
    assert not RegistryWebhook.objects.exists()
    assert violations == [] and refused == []
