"""Reads of the operations, cost and GenAI-quality pages beyond selectors/rollups.py, and of the home page's "Unhealthy now" strip.

Everything comes from the hour roll-ups and the alert rules, in a fixed number of queries
whatever the window or the number of buckets. The one exception is `low_score_examples`, which
reads raw events, with a LIMIT and a filter on (prompt_version, timestamp), the events' index.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import DateTimeField, Q, Sum
from django.db.models.functions import Trunc

from registry.models import ModelVersion, Prompt, PromptVersion, RegisteredModel

from ..models import AlertRule, AlertState, Budget, Event, Granularity, Rollup
from .budgets import budget_members_filter, period_bounds

HOUR = timedelta(hours=1)


def _hour_floor(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def subject_versions(*, kind: str, name: str) -> dict[int, int] | None:
    """{version number: version id} of a model or a prompt (newest first); None when there is no such model or prompt."""
    if kind == "model":
        rows = ModelVersion.objects.filter(model__name=name).order_by("-version").values_list("version", "pk")
    else:
        rows = PromptVersion.objects.filter(prompt__name=name).order_by("-version").values_list("version", "pk")
    found = dict(rows)
    if found:
        return found
    # A registered model always has a version and an imported prompt too, so this query is rare.
    exists = (RegisteredModel if kind == "model" else Prompt).objects.filter(name=name).exists()
    return {} if exists else None


def subject_rules(*, kind: str, name: str) -> list[AlertRule]:
    """The enabled alert rules of a model or a prompt, firing ones first."""
    subject = {"model__name": name} if kind == "model" else {"prompt__name": name}
    rules = list(AlertRule.objects.filter(enabled=True, **subject).select_related("model", "prompt").order_by("name", "pk"))
    order = {AlertState.ALERT: 0, AlertState.WARNING: 1}
    return sorted(rules, key=lambda r: order.get(r.state, 2))


@dataclass(frozen=True)
class PromptCost:
    name: str
    requests: int
    cost_usd: float  # the known cost only
    cost_requests: int  # requests with a known cost
    pricing_missing: int  # requests with tokens but no price: their cost is unknown, not 0

    @property
    def cost_per_request(self) -> float | None:
        return self.cost_usd / self.cost_requests if self.cost_requests else None


def prompt_costs(*, start: datetime, end: datetime, limit: int = 20) -> list[PromptCost]:
    """The prompts with the highest known spend in [start floored to the hour, end), then those with unpriced requests. One query."""
    name = "prompt_version__prompt__name"
    rows = (
        Rollup.objects.filter(prompt_version__isnull=False, granularity=Granularity.HOUR, bucket__gte=_hour_floor(start), bucket__lt=end)
        .values(name)
        .annotate(n=Sum("requests"), cost=Sum("cost_usd"), priced=Sum("cost_requests"), missing=Sum("pricing_missing"))
        .order_by("-cost", "-missing", name)[:limit]
    )
    return [PromptCost(r[name], int(r["n"] or 0), float(r["cost"] or 0.0), int(r["priced"] or 0), int(r["missing"] or 0)) for r in rows]


def cost_per_request_series(*, names: Sequence[str], start: datetime, end: datetime) -> dict[str, tuple[list[datetime], list[float | None]]]:
    """Cost per priced request of each prompt in `names`, per hour (windows up to 7 days) or per UTC day. One query."""
    if not names:
        return {}
    kind = "hour" if end - start <= timedelta(days=7) else "day"
    name = "prompt_version__prompt__name"
    rows = (
        Rollup.objects.filter(prompt_version__prompt__name__in=list(names), granularity=Granularity.HOUR, bucket__gte=_hour_floor(start), bucket__lt=end)
        .annotate(at=Trunc("bucket", kind, output_field=DateTimeField(), tzinfo=UTC))
        .values(name, "at")
        .annotate(cost=Sum("cost_usd"), priced=Sum("cost_requests"))
        .order_by(name, "at")
    )
    series: dict[str, tuple[list, list]] = {n: ([], []) for n in names}
    for row in rows:
        xs, ys = series[row[name]]
        xs.append(row["at"])
        ys.append(float(row["cost"]) / row["priced"] if row["priced"] else None)
    return series


def budget_hourly_spend(*, budgets: Sequence[Budget], now: datetime) -> dict[int, list[tuple[datetime, float]]]:
    """Known spend per hour of each budget's current period up to `now`: {budget id: [(hour, USD), ...]} (hours with spend only).

    One query: a row per hour since the earliest period start, a filtered sum per budget.
    """
    if not budgets:
        return {}
    bounds = {b.pk: period_bounds(b.period, now) for b in budgets}
    earliest = min(start for start, _ in bounds.values())
    sums = {f"b{b.pk}": Sum("cost_usd", filter=budget_members_filter(b) & Q(bucket__gte=bounds[b.pk][0])) for b in budgets}
    rows = Rollup.objects.filter(granularity=Granularity.HOUR, bucket__gte=earliest, bucket__lte=now).values("bucket").annotate(**sums).order_by("bucket")
    hourly: dict[int, list[tuple[datetime, float]]] = {b.pk: [] for b in budgets}
    for row in rows:
        for b in budgets:
            cost = row[f"b{b.pk}"]
            if cost:
                hourly[b.pk].append((row["bucket"], float(cost)))
    return hourly


@dataclass(frozen=True)
class BudgetShare:
    budget: Budget
    spent_usd: float
    share: float


def budgets_over(*, share: float, now: datetime) -> list[BudgetShare]:
    """Enabled budgets whose current period has spent at least `share` of them, largest share first. Two queries at most."""
    budgets = list(Budget.objects.filter(enabled=True))
    if not budgets:
        return []
    bounds = {b.pk: period_bounds(b.period, now) for b in budgets}
    sums = {f"b{b.pk}": Sum("cost_usd", filter=budget_members_filter(b) & Q(bucket__gte=bounds[b.pk][0])) for b in budgets}
    spent = Rollup.objects.filter(granularity=Granularity.HOUR, bucket__gte=min(s for s, _ in bounds.values()), bucket__lte=now).aggregate(**sums)
    found = [BudgetShare(b, float(spent[f"b{b.pk}"] or 0.0), float(spent[f"b{b.pk}"] or 0.0) / b.amount_usd) for b in budgets]
    return sorted((f for f in found if f.share >= share), key=lambda f: -f.share)


def firing_rules(*, limit: int = 20) -> list[AlertRule]:
    """Enabled alert rules in alert, then warning, longest-standing first. One query."""
    rules = AlertRule.objects.filter(enabled=True, state__in=[AlertState.ALERT, AlertState.WARNING]).select_related("model", "prompt")
    return list(rules.order_by("state", "state_since", "pk")[:limit])  # "alert" sorts before "warning"


def low_score_examples(*, version_ids: Sequence[int], start: datetime, end: datetime, limit: int = 20) -> list[dict]:
    """The `limit` events with the lowest judge score of these prompt versions in [start, end). One query on raw events.

    Per version, the partial index on (prompt_version, judge_score) is read in score order and stops
    after `limit` rows inside the window, so the cost does not grow with the window's traffic (a top-N
    sort of a month of a busy prompt took seconds); the versions' lists are merged with UNION ALL.
    """
    if not version_ids:
        return []
    table, quote = Event._meta.db_table, connection.ops.quote_name
    columns = ["id", "event_id", "timestamp", "prompt_version_id", "judge_score", "faithfulness", "guardrail_triggered"]
    select = ", ".join(quote(c) for c in columns)
    # SQLite without statistics would take the (version, timestamp) index and sort the whole window: name the index.
    hint = " INDEXED BY monitoring_event_judge_idx" if connection.vendor == "sqlite" else ""
    one = (f"SELECT * FROM (SELECT {select} FROM {quote(table)}{hint} WHERE {quote('prompt_version_id')} = %s AND {quote('judge_score')} IS NOT NULL "
           f"AND {quote('timestamp')} >= %s AND {quote('timestamp')} < %s ORDER BY {quote('judge_score')}, {quote('id')} LIMIT %s) AS part")
    sql = " UNION ALL ".join([one] * len(version_ids))
    params = []
    time_field = Event._meta.get_field("timestamp")
    for version_id in version_ids:
        params += [version_id, time_field.get_db_prep_value(start, connection), time_field.get_db_prep_value(end, connection), limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = [dict(zip(["pk", *columns[1:]], row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        if isinstance(row["timestamp"], str):  # SQLite returns the stored text
            row["timestamp"] = time_field.to_python(row["timestamp"]).replace(tzinfo=UTC)
    rows.sort(key=lambda r: (r["judge_score"], -r["timestamp"].timestamp(), r["pk"]))
    return rows[:limit]


def subjects_with_traffic(*, since: datetime) -> dict[str, list[str]]:
    """{"model": [names], "prompt": [names]} of the models and prompts with roll-ups since `since`. One query."""
    rows = (
        Rollup.objects.filter(granularity=Granularity.HOUR, bucket__gte=_hour_floor(since))
        .values_list("model_version__model__name", "prompt_version__prompt__name")
        .distinct()
        .order_by()
    )
    found: dict[str, set[str]] = {"model": set(), "prompt": set()}
    for model, prompt in rows:
        found["model" if model else "prompt"].add(model or prompt)
    return {kind: sorted(names) for kind, names in found.items()}
