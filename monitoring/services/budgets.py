"""Spend budgets: create or change one, and alert once per share of its period's spend (selectors/budgets.py reads the spend)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from mlops_site.exceptions import Conflict, ValidationFailed
from mlops_site.queue import enqueue_on_commit
from mlops_site.roles import APPROVER, EDITOR, require_role
from mlops_site.webhooks import webhook_url_check
from registry.models import AuditAction, Prompt, RegisteredModel
from registry.services import audit_record

from ..models import Budget, BudgetAlert, BudgetPeriod, BudgetScope
from ..selectors.budgets import budget_status
from .notifications import notification_due, notification_send, signing_secret

DEFAULT_THRESHOLDS = [0.8, 1.0]


def _clean_members(scope: str, members: list) -> list[str]:
    if scope not in BudgetScope.values:
        raise ValidationFailed(f"scope: one of {', '.join(BudgetScope.values)}.", fields={"scope": ["unknown scope"]})
    if scope == BudgetScope.ALL:
        return []
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise ValidationFailed("members: a list such as [\"prompt:summarize\", \"model:fraud-detector\"].", fields={"members": ["required"]})
    if scope in (BudgetScope.MODEL, BudgetScope.PROMPT) and (len(members) != 1 or not members[0].startswith(f"{scope}:")):
        raise ValidationFailed(f"members: exactly one \"{scope}:<name>\" for a {scope} budget.", fields={"members": ["one member"]})
    known_models = set(RegisteredModel.objects.filter(name__in=[m[6:] for m in members if m.startswith("model:")]).values_list("name", flat=True))
    known_prompts = set(Prompt.objects.filter(name__in=[m[7:] for m in members if m.startswith("prompt:")]).values_list("name", flat=True))
    unknown = [m for m in members if not ((m.startswith("model:") and m[6:] in known_models) or (m.startswith("prompt:") and m[7:] in known_prompts))]
    if unknown:
        raise ValidationFailed(f"Unknown member(s): {', '.join(unknown)} (write model:<name> or prompt:<name> of a registered one).",
                               fields={"members": unknown})
    return sorted(set(members))


def budget_set(
    *, name: str, amount_usd: float, period: str = BudgetPeriod.DAY, scope: str = BudgetScope.ALL, members: list | None = None,
    thresholds: list | None = None, webhook_url: str | None = None, webhook_secret: str | None = None, emails: str | None = None, actor,
) -> Budget:
    """Create the budget `name`, or change it (amount, period, members, shares, where it notifies).
    A notification target left out (None) stays as it is; setting or changing one (webhook URL, its
    secret, e-mails) needs the approver role, since it decides where this server sends requests and mail.
    Audited with the fields before and after (a secret only as "set" or "changed", never its value)."""
    require_role(actor, EDITOR, "Setting a budget")
    if webhook_url is not None:
        webhook_url_check(webhook_url)
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ValidationFailed("name: 1 to 200 characters.", fields={"name": ["required"]})
    if isinstance(amount_usd, bool) or not isinstance(amount_usd, (int, float)) or not math.isfinite(amount_usd) or amount_usd <= 0:
        raise ValidationFailed("amount_usd: a positive finite number.", fields={"amount_usd": ["positive"]})
    if period not in BudgetPeriod.values:
        raise ValidationFailed(f"period: one of {', '.join(BudgetPeriod.values)}.", fields={"period": ["unknown period"]})
    thresholds = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    if not isinstance(thresholds, list) or not thresholds or any(
        isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or not 0 < t <= 10 for t in thresholds
    ):
        raise ValidationFailed("thresholds: shares of the budget above 0, e.g. [0.8, 1.0].", fields={"thresholds": ["shares above 0"]})
    fields = {
        "amount_usd": float(amount_usd), "period": period, "scope": scope, "members": _clean_members(scope, members or []),
        "thresholds": sorted({float(t) for t in thresholds}),
    }
    targets = {key: value for key, value in (("webhook_url", webhook_url), ("webhook_secret", webhook_secret), ("emails", emails)) if value is not None}
    try:
        with transaction.atomic():
            budget = Budget.objects.select_for_update().filter(name=name).first()
            if any(value != (getattr(budget, key) if budget else "") for key, value in targets.items()):
                require_role(actor, APPROVER, "Setting where a budget notifies (webhook, secret, e-mails)")
            before, secret_before = (_audited(budget), budget.webhook_secret) if budget else (None, None)
            budget, created = Budget.objects.get_or_create(name=name, defaults={**fields, **targets, "created_by": actor})
            if not created:
                for key, value in {**fields, **targets}.items():
                    setattr(budget, key, value)
                budget.save()
            after = _audited(budget, secret_before=secret_before)
            if before != after:
                audit_record(actor=actor, action=AuditAction.BUDGET_SET, subject=f"budget:{name}", reason="created" if created else "changed",
                             extra={"before": before, "after": after})
    except IntegrityError:
        raise Conflict(f"Budget {name!r} was just created by someone else; try again.") from None
    return budget


def _audited(budget: Budget, *, secret_before: str | None = None) -> dict:
    """What the audit log keeps of a budget: its fields, and of its secret only "set", "changed" (another
    secret than `secret_before`) or "", so a change shows without the log holding the secret."""
    secret = budget.webhook_secret
    shown = "" if not secret else "changed" if secret_before and secret != secret_before else "set"
    return {
        "amount_usd": budget.amount_usd, "period": budget.period, "scope": budget.scope, "members": list(budget.members),
        "thresholds": list(budget.thresholds), "webhook_url": budget.webhook_url, "emails": budget.emails, "webhook_secret": shown,
    }


def budgets_evaluate(*, now: datetime | None = None) -> list[BudgetAlert]:
    """Beat, every few minutes: for each enabled budget, record (and notify) each share of it the period's
    spend has reached, once per period; the unique (budget, period, share) row makes a repeat a no-op."""
    now = now or timezone.now()
    # Alerts a broker outage left unsent, and retries whose task was lost, are queued again (a try is claimed: sent once).
    for alert_id in BudgetAlert.objects.filter(notification_due(now=now), at__lt=now - timedelta(minutes=10)).values_list("pk", flat=True)[:500]:
        enqueue_on_commit("monitoring.tasks.budget_alert_notify", alert_id)
    fired = []
    for budget in Budget.objects.filter(enabled=True):
        status = budget_status(budget=budget, now=now)
        for share in budget.thresholds:
            if status.spent_usd < share * budget.amount_usd:
                continue
            forecast = f"; forecast for the period {status.forecast_usd:,.2f} USD" if status.forecast_usd is not None else ""
            message = (
                f"[BUDGET {share:.0%}] {budget.name}: {status.spent_usd:,.2f} of {budget.amount_usd:,.2f} USD spent this {budget.period} "
                f"(from {status.period_start:%Y-%m-%d %H:%M} UTC){forecast}."
            )
            with transaction.atomic():
                alert, created = BudgetAlert.objects.get_or_create(
                    budget=budget, period_start=status.period_start, threshold=share,
                    defaults={"spent_usd": status.spent_usd, "forecast_usd": status.forecast_usd, "message": message, "at": now},
                )
                if created:
                    enqueue_on_commit("monitoring.tasks.budget_alert_notify", alert.pk)
                    fired.append(alert)
    return fired


def budget_alert_notify(*, alert_id: int) -> BudgetAlert:
    """Try to send one budget alert to the budget's webhook and e-mail (or the site's defaults), retried with
    backoff until each channel goes through (services/notifications.py: notification_send)."""
    alert = BudgetAlert.objects.select_related("budget").get(pk=alert_id)
    budget = alert.budget
    return notification_send(
        alert,
        webhook_url=budget.webhook_url or settings.MLOPS_ALERT_WEBHOOK_URL,
        webhook_secret=signing_secret(webhook_url=budget.webhook_url or settings.MLOPS_ALERT_WEBHOOK_URL, own_secret=budget.webhook_secret),
        emails=budget.emails or settings.MLOPS_ALERT_EMAILS, message=alert.message,
        payload={"budget": budget.name, "share": alert.threshold, "spent_usd": alert.spent_usd, "amount_usd": budget.amount_usd,
                 "forecast_usd": alert.forecast_usd, "period": budget.period, "period_start": alert.period_start.isoformat()},
    )
