"""Reads of the roll-ups: a series per bucket, totals over a window, spend per day. Each is one query.

Pages, alerts, /metrics and the canary controller read the roll-ups (kept by services/rollups.py) here, never raw events:

- `rollup_series`: one point per bucket of a model's or prompt's versions (merged) in a window;
- `rollup_totals`: the same metrics over the whole window, one merged point;
- `rollup_spend`: known cost per UTC day and model (or prompt) name, for the stacked spend chart;
- `shadow_totals`: the metrics of `rollup_totals` for one version's shadow events, which the roll-ups leave out
  (mirrored to a canary's candidate in its shadow stage, served to nobody): the one read of raw events here.

Granularity rule of the reads: minute roll-ups for windows up to 6 hours (at most 360 points),
hour roll-ups beyond (see `window_granularity`). A window [start, end) takes every bucket that starts in
[start floored to the bucket, end), so its edges are rounded out to whole buckets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal, NamedTuple

import numpy as np
from django.db.models import Sum
from django.db.models.functions import TruncDate

from mlops_site.exceptions import ValidationFailed

from ..models import Event, Granularity, Rollup
from ..models.operations import COUNTERS, FLOAT_COUNTERS
from ..sketch import QuantileSketch, merge_blobs_by_group

STEP = {Granularity.MINUTE: 60, Granularity.HOUR: 3600}
MINUTE_WINDOW_LIMIT = timedelta(hours=6)

Kind = Literal["model", "prompt"]


@dataclass(frozen=True)
class OpsMetrics:
    """Operations metrics of one bucket (or a whole window). Ratios are None when their denominator is 0."""

    bucket: datetime  # start of the bucket (of the window, for totals)
    seconds: float  # the part of the bucket inside the window
    requests: int
    throughput: float  # requests / seconds
    errors: int
    error_rate: float | None
    latency_avg: float | None
    latency_p50: float | None  # from the merged sketches: within 1 % of the exact percentile
    latency_p95: float | None
    latency_p99: float | None
    ttft_count: int
    ttft_p95: float | None
    token_requests: int  # requests that reported tokens; the averages are per such request
    input_tokens_avg: float | None
    output_tokens_avg: float | None
    cost_usd: float  # the known cost; requests with pricing missing add nothing
    cost_requests: int
    cost_per_request: float | None  # cost_usd / cost_requests
    pricing_missing: int
    guardrail_known: int
    guardrail_rate: float | None  # triggered / requests that reported the guardrail
    feedback_count: int
    thumbs_up_share: float | None  # up / (up + down)
    judge_count: int
    judge_avg: float | None
    faithfulness_count: int
    faithfulness_avg: float | None


@dataclass(frozen=True)
class OpsSeries:
    """The metrics of each bucket with traffic in the window, oldest first (a bucket without events has no point)."""

    kind: str
    name: str
    versions: tuple[int, ...] | None
    granularity: str
    start: datetime  # floored to the granularity
    end: datetime
    points: tuple[OpsMetrics, ...]
    totals: OpsMetrics  # the whole window, from the same rows (zero counts without traffic)
    point_seconds: int = 60  # the span of one point: a roll-up bucket, or several hour buckets on long windows

    def column(self, metric: str) -> list:
        """One metric of every point, for a chart: `series.column("latency_p95")`."""
        return [getattr(point, metric) for point in self.points]


class DailySpend(NamedTuple):
    day: date  # UTC
    name: str
    cost_usd: float


def window_granularity(start: datetime, end: datetime) -> str:
    """Minute roll-ups for a window up to 6 hours, hour roll-ups beyond."""
    return Granularity.MINUTE if end - start <= MINUTE_WINDOW_LIMIT else Granularity.HOUR


def _floor(when: datetime, granularity: str) -> datetime:
    when = when.astimezone(UTC)
    return when.replace(second=0, microsecond=0) if granularity == Granularity.MINUTE else when.replace(minute=0, second=0, microsecond=0)


def _window(kind: str, start: datetime, end: datetime, granularity: str | None) -> tuple[str, datetime]:
    if kind not in ("model", "prompt"):
        raise ValidationFailed(f"kind must be 'model' or 'prompt', not {kind!r}.")
    if end <= start:
        raise ValidationFailed("The window must end after it starts.")
    granularity = granularity or window_granularity(start, end)
    if granularity not in STEP:
        raise ValidationFailed(f"granularity must be 'minute' or 'hour', not {granularity!r}.")
    return granularity, _floor(start, granularity)


def _rows(kind: str, name: str, versions: Sequence[int] | None, granularity: str, start: datetime, end: datetime) -> list[tuple]:
    """The roll-up rows of the chosen versions in the window: one query (the name and versions filter through joins)."""
    prefix = "model_version__model" if kind == "model" else "prompt_version__prompt"
    filters = {f"{prefix}__name": name, "granularity": granularity, "bucket__gte": start, "bucket__lt": end}
    if versions is not None:
        filters[f"{prefix.split('__')[0]}__version__in"] = list(versions)
    return list(Rollup.objects.filter(**filters).values_list("bucket", *COUNTERS, "latency_sketch", "ttft_sketch"))


def _metrics(rows: list[tuple], group: np.ndarray, n: int) -> tuple[dict[str, np.ndarray], list[QuantileSketch], list[QuantileSketch]]:
    """Counters summed and sketches merged per group (group[i] is the group of row i): a bincount per counter, one merge per sketch column."""
    columns = list(zip(*rows, strict=True))
    sums = {name: np.bincount(group, weights=np.asarray(columns[1 + i], dtype=np.float64), minlength=n) for i, name in enumerate(COUNTERS)}
    merged, empty = [], QuantileSketch()
    for blobs in columns[-2:]:
        by_group = merge_blobs_by_group(group, blobs)
        merged.append([by_group.get(g, empty) for g in range(n)])
    return sums, merged[0], merged[1]


def _point(sums: dict[str, np.ndarray], g: int, latency: QuantileSketch, ttft: QuantileSketch, bucket: datetime, seconds: float) -> OpsMetrics:
    value = {name: (float(sums[name][g]) if name in FLOAT_COUNTERS else int(round(sums[name][g]))) for name in COUNTERS}

    def ratio(top: float, bottom: float) -> float | None:
        return top / bottom if bottom else None

    p50, p95, p99 = latency.quantiles([0.5, 0.95, 0.99])
    requests, feedback = value["requests"], value["feedback_up"] + value["feedback_down"]
    return OpsMetrics(
        bucket=bucket, seconds=seconds, requests=requests, throughput=requests / seconds, errors=value["errors"],
        error_rate=ratio(value["errors"], requests), latency_avg=ratio(value["latency_sum"], requests),
        latency_p50=p50, latency_p95=p95, latency_p99=p99, ttft_count=value["ttft_count"], ttft_p95=ttft.quantile(0.95),
        token_requests=value["token_requests"], input_tokens_avg=ratio(value["input_tokens"], value["token_requests"]),
        output_tokens_avg=ratio(value["output_tokens"], value["token_requests"]), cost_usd=value["cost_usd"],
        cost_requests=value["cost_requests"], cost_per_request=ratio(value["cost_usd"], value["cost_requests"]),
        pricing_missing=value["pricing_missing"], guardrail_known=value["guardrail_known"],
        guardrail_rate=ratio(value["guardrail_triggered"], value["guardrail_known"]), feedback_count=feedback,
        thumbs_up_share=ratio(value["feedback_up"], feedback), judge_count=value["judge_count"],
        judge_avg=ratio(value["judge_sum"], value["judge_count"]), faithfulness_count=value["faithfulness_count"],
        faithfulness_avg=ratio(value["faithfulness_sum"], value["faithfulness_count"]),
    )


def point_seconds(granularity: str, start: datetime, end: datetime) -> int:
    """The span of one chart point: the roll-up bucket, or on windows over 2 days several hours
    (3 h up to 7 days, 6 h beyond: 120 points for 30 days), so a page stays fast at any range."""
    if granularity == Granularity.MINUTE:
        return STEP[granularity]
    days = (end - start).total_seconds() / 86400
    return 3600 if days <= 2 else (3 * 3600 if days <= 7 else 6 * 3600)


def rollup_series(
    *, kind: Kind, name: str, versions: Sequence[int] | None = None, start: datetime, end: datetime, granularity: str | None = None
) -> OpsSeries:
    """Per point in [start, end) (sorted), the operations metrics of `name`'s versions merged (all versions when None),
    and the totals of the whole window from the same rows.

    `versions` are version numbers. `granularity` None: `window_granularity` (minutes up to 6 hours, then hours);
    a point spans `point_seconds`. Throughput is requests per second of the part of the point inside the window. One query.
    """
    granularity, start = _window(kind, start, end, granularity)
    rows = _rows(kind, name, versions, granularity, start, end)
    step = point_seconds(granularity, start, end)
    series = {"kind": kind, "name": name, "versions": tuple(versions) if versions is not None else None, "granularity": granularity,
              "start": start, "end": end, "point_seconds": step}
    if not rows:
        return OpsSeries(**series, points=(), totals=rollup_totals_empty(start=start, end=end))
    begin, end_seconds = int(start.timestamp()), end.timestamp()
    seconds = np.array([int(row[0].timestamp()) for row in rows], dtype=np.int64)
    buckets, group = np.unique(begin + (seconds - begin) // step * step, return_inverse=True)
    sums, latency, ttft = _metrics(rows, group, buckets.size)
    points = tuple(
        _point(sums, g, latency[g], ttft[g], datetime.fromtimestamp(b, UTC), min(b + step, end_seconds) - b) for g, b in enumerate(buckets.tolist())
    )
    whole = {name: np.array([values.sum()]) for name, values in sums.items()}
    totals = _point(whole, 0, QuantileSketch.merge_all(latency), QuantileSketch.merge_all(ttft), start, end_seconds - begin)
    return OpsSeries(**series, points=points, totals=totals)


def rollup_totals(
    *, kind: Kind, name: str, versions: Sequence[int] | None = None, start: datetime, end: datetime, granularity: str | None = None
) -> OpsMetrics:
    """The metrics of `rollup_series` over the whole window: one point, counters summed and sketches merged. One query.

    Its `bucket` is the window start floored to the granularity and its throughput is per second from there to `end`.
    """
    granularity, start = _window(kind, start, end, granularity)
    rows = _rows(kind, name, versions, granularity, start, end)
    seconds = (end - start).total_seconds()
    if not rows:
        return rollup_totals_empty(start=start, end=end)
    sums, latency, ttft = _metrics(rows, np.zeros(len(rows), dtype=np.int64), 1)
    return _point(sums, 0, latency[0], ttft[0], start, seconds)


def rollup_totals_empty(*, start: datetime, end: datetime) -> OpsMetrics:
    """The totals of a window without traffic: zero counts, no ratios."""
    empty = {column: np.zeros(1) for column in COUNTERS}
    return _point(empty, 0, QuantileSketch(), QuantileSketch(), start, (end - start).total_seconds())


def rollup_spend(*, start: datetime, end: datetime, group_by: Kind) -> list[DailySpend]:
    """Known cost per UTC day and model (or prompt) name, all versions together, from the hour roll-ups in
    [start floored to the hour, end); sorted by day then name. One query."""
    _window(group_by, start, end, Granularity.HOUR)
    prefix = "model_version" if group_by == "model" else "prompt_version"
    label = f"{prefix}__{'model' if group_by == 'model' else 'prompt'}__name"
    rows = (
        Rollup.objects.filter(**{f"{prefix}__isnull": False}, granularity=Granularity.HOUR, bucket__gte=_floor(start, Granularity.HOUR), bucket__lt=end)
        .annotate(day=TruncDate("bucket", tzinfo=UTC))
        .values_list("day", label)
        .annotate(cost=Sum("cost_usd"))
        .order_by("day", label)
    )
    return [DailySpend(day, subject, float(cost or 0.0)) for day, subject, cost in rows]



_SHADOW_COLUMNS = ("latency_ms", "error", "ttft_ms", "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "cache_creation_tokens",
                   "cost_usd", "pricing_missing", "guardrail_triggered", "feedback", "judge_score", "faithfulness")


def shadow_totals(*, kind: Kind, name: str, version: int, start: datetime, end: datetime) -> OpsMetrics:
    """The metrics of `rollup_totals` over the shadow events of one version in [start floored to the minute, end):
    the requests a canary's shadow stage mirrored to its candidate. The roll-ups leave these out (they count served
    traffic), so they are summed here from the events, the latency percentiles from a sketch of their values as the
    roll-ups keep them (within 1 %). One query; a shadow stage lasts hours at most."""
    _, start = _window(kind, start, end, Granularity.MINUTE)
    prefix = "model_version" if kind == "model" else "prompt_version"
    parent = "model" if kind == "model" else "prompt"
    rows = list(
        Event.objects.filter(**{f"{prefix}__{parent}__name": name, f"{prefix}__version": version}, shadow=True, timestamp__gte=start, timestamp__lt=end)
        .values_list(*_SHADOW_COLUMNS)
    )
    if not rows:
        return rollup_totals_empty(start=start, end=end)
    c = dict(zip(_SHADOW_COLUMNS, (np.array(column, dtype=object) for column in zip(*rows, strict=True)), strict=True))

    def present(column: str) -> np.ndarray:
        return np.array([value is not None for value in c[column]])

    def numbers(column: str) -> np.ndarray:
        return c[column][present(column)].astype(np.float64)

    guardrail, feedback = c["guardrail_triggered"], c["feedback"]
    sums = {
        "requests": len(rows), "errors": int(sum(bool(v) for v in c["error"])), "latency_sum": float(numbers("latency_ms").sum()),
        "ttft_count": int(present("ttft_ms").sum()), "ttft_sum": float(numbers("ttft_ms").sum()),
        "token_requests": int((present("input_tokens") | present("output_tokens")).sum()),
        **{column: float(numbers(column).sum()) for column in ("input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens", "cache_creation_tokens")},
        "cost_usd": float(numbers("cost_usd").sum()), "cost_requests": int(present("cost_usd").sum()),
        "pricing_missing": int(sum(bool(v) for v in c["pricing_missing"])),
        "guardrail_known": int(present("guardrail_triggered").sum()), "guardrail_triggered": int(sum(v is True for v in guardrail)),
        "feedback_up": int(sum(v == 1 for v in feedback)), "feedback_down": int(sum(v == -1 for v in feedback)),
        "judge_count": int(present("judge_score").sum()), "judge_sum": float(numbers("judge_score").sum()),
        "faithfulness_count": int(present("faithfulness").sum()), "faithfulness_sum": float(numbers("faithfulness").sum()),
    }
    latency, ttft = QuantileSketch.from_values(numbers("latency_ms")), QuantileSketch.from_values(numbers("ttft_ms"))
    return _point({column: np.array([value], dtype=np.float64) for column, value in sums.items()}, 0, latency, ttft, start,
                  (end - start).total_seconds())
