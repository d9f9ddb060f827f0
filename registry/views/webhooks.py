"""The Webhooks section of a model's and a prompt's page (approvers): add one, send a test, delete one."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from mlops_site.pages import call_and_redirect, get_or_404
from mlops_site.roles import APPROVER, has_role

from .. import selectors
from ..models import SUBSCRIBABLE_EVENTS, RegistryWebhook
from ..services import webhooks


def webhook_section(user, *, model=None, prompt=None) -> dict:
    """The section's context: the model's or prompt's webhooks with their recent deliveries, for approvers only (a
    webhook's URL can carry a credential); nothing for other roles."""
    if not has_role(user, APPROVER):
        return {"webhooks": None}
    add = reverse("registry:model-webhook-add", args=[model.name]) if model is not None else reverse("registry:prompt-webhook-add", args=[prompt.name])
    return {"webhooks": selectors.webhook_list(model=model, prompt=prompt), "webhook_events": SUBSCRIBABLE_EVENTS, "webhook_add_url": add}


def _page(webhook: RegistryWebhook) -> str:
    if webhook.model_id:
        return reverse("registry:model-detail", args=[webhook.model.name]) + "#webhooks"
    return reverse("registry:prompt-detail", args=[webhook.prompt.name]) + "#webhooks"


def _add(request: HttpRequest, fallback: str, **subject) -> HttpResponse:
    return call_and_redirect(
        request,
        lambda: webhooks.webhook_create(url=request.POST.get("url", ""), secret=request.POST.get("secret", ""),
                                        events=request.POST.getlist("events"), format=request.POST.get("format") or "generic",
                                        actor=request.user, **subject),
        success=lambda webhook: f"Webhook #{webhook.pk} added: {webhook.url}.",
        fallback=fallback,
        then=lambda _: fallback,
    )


@require_POST
def model_webhook_add(request: HttpRequest, name: str) -> HttpResponse:
    return _add(request, reverse("registry:model-detail", args=[name]) + "#webhooks", model_name=name)


@require_POST
def prompt_webhook_add(request: HttpRequest, name: str) -> HttpResponse:
    return _add(request, reverse("registry:prompt-detail", args=[name]) + "#webhooks", prompt_name=name)


@require_POST
def webhook_delete(request: HttpRequest, webhook_id: int) -> HttpResponse:
    page = _page(get_or_404(selectors.webhook_get, webhook_id=webhook_id))
    return call_and_redirect(request, lambda: webhooks.webhook_delete(webhook_id=webhook_id, actor=request.user),
                             success=f"Webhook #{webhook_id} deleted.", fallback=page, then=lambda _: page)


@require_POST
def webhook_test(request: HttpRequest, webhook_id: int) -> HttpResponse:
    page = _page(get_or_404(selectors.webhook_get, webhook_id=webhook_id))
    return call_and_redirect(request, lambda: webhooks.webhook_ping(webhook_id=webhook_id, actor=request.user),
                             success=lambda delivery: f"Test delivery #{delivery.pk} queued; reload to see how it went.",
                             fallback=page, then=lambda _: page)
