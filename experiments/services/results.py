"""The results of an experiment: SQL aggregates of its exposures, outcomes and events in, a snapshot out.

Nothing loops over exposures, outcomes or events in Python. The database returns sums per
(variant, UTC day of exposure):
- units: the exposure counts assignment keeps per day (ExposureCount), the denominators;
- proportion outcome metrics (one query for all of them): per variant and day, the distinct units with an
  outcome of the metric > 0 at or after their exposure (converted units);
- mean outcome metrics (one query for all of them): each unit's outcomes of the metric at or after its
  exposure summed (`post`) and those before it (`pre`, CUPED's covariate); then, per variant and day, the
  sums of post, post², pre, pre², pre x post. A unit without outcomes adds 0 to every sum.
- event metrics and guardrails (one query): the monitoring events of each variant's version whose
  unit is exposed in that variant, at or after the exposure: per unit the mean judge score, share of
  thumbs up, mean latency and cost; per variant requests, errors, cost and its squares, guardrail triggers;
  and the latencies themselves for the P95 (np.percentile).
Cumulative sums over the days (numpy) give the daily series; the last day is the overall result.
Every test is experiments/stats.py's; nothing here is NaN or infinite: "not enough data" instead. A guardrail
vetoes only a degradation beyond its allowed margin that is significant (one-sided, at the experiment's alpha); one
beyond it by the point estimates alone is a warning.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from mlops_site.formatting import number_text
from monitoring.models import Event

from .. import stats
from ..models import (
    Direction,
    EventMetric,
    Experiment,
    Exposure,
    ExposureCount,
    GuardrailMetric,
    GuardrailState,
    MetricKind,
    Outcome,
    Recommendation,
    Variant,
)
from . import sql

MIN_UNITS = 2  # per arm, for any test
# Below this many requests per arm a guardrail's large-sample test (normal or Welch approximation, a P95's standard
# error from the tail's order statistics) is not trusted: a single error moves the rate by a point.
MIN_GUARDRAIL_REQUESTS = 100
ALWAYS_VALID, FIXED_HORIZON = "always_valid", "fixed_horizon"
# How a recommendation names the test that decided it, and why that one (no parentheses: the figures around it have some).
_DECIDED_BY = {ALWAYS_VALID: "the always-valid interval, as the test is still running",
               FIXED_HORIZON: "the fixed-horizon test, as the planned sample size is reached"}
OK, NOT_ENOUGH_DATA = "ok", "not_enough_data"
_MEAN_COLUMNS = ("total", "total_sq", "pre", "pre_sq", "pre_total")
_EVENT_METRICS = (EventMetric.JUDGE_SCORE, EventMetric.THUMBS_UP, EventMetric.LATENCY_MS, EventMetric.COST_USD)
_GUARDRAIL_COLUMNS = ("requests", "errors", "cost_sum", "cost_n", "guard_sum", "guard_n", "cost_sq")


def _num(value) -> float | None:
    """A JSON-safe float: None instead of NaN or infinity."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# --- the snapshot's shapes (stored with dataclasses.asdict; the API's serializers mirror them) ------------------------


@dataclass(frozen=True)
class ArmFigures:
    variant: str
    units: int
    value: float | None  # the rate (proportion) or the mean; None with no units
    conversions: int | None = None  # proportions
    std: float | None = None  # means, with >= 2 units


@dataclass(frozen=True)
class Sequential:
    """The always-valid interval of the difference (GrowthBook's asymptotic confidence sequence)."""

    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    significant: bool


@dataclass(frozen=True)
class CupedFigures:
    theta: float
    variance_reduction: float
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    statistic: float | None
    df: float | None
    p_value: float | None
    significant: bool
    always_valid: Sequential | None


@dataclass(frozen=True)
class Comparison:
    """One variant against the control on one metric: B minus A."""

    variant: str
    control: str
    state: str  # ok | not_enough_data
    message: str = ""
    diff: float | None = None
    lift: float | None = None  # (B - A) / A; None when A is 0
    ci_low: float | None = None
    ci_high: float | None = None
    statistic_name: str = ""  # z (proportions) or t (means)
    statistic: float | None = None
    df: float | None = None
    p_value: float | None = None
    significant: bool = False  # fixed horizon
    always_valid: Sequential | None = None
    cuped: CupedFigures | None = None
    decision_test: str = ""  # which one decides: always_valid while the planned sample is not reached, then fixed_horizon
    decisive: bool = False  # significant by the decision test (on the CUPED-adjusted figures when there are some)
    better: bool | None = None  # when decisive: whether B is better in the metric's direction


@dataclass(frozen=True)
class MetricResults:
    name: str
    kind: str
    direction: str
    primary: bool
    source: str  # outcomes | events
    arms: list[ArmFigures]
    comparisons: list[Comparison]
    cuped_note: str = ""


@dataclass(frozen=True)
class GuardrailArm:
    variant: str
    requests: int
    value: float | None


