"""Reads of alert rules and their history: what the alerts page and `GET /api/v1/alerts` list."""

from __future__ import annotations

from django.db.models import QuerySet

from ..models import AlertEvent, AlertRule


def alert_rule_list(*, state: str = "", model: str = "", prompt: str = "") -> QuerySet[AlertRule]:
    """Alert rules by model, prompt and name, with what their rows show (subject, who acknowledged); each filter
    given narrows the list: a state (ok, warning, alert), a model's or a prompt's name. One query."""
    rules = AlertRule.objects.select_related("model", "prompt", "acknowledged_by", "action_set_by").order_by("model__name", "prompt__name", "name", "pk")
    if state:
        rules = rules.filter(state=state)
    if model:
        rules = rules.filter(model__name=model)
    if prompt:
        rules = rules.filter(prompt__name=prompt)
    return rules


def alert_event_list(*, limit: int = 100) -> list[AlertEvent]:
    """The latest `limit` state changes of any rule, newest first, with their rule's subject and every try to notify
    them. Two queries."""
    return list(AlertEvent.objects.select_related("rule__model", "rule__prompt").prefetch_related("attempts").order_by("-at", "-id")[:limit])
