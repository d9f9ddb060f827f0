"""Reads of spend budgets: what a budget's period has spent, its share, and the forecast of the period's end.

Spend comes from the hour roll-ups (kept current by the roll-up task every
minute), never from raw events. Periods are UTC: a day, a week from Monday, a
calendar month. The forecast is the spend so far plus the recent rate (the
last 24 hours of the period, or all of it when younger) over the time left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from mlops_site.exceptions import NotFound

from ..models import Budget, BudgetAlert, BudgetPeriod, BudgetScope, Granularity, Rollup

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


def budget_members_filter(budget: Budget) -> Q:
    """The roll-up rows a budget counts: every row for scope all, else those of its models and prompts."""
    if budget.scope == BudgetScope.ALL:
        return Q()
    models = [m.split(":", 1)[1] for m in budget.members if m.startswith("model:")]
    prompts = [m.split(":", 1)[1] for m in budget.members if m.startswith("prompt:")]
    return Q(model_version__model__name__in=models) | Q(prompt_version__prompt__name__in=prompts)


def budget_statuses(*, budgets: Sequence[Budget], now: datetime | None = None) -> dict[int, BudgetStatus]:
    """The status of each budget (spend of its current period, share, forecast), by budget id. One query for
    any number of budgets: each budget's sums are filtered sums (its members, its period) over the hour roll-ups
    since the earliest period start."""
    now = now or timezone.now()
    if not budgets:
        return {}
    windows = {}
    sums = {}
    for budget in budgets:
        start, end = period_bounds(budget.period, now)
        # Hour buckets: the recent rate counts whole hours from the one containing the rate window's start.
        recent_bucket = max(start, now - RATE_WINDOW).replace(minute=0, second=0, microsecond=0)
        windows[budget.pk] = (start, end, recent_bucket)
        period = budget_members_filter(budget) & Q(bucket__gte=start, bucket__lt=end)
        sums |= {
            f"cost_{budget.pk}": Sum("cost_usd", filter=period),
            f"recent_{budget.pk}": Sum("cost_usd", filter=period & Q(bucket__gte=recent_bucket)),
            f"priced_{budget.pk}": Sum("cost_requests", filter=period),
            f"missing_{budget.pk}": Sum("pricing_missing", filter=period),
        }
    earliest = min(start for start, _, _ in windows.values())
    latest = max(end for _, end, _ in windows.values())
    totals = Rollup.objects.filter(granularity=Granularity.HOUR, bucket__gte=earliest, bucket__lt=latest).aggregate(**sums)
    statuses = {}
    for budget in budgets:
        start, end, recent_bucket = windows[budget.pk]
        spent = float(totals[f"cost_{budget.pk}"] or 0.0)
        recent = float(totals[f"recent_{budget.pk}"] or 0.0)
        elapsed = (now - recent_bucket).total_seconds()
        forecast = None
        if spent > 0 and elapsed > 0:
            forecast = spent + recent / elapsed * max((end - now).total_seconds(), 0.0)
        statuses[budget.pk] = BudgetStatus(
            budget_id=budget.pk, period_start=start, period_end=end, spent_usd=spent, share=spent / budget.amount_usd, forecast_usd=forecast,
            requests_priced=int(totals[f"priced_{budget.pk}"] or 0), pricing_missing=int(totals[f"missing_{budget.pk}"] or 0),
        )
    return statuses


def budget_status(*, budget: Budget, now: datetime | None = None) -> BudgetStatus:
    """Spend of the current period, its share of the budget and the forecast of the period's end. One query."""
    return budget_statuses(budgets=[budget], now=now)[budget.pk]


def budget_get(*, name: str) -> Budget:
    try:
        return Budget.objects.get(name=name)
    except Budget.DoesNotExist:
        raise NotFound(f"No budget {name!r}.") from None


def budget_alert_list(*, limit: int = 50) -> list[BudgetAlert]:
    """The latest `limit` budget alerts, newest first, with their budget and every try to notify them. Two queries."""
    return list(BudgetAlert.objects.select_related("budget").prefetch_related("attempts").order_by("-at", "-id")[:limit])


def budget_list(*, enabled: bool | None = None) -> QuerySet[Budget]:
    """Budgets by name; `enabled` True or False: only those."""
    budgets = Budget.objects.order_by("name")
    return budgets if enabled is None else budgets.filter(enabled=enabled)
