"""The alerts page: every rule with its state and the latest changes; acknowledge and silence buttons, each rule's action."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from mlops_site.pages import call_and_redirect

from .. import selectors, services
from ..models import AlertAction
from ..services.ops_alerts import OPS_METRICS


def alert_list(request: HttpRequest) -> HttpResponse:
    rules = list(selectors.alert_rule_list())
    events = selectors.alert_event_list()
    return render(request, "monitoring/alerts.html", {"rules": rules, "events": events, "now": timezone.now(), "ops_metrics": OPS_METRICS,
                                                      "actions": AlertAction.choices})


@require_POST
def alert_acknowledge(request: HttpRequest, rule_id: int) -> HttpResponse:
    return call_and_redirect(
        request, lambda: services.alert_acknowledge(rule_id=rule_id, actor=request.user), success="Acknowledged.", fallback=reverse("monitoring:alerts"),
    )


@require_POST
def alert_silence(request: HttpRequest, rule_id: int) -> HttpResponse:
    raw = request.POST.get("hours", "")
    return call_and_redirect(
        request,
        lambda: services.alert_silence(rule_id=rule_id, hours=int(raw) if raw.isascii() and raw.isdigit() else -1, actor=request.user),
        success=lambda rule: f"Silenced until {rule.silenced_until:%Y-%m-%d %H:%M} UTC." if rule.silenced_until else "Silence ended.",
        fallback=reverse("monitoring:alerts"),
    )


@require_POST
def alert_action(request: HttpRequest, rule_id: int) -> HttpResponse:
    return call_and_redirect(
        request,
        lambda: services.alert_action_set(rule_id=rule_id, action=request.POST.get("action", ""), actor=request.user),
        success=lambda rule: f"{rule.name}: {rule.get_action_display()} when it enters the alert state.",
        fallback=reverse("monitoring:alerts"),
    )
