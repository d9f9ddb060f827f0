"""A github_dispatch webhook calls GitHub's repository dispatch itself: the approval arrives as
`{"event_type": "mlops.promotion_approved", "client_payload": {...}}` with the webhook's secret as the bearer token
(a receiver on 127.0.0.1 stands in for api.github.com and checks what GitHub checks)."""

import pytest

from mlops_site.exceptions import ValidationFailed
from registry import services
from registry.models import AuditEvent, WebhookDelivery
from registry.services import webhooks
from tests.factories import register
from tests.registry.test_webhooks import receiver  # noqa: F401 (the fixture)

pytestmark = pytest.mark.django_db


def dispatches(hook) -> str:
    return f"http://127.0.0.1:{hook.port}/repos/acme/fraud-service/dispatches"


def test_github_dispatch_webhook_starts_a_workflow_on_approval(celery_eager, editor, approver, receiver, django_capture_on_commit_callbacks):  # noqa: F811
    github = receiver(statuses=(204,))
    version = register("fraud", editor)
    webhooks.webhook_create(model_name="fraud", url=dispatches(github), format="github_dispatch", secret="ghp_token",
                            events=["promotion_approved"], actor=approver)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="better", actor=editor)

    with django_capture_on_commit_callbacks(execute=True):
        services.promotion_approve(promotion_id=promotion.pk, actor=approver, comment="ship it")

    [post] = github.posts
    delivery = WebhookDelivery.objects.get()
    assert post["path"] == "/repos/acme/fraud-service/dispatches"
    assert post["headers"]["Authorization"] == "Bearer ghp_token"
    assert post["headers"]["Accept"] == "application/vnd.github+json"
    assert "X-MLOps-Signature" not in post["headers"]  # the token authenticates; it never signs
    assert post["json"]["event_type"] == "mlops.promotion_approved"
    payload = post["json"]["client_payload"]
    assert len(payload) <= 10  # GitHub refuses more than ten top-level keys
    assert {k: payload[k] for k in ("event", "kind", "name", "version", "stage", "promotion_id", "actor", "delivery_id")} == {
        "event": "promotion_approved", "kind": "model", "name": "fraud", "version": 1, "stage": "staging",
        "promotion_id": promotion.pk, "actor": "bob", "delivery_id": delivery.pk}
    assert delivery.status == "delivered"
    assert AuditEvent.objects.get(action="webhook_set").extra["format"] == "github_dispatch"


@pytest.mark.parametrize(("path", "secret", "field"), [
    ("/repos/acme/fraud", "ghp_token", "url"),  # not the dispatches address
    ("/repos/acme/fraud/dispatches/../x", "ghp_token", "url"),
    ("/hook", "ghp_token", "url"),
    ("/repos/acme/fraud/dispatches", "", "secret"),  # no token
])
def test_github_dispatch_webhook_needs_the_dispatches_address_and_a_token(approver, editor, receiver, path, secret, field):  # noqa: F811
    github = receiver()
    register("fraud", editor)

    with pytest.raises(ValidationFailed) as refused:
        webhooks.webhook_create(model_name="fraud", url=f"http://127.0.0.1:{github.port}{path}", format="github_dispatch", secret=secret,
                                events=["promotion_approved"], actor=approver)

    assert list(refused.value.extra["fields"]) == [field]


def test_github_dispatch_webhook_cannot_lose_its_token_by_update(approver, editor, receiver):  # noqa: F811
    github = receiver()
    register("fraud", editor)
    hook = webhooks.webhook_create(model_name="fraud", url=dispatches(github), format="github_dispatch", secret="ghp_token",
                                   events=["promotion_approved"], actor=approver)

    with pytest.raises(ValidationFailed):
        webhooks.webhook_update(webhook_id=hook.pk, secret="", actor=approver)

    updated = webhooks.webhook_update(webhook_id=hook.pk, format="generic", secret="", actor=approver)
    assert (updated.format, updated.secret) == ("generic", "")


def test_webhook_api_takes_and_shows_the_format_never_the_token(api_as, approver, editor, receiver):  # noqa: F811
    github = receiver()
    register("fraud", editor)

    made = api_as(approver).post("/api/v1/models/fraud/webhooks", {"url": dispatches(github), "format": "github_dispatch", "secret": "ghp_token",
                                                                  "events": ["promotion_approved"]}, format="json")
    bad = api_as(approver).post("/api/v1/models/fraud/webhooks", {"url": github.url, "format": "slack", "events": ["promotion_approved"]},
                                format="json")

    assert made.status_code == 201 and made.json()["format"] == "github_dispatch" and "ghp_token" not in made.content.decode()
    assert bad.status_code == 400 and set(bad.json()) == {"message", "code", "extra"}