@dataclass(frozen=True)
class GuardrailCheck:
    """One variant against the control on one guardrail: `state` a GuardrailState; `degradation` the point estimate,
    B - A (absolute) or (B - A) / A (relative); `violated` is state == violated; `p_value` the one-sided test's of a
    degradation beyond the allowed margin, named in `test`."""

    variant: str
    state: str
    degradation: float | None
    violated: bool
    message: str
    p_value: float | None = None
    test: str = ""


@dataclass(frozen=True)
class GuardrailResults:
    metric: str
    max_degradation: float
    relative: bool
    arms: list[GuardrailArm]
    checks: list[GuardrailCheck]


@dataclass(frozen=True)
class SrmFigures:
    chi2: float
    p_value: float
    flagged: bool
    threshold: float
    observed: list[int]
    expected: list[float]


@dataclass(frozen=True)
class Verdict:
    action: str  # a Recommendation value
    variant: str | None
    text: str
    test: str  # the test the decision used
    units_needed_per_arm: int


@dataclass(frozen=True)
class SeriesArm:
    variant: str
    units: list[int]
    value: list[float | None]


@dataclass(frozen=True)
class SeriesLift:
    variant: str
    diff: list[float | None]
    lift: list[float | None]
    ci_low: list[float | None]
    ci_high: list[float | None]
    always_valid_low: list[float | None]
    always_valid_high: list[float | None]


@dataclass(frozen=True)
class DailySeries:
    """The primary metric by UTC day of exposure, cumulative: on day d, the units exposed up to d with all their outcomes so far."""

    metric: str
    kind: str
    days: list[str]
    arms: list[SeriesArm]
    lifts: list[SeriesLift]


@dataclass(frozen=True)
class VariantUnits:
    name: str
    version: int
    weight: float
    control: bool
    units: int


@dataclass(frozen=True)
class Snapshot:
    experiment: str
    computed_at: str
    experiment_status: str
    alpha: float
    planned_per_arm: int
    units_total: int
    decision_test: str
    variants: list[VariantUnits]
    srm: SrmFigures
    metrics: list[MetricResults]
    guardrails: list[GuardrailResults]
    recommendation: Verdict
    series: DailySeries
    leading_variant: str = ""
    significant: bool | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# --- SQL aggregates ---------------------------------------------------------------------------------------------------


