"""Spend budgets: what a budget's period has spent, the forecast of its end, and alerts once per share.

Spend comes from the hour roll-ups (kept current by the roll-up task every
minute), never from raw events. Periods are UTC: a day, a week from Monday, a
calendar month. The forecast is the spend so far plus the recent rate (the
last 24 hours of the period, or all of it when younger) over the time left.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from mlops_site.exceptions import Conflict, NotFound, ValidationFailed
from mlops_site.queue import enqueue_on_commit
from mlops_site.roles import EDITOR, require_role
from registry.models import Prompt, RegisteredModel

from .alerts import deliver
from .models import Budget, BudgetAlert, BudgetPeriod, BudgetScope, Granularity, Rollup

DEFAULT_THRESHOLDS = [0.8, 1.0]
RATE_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class BudgetStatus:
    budget_id: int
    period_start: datetime
    period_end: datetime
    spent_usd: float
    share: float  # spent / amount
    forecast_usd: float | None  # None before any spend in the period
    requests_priced: int
    pricing_missing: int  # requests whose cost is unknown (not counted in the spend)


def period_bounds(period: str, now: datetime) -> tuple[datetime, datetime]:
    """The UTC period containing `now`: [start, end)."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == BudgetPeriod.DAY:
        return day, day + timedelta(days=1)
    if period == BudgetPeriod.WEEK:
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def _members_filter(budget: Budget) -> Q:
    if budget.scope == BudgetScope.ALL:
        return Q()
    models = [m.split(":", 1)[1] for m in budget.members if m.startswith("model:")]
    prompts = [m.split(":", 1)[1] for m in budget.members if m.startswith("prompt:")]
    return Q(model_version__model__name__in=models) | Q(prompt_version__prompt__name__in=prompts)


def _spend(budget: Budget, start: datetime, end: datetime) -> dict:
    return Rollup.objects.filter(_members_filter(budget), granularity=Granularity.HOUR, bucket__gte=start, bucket__lt=end).aggregate(
        cost=Sum("cost_usd"), priced=Sum("cost_requests"), missing=Sum("pricing_missing")
    )


def budget_status(*, budget: Budget, now: datetime | None = None) -> BudgetStatus:
    """Spend of the current period, its share of the budget and the forecast of the period's end."""
    now = now or timezone.now()
    start, end = period_bounds(budget.period, now)
    totals = _spend(budget, start, end)
    spent = float(totals["cost"] or 0.0)
    recent_from = max(start, now - RATE_WINDOW)
    # Hour buckets: the recent rate counts whole hours from the one containing recent_from.
    recent_bucket = recent_from.replace(minute=0, second=0, microsecond=0)
    recent = float(_spend(budget, recent_bucket, end)["cost"] or 0.0)
    elapsed = (now - recent_bucket).total_seconds()
    forecast = None
    if spent > 0 and elapsed > 0:
        forecast = spent + recent / elapsed * max((end - now).total_seconds(), 0.0)
    return BudgetStatus(
        budget_id=budget.pk, period_start=start, period_end=end, spent_usd=spent, share=spent / budget.amount_usd,
        forecast_usd=forecast, requests_priced=int(totals["priced"] or 0), pricing_missing=int(totals["missing"] or 0),
    )


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
    thresholds: list | None = None, webhook_url: str = "", webhook_secret: str = "", emails: str = "", actor,
) -> Budget:
    """Create the budget `name`, or change it (amount, period, members, shares, where it notifies)."""
    require_role(actor, EDITOR, "Setting a budget")
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
        "thresholds": sorted({float(t) for t in thresholds}), "webhook_url": webhook_url, "webhook_secret": webhook_secret, "emails": emails,
    }
    try:
        with transaction.atomic():
            budget, created = Budget.objects.select_for_update().get_or_create(name=name, defaults={**fields, "created_by": actor})
            if not created:
                for key, value in fields.items():
                    setattr(budget, key, value)
                budget.save()
    except IntegrityError:
        raise Conflict(f"Budget {name!r} was just created by someone else; try again.") from None
    return budget


def budget_get(*, name: str) -> Budget:
    try:
        return Budget.objects.get(name=name)
    except Budget.DoesNotExist:
        raise NotFound(f"No budget {name!r}.") from None


def budgets_evaluate(*, now: datetime | None = None) -> list[BudgetAlert]:
    """Beat, every few minutes: for each enabled budget, record (and notify) each share of it the period's
    spend has reached, once per period; the unique (budget, period, share) row makes a repeat a no-op."""
    now = now or timezone.now()
    # Alerts a broker outage left unsent are queued again (the task sends each one once).
    for alert_id in BudgetAlert.objects.filter(notified_at__isnull=True, at__lt=now - timedelta(minutes=10)).values_list("pk", flat=True)[:500]:
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
    """Send one budget alert to the budget's webhook and e-mail (or the site's defaults), once."""
    alert = BudgetAlert.objects.select_related("budget").get(pk=alert_id)
    if alert.notified_at is not None:
        return alert
    budget = alert.budget
    errors = deliver(
        webhook_url=budget.webhook_url or settings.MLOPS_ALERT_WEBHOOK_URL,
        webhook_secret=budget.webhook_secret or settings.MLOPS_ALERT_WEBHOOK_SECRET,
        emails=budget.emails or settings.MLOPS_ALERT_EMAILS, message=alert.message,
        payload={"budget": budget.name, "share": alert.threshold, "spent_usd": alert.spent_usd, "amount_usd": budget.amount_usd,
                 "forecast_usd": alert.forecast_usd, "period": budget.period, "period_start": alert.period_start.isoformat()},
    )
    BudgetAlert.objects.filter(pk=alert.pk, notified_at__isnull=True).update(notified_at=timezone.now(), notification_error="; ".join(errors))
    alert.refresh_from_db()
    return alert