@dataclass
class _Cells:
    """Sums of one metric per variant (rows, in position order) and day (columns)."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def cumulative(self) -> dict[str, np.ndarray]:
        return {k: np.cumsum(v, axis=1) for k, v in self.columns.items()}


def _day(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _exposure_counts(experiment: Experiment) -> list[tuple[int, date, int]]:
    rows = ExposureCount.objects.filter(experiment=experiment).values_list("variant_id", "day", "units")
    return [(v, _day(d), int(n)) for v, d, n in rows]


@contextmanager
def _lookups_in_unit_order() -> Iterator[None]:
    """PostgreSQL: join each outcome to its unit's exposure by index lookups, reading the outcomes in unit order.

    Left alone, the planner hashes the outcomes and scans every exposure of the experiment (10M rows in the bench:
    3 to 4 times slower than looking up the outcomes' units in index order). SET LOCAL: for this transaction only
    (inside a caller's transaction, until that one ends). SQLite's planner already does the lookups.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        for setting in ("enable_hashjoin", "enable_mergejoin", "enable_seqscan"):
            cursor.execute(f"SET LOCAL {setting} = off")
        yield


def _conversions(experiment: Experiment, names: list[str]) -> list[tuple]:
    """(metric, variant_id, day, units converted) of proportion metrics: a unit converted when one of its outcomes of the
    metric at or after its exposure is > 0. A unit has one exposure per experiment, so counting distinct units per
    (variant, day) counts it once, in one pass over the join."""
    if not names:
        return []
    day = sql.utc_day("x.exposed_at")
    query = f"""
        SELECT o.metric, x.variant_id, {day}, COUNT(DISTINCT o.unit_id)
        FROM {sql.table(Outcome)} o
        JOIN {sql.table(Exposure)} x ON x.experiment_id = %s AND x.unit_id = o.unit_id
        WHERE o.metric IN ({", ".join(["%s"] * len(names))}) AND o.value > 0 AND o.timestamp >= x.exposed_at
        GROUP BY o.metric, x.variant_id, {day}
    """
    with connection.cursor() as cursor:
        cursor.execute(query, [experiment.pk, *names])
        return cursor.fetchall()


def _unit_sums(experiment: Experiment, names: list[str]) -> list[tuple]:
    """(metric, variant_id, day, units with outcomes, sum post, sum post², sum pre, sum pre², sum pre·post) of mean metrics:
    per unit, `post` sums its outcomes of the metric at or after its exposure and `pre` those before (CUPED's covariate)."""
    if not names:
        return []
    day = sql.utc_day("u.exposed_at")
    # Driven by the outcome index (metric, unit_id, timestamp, value), in unit order, so the inner GROUP BY needs no
    # sort; each unit's exposure comes from the covering index (experiment, unit_id, variant, exposed_at). A unit has one
    # exposure per experiment: its variant and time are the same on each of its rows (sql.one_of_group).
    query = f"""
        SELECT u.metric, u.variant_id, {day}, COUNT(*), SUM(u.post), SUM(u.post * u.post), SUM(u.pre), SUM(u.pre * u.pre), SUM(u.pre * u.post)
        FROM (
            SELECT o.metric AS metric, {sql.one_of_group("x.variant_id")} AS variant_id, {sql.one_of_group("x.exposed_at")} AS exposed_at,
                   SUM(CASE WHEN o.timestamp >= x.exposed_at THEN o.value ELSE 0 END) AS post,
                   SUM(CASE WHEN o.timestamp < x.exposed_at THEN o.value ELSE 0 END) AS pre
            FROM {sql.table(Outcome)} o
            JOIN {sql.table(Exposure)} x ON x.experiment_id = %s AND x.unit_id = o.unit_id
            WHERE o.metric IN ({", ".join(["%s"] * len(names))})
            GROUP BY o.metric, o.unit_id
        ) u
        GROUP BY u.metric, u.variant_id, {day}
    """
    with connection.cursor() as cursor:
        cursor.execute(query, [experiment.pk, *names])
        return cursor.fetchall()


def _event_join(experiment: Experiment) -> tuple[str, list]:
    version = "model_version_id" if experiment.model_id else "prompt_version_id"
    started = Event._meta.get_field("timestamp").get_db_prep_save(experiment.started_at or experiment.created_at, connection)
    # Only the events of each variant's own version, of units exposed in that variant, at or after the exposure.
    # CROSS JOIN keeps this order on SQLite, which has no statistics to choose one by: each variant's events from
    # the (version, timestamp) index, then each event's exposure from the covering (experiment, unit_id, ...) index.
    # Left to itself it looped over the exposures and read the version's events for each: quadratic (10 s for
    # 8,000 units and 12,000 events). PostgreSQL plans a CROSS JOIN with its WHERE like any inner join.
    joins = f"""
        FROM {sql.table(Variant)} v
        CROSS JOIN {sql.table(Event)} e
        CROSS JOIN {sql.table(Exposure)} x
        WHERE v.experiment_id = %s AND e.{version} = v.{version} AND e.timestamp >= %s
          AND x.experiment_id = v.experiment_id AND x.unit_id = e.unit_id AND x.variant_id = v.id AND e.timestamp >= x.exposed_at
    """
    return joins, [experiment.pk, started]


def _event_sums(experiment: Experiment) -> list[tuple]:
    """(variant_id, day, then count/sum/sum² of the per-unit judge score, thumbs-up share, latency, cost, then
    requests, errors, cost sum, priced requests, guardrail triggers, guardrail-checked requests, cost sum of squares)."""
    joins, params = _event_join(experiment)
    day = sql.utc_day("u.exposed_at")
    per_metric = ", ".join(f"COUNT(u.{m}), SUM(u.{m}), SUM(u.{m} * u.{m})" for m in ("judge", "thumbs", "latency", "cost"))
    query = f"""
        SELECT u.variant_id, {day}, {per_metric},
               SUM(u.requests), SUM(u.errors), SUM(u.cost_sum), SUM(u.cost_n), SUM(u.guard_sum), SUM(u.guard_n), SUM(u.cost_sq)
        FROM (
            SELECT x.variant_id AS variant_id, MIN(x.exposed_at) AS exposed_at,
                   AVG(e.judge_score) AS judge,
                   AVG(CASE WHEN e.feedback = 1 THEN 1.0 WHEN e.feedback = -1 THEN 0.0 END) AS thumbs,
                   AVG(e.latency_ms) AS latency, AVG(e.cost_usd) AS cost,
                   COUNT(*) AS requests, SUM(CASE WHEN e.error THEN 1 ELSE 0 END) AS errors,
                   SUM(e.cost_usd) AS cost_sum, COUNT(e.cost_usd) AS cost_n,
                   SUM(CASE WHEN e.guardrail_triggered THEN 1 ELSE 0 END) AS guard_sum, COUNT(e.guardrail_triggered) AS guard_n,
                   SUM(e.cost_usd * e.cost_usd) AS cost_sq
            {joins}
            GROUP BY x.variant_id, e.unit_id
        ) u
        GROUP BY u.variant_id, {day}
    """
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def _latencies(experiment: Experiment) -> list[tuple[int, float]]:
    joins, params = _event_join(experiment)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT x.variant_id, e.latency_ms {joins}", params)
        return cursor.fetchall()


# --- tests of one metric ----------------------------------------------------------------------------------------------


def _sequential(interval: stats.AlwaysValidInterval | None) -> Sequential | None:
    if interval is None:
        return None
    return Sequential(ci_low=_num(interval.ci_low), ci_high=_num(interval.ci_high), p_value=_num(interval.p_value), significant=interval.significant)


def _decide(comparison: Comparison, direction: str, test: str) -> Comparison:
    """Which test decides, whether it is significant, and whether B is better in the metric's direction."""
    figures = comparison.cuped or comparison
    if test == ALWAYS_VALID:
        decisive = bool(figures.always_valid and figures.always_valid.significant)
    else:
        decisive = bool(figures.significant)
    better = None
    if decisive and figures.diff is not None:
        better = figures.diff > 0 if direction == Direction.INCREASE else figures.diff < 0
    return dataclasses.replace(comparison, decision_test=test, decisive=decisive, better=better)


def _proportion_comparison(names: tuple[str, str], n: tuple[int, int], x: tuple[int, int], alpha: float) -> Comparison:
    control, variant = names
    if min(n) < MIN_UNITS:
        return Comparison(variant=variant, control=control, state=NOT_ENOUGH_DATA, message=f"fewer than {MIN_UNITS} units in an arm")
    try:
        fixed = stats.two_proportion_ztest(x[0], n[0], x[1], n[1], alpha=alpha)
        sequential = stats.always_valid_proportions(x[0], n[0], x[1], n[1], alpha=alpha)
    except stats.StatsError as exc:
        return Comparison(variant=variant, control=control, state=NOT_ENOUGH_DATA, message=str(exc))
    return Comparison(
        variant=variant, control=control, state=OK, diff=_num(fixed.diff), lift=_num(fixed.lift), ci_low=_num(fixed.ci_low),
        ci_high=_num(fixed.ci_high), statistic_name="z", statistic=_num(fixed.z_score), p_value=_num(fixed.p_value),
        significant=fixed.significant, always_valid=_sequential(sequential),
    )


def _mean_comparison(names: tuple[str, str], arms: tuple[stats.ArmSummary, stats.ArmSummary], alpha: float) -> Comparison:
    control, variant = names
    a, b = arms
    try:
        fixed = stats.welch_ttest_from_stats(a.mean, a.variance, a.n, b.mean, b.variance, b.n, alpha=alpha)
        sequential = stats.always_valid_means(a.mean, a.variance, a.n, b.mean, b.variance, b.n, alpha=alpha)
    except stats.StatsError as exc:
        return Comparison(variant=variant, control=control, state=NOT_ENOUGH_DATA, message=str(exc))
    return Comparison(
        variant=variant, control=control, state=OK, diff=_num(fixed.diff), lift=_num(fixed.lift), ci_low=_num(fixed.ci_low),
        ci_high=_num(fixed.ci_high), statistic_name="t", statistic=_num(fixed.t), df=_num(fixed.df), p_value=_num(fixed.p_value),
        significant=fixed.significant, always_valid=_sequential(sequential),
    )


def _summaries(n: np.ndarray, total: np.ndarray, total_sq: np.ndarray) -> list[stats.ArmSummary | None]:
    out = []
    for i in range(len(n)):
        try:
            out.append(stats.ArmSummary.from_sums(int(n[i]), float(total[i]), float(total_sq[i])) if n[i] >= MIN_UNITS else None)
        except stats.StatsError:
            out.append(None)
    return out


def _cuped(names: list[str], sums: dict[str, np.ndarray], comparisons: list[Comparison], alpha: float) -> tuple[list[Comparison], str]:
    """CUPED-adjusted comparisons when some unit has values of the metric before its exposure (the covariate)."""
    if float(sums["pre_sq"].sum()) <= 0:
        return comparisons, "no pre-period data: the metric has no values before the units' exposure, so CUPED does not apply"
    n = sums["units"]
    if (n < MIN_UNITS).any():
        return comparisons, ""
    try:
        summary = stats.cuped_from_sums([
            stats.CovariateSums(n=int(n[i]), sum_y=float(sums["total"][i]), sum_y2=float(sums["total_sq"][i]), sum_x=float(sums["pre"][i]),
                                sum_x2=float(sums["pre_sq"][i]), sum_xy=float(sums["pre_total"][i]))
            for i in range(len(n))
        ])
    except stats.StatsError as exc:
        return comparisons, f"CUPED not applied: {exc}"
    a = summary.arms[0]
    out = []
    for i, comparison in enumerate(comparisons, start=1):
        b = summary.arms[i]
        try:
            fixed = stats.welch_ttest_from_stats(a.mean, a.variance, a.n, b.mean, b.variance, b.n, alpha=alpha)
            sequential = stats.always_valid_means(a.mean, a.variance, a.n, b.mean, b.variance, b.n, alpha=alpha)
        except stats.StatsError:
            out.append(comparison)
            continue
        figures = CupedFigures(
            theta=summary.theta, variance_reduction=summary.variance_reduction, diff=_num(fixed.diff), ci_low=_num(fixed.ci_low),
            ci_high=_num(fixed.ci_high), statistic=_num(fixed.t), df=_num(fixed.df), p_value=_num(fixed.p_value),
            significant=fixed.significant, always_valid=_sequential(sequential),
        )
        out.append(dataclasses.replace(comparison, cuped=figures) if comparison.state == OK else comparison)
    return out, f"CUPED on the metric's values before exposure: variance reduced by {summary.variance_reduction:.1%} (theta {summary.theta:.4g})"


def _metric(spec: dict, names: list[str], sums: dict[str, np.ndarray], source: str, alpha: float, test: str, primary: bool,
            with_cuped: bool = True) -> MetricResults:
    """Arms and comparisons of one metric from its sums (one value per variant); CUPED for outcome means."""
    n = sums["units"].astype(np.int64)
    arms, comparisons = [], []
    if spec["kind"] == MetricKind.PROPORTION:
        x = sums["conversions"].astype(np.int64)
        for i, name in enumerate(names):
            arms.append(ArmFigures(variant=name, units=int(n[i]), value=_num(x[i] / n[i]) if n[i] else None, conversions=int(x[i])))
        for i in range(1, len(names)):
            comparisons.append(_proportion_comparison((names[0], names[i]), (int(n[0]), int(n[i])), (int(x[0]), int(x[i])), alpha))
        note = ""
    else:
        summaries = _summaries(n, sums["total"], sums["total_sq"])
        for i, name in enumerate(names):
            s = summaries[i]
            value = s.mean if s else (_num(sums["total"][i] / n[i]) if n[i] else None)
            arms.append(ArmFigures(variant=name, units=int(n[i]), value=_num(value), std=_num(math.sqrt(s.variance)) if s else None))
        for i in range(1, len(names)):
            if summaries[0] is None or summaries[i] is None:
                comparisons.append(Comparison(variant=names[i], control=names[0], state=NOT_ENOUGH_DATA,
                                              message=f"fewer than {MIN_UNITS} units with a value in an arm"))
            else:
                comparisons.append(_mean_comparison((names[0], names[i]), (summaries[0], summaries[i]), alpha))
        note = ""
        if source == "outcomes" and with_cuped:
            comparisons, note = _cuped(names, sums, comparisons, alpha)
    comparisons = [_decide(c, spec["direction"], test) if c.state == OK else c for c in comparisons]
    return MetricResults(name=spec["name"], kind=spec["kind"], direction=spec["direction"], primary=primary, source=source, arms=arms,
                         comparisons=comparisons, cuped_note=note)


# --- guardrails, the recommendation, the series ------------------------------------------------------------------------


@dataclass(frozen=True)
class _GuardArm:
    """One arm's figure of a guardrail and what its test reads: the count (rates), the sums (cost) or the latencies."""

    requests: int  # behind the figure: requests, priced requests, guardrail-checked requests
    value: float | None
    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    values: np.ndarray | None = None


_GUARDRAIL_TESTS = {
    GuardrailMetric.ERROR_RATE: "one-sided z test of the rates (unpooled)",
    GuardrailMetric.GUARDRAIL_RATE: "one-sided z test of the rates (unpooled)",
    GuardrailMetric.COST_PER_REQUEST: "one-sided Welch t test of the means",
    GuardrailMetric.LATENCY_P95: "one-sided z test of the P95s (Maritz-Jarrett standard errors)",
}


def _guardrail_arms(totals: dict[str, np.ndarray], latencies: dict[int, np.ndarray], variant_ids: list[int]) -> dict[str, list[_GuardArm]]:
    """Per guardrail metric, each arm's figure: errors / requests, cost / priced requests, triggers / requests the
    guardrail checked, and the P95 of the latencies (numpy's default linear method)."""

    def share(numerator: str, denominator: str) -> list[_GuardArm]:
        return [_GuardArm(requests=int(d), value=_num(x / d) if d else None, count=int(x))
                for x, d in zip(totals[numerator], totals[denominator], strict=True)]

    cost = [_GuardArm(requests=int(n), value=_num(total / n) if n else None, total=float(total), total_sq=float(sq))
            for total, n, sq in zip(totals["cost_sum"], totals["cost_n"], totals["cost_sq"], strict=True)]
    p95 = []
    for i, variant_id in enumerate(variant_ids):
        values = latencies.get(variant_id)
        has = values is not None and values.size > 0
        p95.append(_GuardArm(requests=int(totals["requests"][i]), value=_num(np.percentile(values, 95)) if has else None,
                             values=values if has else None))
    return {
        GuardrailMetric.ERROR_RATE: share("errors", "requests"),
        GuardrailMetric.GUARDRAIL_RATE: share("guard_sum", "guard_n"),
        GuardrailMetric.COST_PER_REQUEST: cost,
        GuardrailMetric.LATENCY_P95: p95,
    }


def _degradation_test(metric: str, a: _GuardArm, b: _GuardArm, margin: float, relative: bool, alpha: float) -> stats.DegradationTest:
    if metric in (GuardrailMetric.ERROR_RATE, GuardrailMetric.GUARDRAIL_RATE):
        return stats.rate_degradation_test(a.count, a.requests, b.count, b.requests, margin, relative=relative, alpha=alpha)
    if metric == GuardrailMetric.COST_PER_REQUEST:
        sa, sb = (stats.ArmSummary.from_sums(arm.requests, arm.total, arm.total_sq) for arm in (a, b))
        return stats.mean_degradation_test(sa.mean, sa.variance, sa.n, sb.mean, sb.variance, sb.n, margin, relative=relative, alpha=alpha)
    return stats.quantile_degradation_test(a.values, b.values, margin, relative=relative, q=0.95, alpha=alpha)


def _guardrail(spec: dict, names: list[str], figures: list[_GuardArm], alpha: float) -> GuardrailResults:
    """Each variant against the control: violated only when the degradation beyond the allowed margin is significant
    (one-sided at alpha); beyond it by the point estimates alone, a warning that changes no recommendation."""
    metric, allowed, relative = spec["metric"], spec["max_degradation"], spec["relative"]
    arms = [GuardrailArm(variant=name, requests=f.requests, value=f.value) for name, f in zip(names, figures, strict=True)]
    checks = []
    base = figures[0]
    limit = f"{allowed:.1%}" if relative else f"{allowed:g}"
    for name, figure in zip(names[1:], figures[1:], strict=True):

        def not_enough(message: str, name=name) -> GuardrailCheck:
            return GuardrailCheck(variant=name, state=GuardrailState.NOT_ENOUGH_DATA, degradation=None, violated=False, message=message)

        if min(base.requests, figure.requests) < MIN_GUARDRAIL_REQUESTS or base.value is None or figure.value is None:
            checks.append(not_enough(f"fewer than {MIN_GUARDRAIL_REQUESTS} requests with this figure in an arm"))
            continue
        if relative and base.value == 0:
            checks.append(not_enough("the control's value is 0: a relative change is undefined"))
            continue
        try:
            test = _degradation_test(metric, base, figure, allowed, relative, alpha)
        except stats.StatsError as exc:
            checks.append(not_enough(str(exc)))
            continue
        degradation = (figure.value - base.value) / base.value if relative else figure.value - base.value
        shown = f"{degradation:+.1%}" if relative else f"{degradation:+.4g}"
        p = f"one-sided p = {test.p_value:.2g}"
        if test.excess <= 0:
            state, reading = GuardrailState.OK, f"within the {limit} allowed"
        elif test.significant:
            state, reading = GuardrailState.VIOLATED, f"significantly beyond the {limit} allowed: {p} < {alpha:g}"
        else:
            state, reading = GuardrailState.WARNING, f"beyond the {limit} allowed, not significantly: {p}"
        checks.append(GuardrailCheck(variant=name, state=state, degradation=_num(degradation), violated=state == GuardrailState.VIOLATED,
                                     message=f"{metric} {shown} vs {names[0]} ({reading})", p_value=_num(test.p_value),
                                     test=_GUARDRAIL_TESTS[metric]))
    return GuardrailResults(metric=metric, max_degradation=allowed, relative=relative, arms=arms, checks=checks)


def _effect_text(comparison: Comparison, kind: str) -> str:
    figures = comparison.cuped or comparison
    if figures.diff is None:
        return ""
    always_valid = figures.always_valid
    if kind == MetricKind.PROPORTION:
        diff = f"{figures.diff * 100:+.3g} points"
        interval = f"[{figures.ci_low * 100:+.3g}, {figures.ci_high * 100:+.3g}] points" if figures.ci_low is not None else ""
        av = f"[{always_valid.ci_low * 100:+.3g}, {always_valid.ci_high * 100:+.3g}] points" if always_valid and always_valid.ci_low is not None else ""
    else:
        diff = f"{figures.diff:+.4g}"
        interval = f"[{number_text(figures.ci_low)}, {number_text(figures.ci_high)}]"
        av = f"[{number_text(always_valid.ci_low)}, {number_text(always_valid.ci_high)}]" if always_valid else ""
    lift = f" ({comparison.lift * 100:+.3g} %)" if comparison.lift is not None and not comparison.cuped else ""
    chosen = av if comparison.decision_test == ALWAYS_VALID else interval
    label = "always-valid interval" if comparison.decision_test == ALWAYS_VALID else "fixed-horizon interval"
    return f"{diff}{lift}, {label} {chosen}" + (" (CUPED-adjusted)" if comparison.cuped else "")


def _verdict(primary: MetricResults, guardrails: list[GuardrailResults], srm: SrmFigures, test: str, needed: int, planned: int) -> Verdict:
    metric = primary.name
    if srm.flagged:
        return Verdict(action=Recommendation.INVESTIGATE, variant=None, test=test, units_needed_per_arm=needed,
                       text=f"Sample ratio mismatch (p = {srm.p_value:.2g} < {srm.threshold:g}): investigate the randomisation; do not trust the results.")
    violated: dict[str, list[str]] = {}
    warnings: dict[str, list[str]] = {}
    for g in guardrails:
        for check in g.checks:
            if check.state == GuardrailState.VIOLATED:
                violated.setdefault(check.variant, []).append(check.message)
            elif check.state == GuardrailState.WARNING:
                warnings.setdefault(check.variant, []).append(g.metric)
    decided_by = _DECIDED_BY[test]
    better = [c for c in primary.comparisons if c.state == OK and c.decisive and c.better and c.variant not in violated]
    if better:
        sign = 1 if primary.direction == Direction.INCREASE else -1
        best = max(better, key=lambda c: sign * ((c.cuped or c).diff or 0.0))
        warned = warnings.get(best.variant)
        guarded = "no guardrail violated" + (f", {' and '.join(warned)} beyond the allowed degradation but not significantly" if warned else "")
        return Verdict(action=Recommendation.PROMOTE, variant=best.variant, test=test, units_needed_per_arm=needed,
                       text=f"Promote {best.variant}: {metric} {_effect_text(best, primary.kind)} against {best.control}, "
                            f"significantly better by {decided_by}; {guarded}; no sample ratio mismatch.")
    reasons, worse = {}, False
    for c in primary.comparisons:
        if c.variant in violated:
            reasons[c.variant] = f"{c.variant} violates a guardrail: " + "; ".join(violated[c.variant])
        elif c.state == OK and c.decisive and c.better is False:
            reasons[c.variant] = f"{c.variant} is significantly worse on {metric}: {_effect_text(c, primary.kind)}"
            worse = True
    if primary.comparisons and len(reasons) == len(primary.comparisons):
        return Verdict(action=Recommendation.DISCARD, variant=None, test=test, units_needed_per_arm=needed,
                       text="Discard: " + "; ".join(reasons.values()) + "." + (f" Decided by {decided_by}." if worse else ""))
    if needed > 0:
        return Verdict(action=Recommendation.KEEP_RUNNING, variant=None, test=test, units_needed_per_arm=needed,
                       text=f"Keep running: no variant is significantly better on {metric} by the always-valid interval yet; "
                            f"{needed:,} more units per arm reach the planned {planned:,}.")
    return Verdict(action=Recommendation.ITERATE, variant=None, test=test, units_needed_per_arm=0,
                   text=f"Iterate: the planned sample size ({planned:,} per arm) is reached and no variant is significantly better "
                        f"on {metric} by the fixed-horizon test.")


def _series(spec: dict, names: list[str], days: list[date], cumulative: dict[str, np.ndarray], source: str, alpha: float) -> DailySeries:
    arms = [SeriesArm(variant=name, units=[], value=[]) for name in names]
    lifts = [SeriesLift(variant=name, diff=[], lift=[], ci_low=[], ci_high=[], always_valid_low=[], always_valid_high=[]) for name in names[1:]]
    for d in range(len(days)):
        sums = {k: v[:, d] for k, v in cumulative.items()}
        # The same tests as the overall result, on the units exposed up to day d (CUPED only in the overall result).
        result = _metric(spec, names, sums, source, alpha, ALWAYS_VALID, primary=True, with_cuped=False)
        for arm, figures in zip(arms, result.arms, strict=True):
            arm.units.append(figures.units)
            arm.value.append(figures.value)
        for lift, c in zip(lifts, result.comparisons, strict=True):
            lift.diff.append(c.diff)
            lift.lift.append(c.lift)
            lift.ci_low.append(c.ci_low)
            lift.ci_high.append(c.ci_high)
            lift.always_valid_low.append(c.always_valid.ci_low if c.always_valid else None)
            lift.always_valid_high.append(c.always_valid.ci_high if c.always_valid else None)
    return DailySeries(metric=spec["name"], kind=spec["kind"], days=[d.isoformat() for d in days], arms=arms, lifts=lifts)


def _leading(primary: MetricResults) -> str:
    candidates = [a for a in primary.arms if a.value is not None and a.units >= MIN_UNITS]
    if not candidates:
        return ""
    sign = 1 if primary.direction == Direction.INCREASE else -1
    best = max(candidates, key=lambda a: sign * a.value)
    return best.variant if sum(1 for a in candidates if a.value == best.value) == 1 else ""


# --- the whole snapshot ------------------------------------------------------------------------------------------------


def experiment_results_compute(experiment: Experiment) -> Snapshot:
    """Aggregate the experiment's data in SQL and run every test: the snapshot an Analysis stores."""
    variants = list(experiment.variants.select_related("model_version", "prompt_version").order_by("position"))
    names = [v.name for v in variants]
    index = {v.pk: i for i, v in enumerate(variants)}
    specs = [{"name": experiment.primary_metric_name, "kind": experiment.primary_metric_kind, "direction": experiment.primary_metric_direction},
             *experiment.secondary_metrics]
    proportions = [s["name"] for s in specs if s["name"] not in EventMetric.values and s["kind"] == MetricKind.PROPORTION]
    means = [s["name"] for s in specs if s["name"] not in EventMetric.values and s["kind"] == MetricKind.MEAN]
    event_specs = [s for s in specs if s["name"] in EventMetric.values]

    counts = _exposure_counts(experiment)
    with _lookups_in_unit_order():
        conversion_rows = _conversions(experiment, proportions)
        mean_rows = _unit_sums(experiment, means)
    event_rows = _event_sums(experiment) if event_specs or experiment.guardrails else []
    seen_days = ({d for _, d, _ in counts} | {_day(r[2]) for r in conversion_rows} | {_day(r[2]) for r in mean_rows}
                 | {_day(r[1]) for r in event_rows})
    days = []
    if seen_days:
        first, last = min(seen_days), max(seen_days)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    day_index = {d: i for i, d in enumerate(days)}
    shape = (len(variants), len(days))

    units = np.zeros(shape, dtype=np.int64)
    for variant_id, d, n in counts:
        units[index[variant_id], day_index[d]] += n
    cells: dict[str, _Cells] = {}
    for name in proportions:
        cells[name] = _Cells({"units": units.astype(float), "conversions": np.zeros(shape)})
    for metric, variant_id, d, converted in conversion_rows:
        cells[metric].columns["conversions"][index[variant_id], day_index[_day(d)]] += float(converted)
    for name in means:
        cells[name] = _Cells({"units": units.astype(float), **{c: np.zeros(shape) for c in _MEAN_COLUMNS}})
    for metric, variant_id, d, _with, *sums in mean_rows:
        target = cells[metric].columns
        i, j = index[variant_id], day_index[_day(d)]
        for column, value in zip(_MEAN_COLUMNS, sums, strict=True):
            target[column][i, j] += float(value or 0)
    totals = {c: np.zeros(len(variants)) for c in _GUARDRAIL_COLUMNS}
    for m in _EVENT_METRICS:
        cells[m] = _Cells({c: np.zeros(shape) for c in ("units", "total", "total_sq")})
    for variant_id, d, *values in event_rows:
        i, j = index[variant_id], day_index[_day(d)]
        for k, m in enumerate(_EVENT_METRICS):
            n, s1, s2 = values[3 * k : 3 * k + 3]
            cells[m].columns["units"][i, j] += float(n or 0)
            cells[m].columns["total"][i, j] += float(s1 or 0)
            cells[m].columns["total_sq"][i, j] += float(s2 or 0)
        for column, value in zip(_GUARDRAIL_COLUMNS, values[12:], strict=True):
            totals[column][i] += float(value or 0)

    per_arm = units.sum(axis=1)
    planned = experiment.sample_size_per_arm
    needed = max(0, planned - int(per_arm.min())) if len(per_arm) else planned
    test = ALWAYS_VALID if needed > 0 else FIXED_HORIZON
    weights = [float(v.weight) for v in variants]
    srm_result = stats.srm_check(per_arm, weights)
    srm = SrmFigures(chi2=_num(srm_result.chi2) or 0.0, p_value=_num(srm_result.p_value) or 0.0, flagged=srm_result.flagged,
                     threshold=stats.SRM_THRESHOLD, observed=[int(x) for x in per_arm], expected=[float(x) for x in srm_result.expected])

    metrics = []
    for k, spec in enumerate(specs):
        source = "events" if spec["name"] in EventMetric.values else "outcomes"
        sums = {c: v.sum(axis=1) for c, v in cells[spec["name"]].columns.items()}
        metrics.append(_metric(spec, names, sums, source, experiment.alpha, test, primary=k == 0))

    latencies: dict[int, np.ndarray] = {}
    if any(g["metric"] == GuardrailMetric.LATENCY_P95 for g in experiment.guardrails):
        rows = np.array(_latencies(experiment), dtype=float).reshape(-1, 2)
        latencies = {int(v): rows[rows[:, 0] == v, 1] for v in np.unique(rows[:, 0])}
    figures = _guardrail_arms(totals, latencies, [v.pk for v in variants])
    guardrails = [_guardrail(g, names, figures[g["metric"]], experiment.alpha) for g in experiment.guardrails]

    primary = metrics[0]
    verdict = _verdict(primary, guardrails, srm, test, needed, planned)
    primary_cells = cells[specs[0]["name"]].cumulative()
    series = _series(specs[0], names, days, primary_cells, primary.source, experiment.alpha)
    deciding = [c for c in primary.comparisons if c.state == OK]
    significant = None if not deciding else verdict.action in (Recommendation.PROMOTE, Recommendation.DISCARD) and any(c.decisive for c in deciding)
    return Snapshot(
        experiment=experiment.key, computed_at=timezone.now().isoformat(), experiment_status=experiment.status, alpha=experiment.alpha,
        planned_per_arm=planned, units_total=int(per_arm.sum()), decision_test=test,
        variants=[VariantUnits(name=v.name, version=v.version.version, weight=float(v.weight), control=v.is_control, units=int(per_arm[i]))
                  for i, v in enumerate(variants)],
        srm=srm, metrics=metrics, guardrails=guardrails, recommendation=verdict, series=series, leading_variant=_leading(primary),
        significant=significant,
    )
