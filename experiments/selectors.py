"""Read queries of experiments, shared by pages, the API, tasks and commands. Every list is a fixed number of queries.

What a page needs:
- the list: `experiment_list` (status, subject, units, the latest finished analysis's leading variant and
  recommendation as columns) + `progress` and `Experiment.days_running` (no query);
- one experiment: `experiment_get`, its variants with their units, `analysis_latest` (the newest finished
  results, whose snapshot holds the daily series: `results["series"]`) and `analysis_current` (a run waiting
  or in progress, for a "computing..." note);
- the sample-size calculator: `sample_size_estimate`, with the subject's current traffic;
- rollouts: `rollout_list` (stage, share and `rollout_health` without a query), `rollout_get` (with its decisions),
  `rollout_series` (candidate against baseline per metric over the rollout, from the roll-ups), `rollout_active_get`,
  and the policies (`rollout_policy_list`, `rollout_policy_get`);
- `/metrics`: `rollout_latest_list` (each subject's newest rollout) and `variant_list(running=True)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.core.cache import cache
from django.db.models import BigIntegerField, Count, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum, Window
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from mlops_site.exceptions import NotFound, ValidationFailed
from monitoring.models import Event, Granularity
from monitoring.selectors.rollups import OpsMetrics, rollup_series
from registry.models import ModelVersion, Prompt, PromptVersion, RegisteredModel

from . import canary, stats
from .models import (
    ACTIVE_ROLLOUT,
    Analysis,
    AnalysisStatus,
    Experiment,
    ExperimentStatus,
    ExposureCount,
    MetricKind,
    Rollout,
    RolloutDecision,
    RolloutPolicy,
    RolloutStatus,
    Variant,
)

TRAFFIC_DAYS = 7
TRAFFIC_CACHE_S = 600
SAMPLE_SIZE_METHOD = {
    MetricKind.PROPORTION: "statsmodels-equivalent NormalIndPower on Cohen's h, two-sided",
    MetricKind.MEAN: "statsmodels-equivalent NormalIndPower on Cohen's d = mde / std, two-sided",
}


def _units_of_variant() -> Subquery:
    total = ExposureCount.objects.filter(variant=OuterRef("pk")).order_by().values("variant").annotate(n=Sum("units")).values("n")
    return Coalesce(Subquery(total, output_field=BigIntegerField()), 0)


def variant_list(*, experiment: Experiment | None = None, running: bool = False) -> QuerySet[Variant]:
    """Variants in position order (the control first) with their versions and `units` exposed so far; `running`: only
    those of running experiments, each with its experiment and subject (one query)."""
    qs = Variant.objects.select_related("model_version", "prompt_version").annotate(units=_units_of_variant()).order_by("experiment_id", "position")
    if running:
        qs = qs.filter(experiment__status=ExperimentStatus.RUNNING).select_related("experiment__model", "experiment__prompt")
    return qs.filter(experiment=experiment) if experiment is not None else qs


def _with_summary(qs: QuerySet[Experiment]) -> QuerySet[Experiment]:
    latest = Analysis.objects.filter(experiment=OuterRef("pk"), status=AnalysisStatus.DONE).order_by("-finished_at", "-id")
    units = ExposureCount.objects.filter(experiment=OuterRef("pk")).order_by().values("experiment").annotate(n=Sum("units")).values("n")
    return (
        qs.select_related("model", "prompt", "created_by", "decided_by")
        .annotate(
            units_total=Coalesce(Subquery(units, output_field=BigIntegerField()), 0),
            latest_analysis_id=Subquery(latest.values("pk")[:1]),
            latest_analysis_at=Subquery(latest.values("finished_at")[:1]),
            leading_variant=Subquery(latest.values("leading_variant")[:1]),
            recommendation=Subquery(latest.values("recommendation")[:1]),
            significant=Subquery(latest.values("significant")[:1]),
            srm_flagged=Subquery(latest.values("srm_flagged")[:1]),
        )
        .prefetch_related(Prefetch("variants", queryset=variant_list()))
    )


def experiment_list(*, status: str | None = None, model: RegisteredModel | None = None, prompt: Prompt | None = None) -> QuerySet[Experiment]:
    """Experiments, newest first, each with `units_total`, its variants (prefetched, with `units`), and the latest
    finished analysis's `leading_variant`, `recommendation`, `significant`, `srm_flagged`, `latest_analysis_at`.
    Two queries for any number of experiments (three with a paginator's count)."""
    if status is not None and status not in ExperimentStatus.values:
        raise ValidationFailed(f"status: one of {', '.join(ExperimentStatus.values)}.", fields={"status": [f"unknown status {status!r}"]})
    qs = Experiment.objects.all()
    if status:
        qs = qs.filter(status=status)
    if model is not None:
        qs = qs.filter(model=model)
    if prompt is not None:
        qs = qs.filter(prompt=prompt)
    return _with_summary(qs).order_by("-created_at", "-id")


def experiment_get(*, key: str) -> Experiment:
    """One experiment with everything `experiment_list` annotates. NotFound (404) for an unknown key."""
    found = _with_summary(Experiment.objects.filter(key=key)).first()
    if found is None:
        raise NotFound(f"No experiment {key!r}.")
    return found


def progress(experiment: Experiment) -> float:
    """Share of the planned sample reached by the smallest arm, 0 to 1 (from prefetched variants: no query)."""
    variants = list(experiment.variants.all())
    if not variants or not experiment.sample_size_per_arm:
        return 0.0
    return min(1.0, min(getattr(v, "units", 0) for v in variants) / experiment.sample_size_per_arm)


def analysis_latest(*, experiment: Experiment) -> Analysis | None:
    """The newest finished analysis (its `results` are the snapshot pages and the API show), or None."""
    return Analysis.objects.filter(experiment=experiment, status=AnalysisStatus.DONE).order_by("-finished_at", "-id").first()


def analysis_current(*, experiment: Experiment) -> Analysis | None:
    """An analysis waiting or being computed, if any (the newest)."""
    return (Analysis.objects.filter(experiment=experiment, status__in=[AnalysisStatus.PENDING, AnalysisStatus.RUNNING])
            .defer("results").order_by("-requested_at", "-id").first())


def experiment_results(*, experiment: Experiment) -> Analysis:
    """The newest finished analysis; 404 `no_results` (saying whether one is being computed) when there is none."""
    found = analysis_latest(experiment=experiment)
    if found is None:
        current = analysis_current(experiment=experiment)
        state = f" (analysis {current.pk} is {current.status})" if current else ""
        error = NotFound(f"Experiment {experiment.key} has no results yet{state}.", code="no_results")
        error.extra["analysis_status"] = current.status if current else None
        raise error
    return found


def subject_traffic_per_day(*, model: RegisteredModel | None = None, prompt: Prompt | None = None) -> float | None:
    """Units a day the subject serves: distinct unit ids of its events (all versions) over the last 7 days, divided
    by 7 (a unit enters an experiment once, so returning units are not counted again). None without traffic.
    Cached 10 minutes: the calculator asks on every keystroke."""
    cache_key = f"experiments:traffic:{'model' if model else 'prompt'}:{(model or prompt).pk}"
    try:
        cached = cache.get(cache_key)
    except Exception:  # noqa: BLE001 - a down cache only costs the query below
        cached = None
    if cached is not None:
        return cached or None
    since = timezone.now() - timedelta(days=TRAFFIC_DAYS)
    if model is not None:
        versions = ModelVersion.objects.filter(model=model).values("pk")
        events = Event.objects.filter(model_version__in=versions, timestamp__gte=since)
    else:
        versions = PromptVersion.objects.filter(prompt=prompt).values("pk")
        events = Event.objects.filter(prompt_version__in=versions, timestamp__gte=since)
    units = events.exclude(unit_id="").aggregate(n=Count("unit_id", distinct=True))["n"] or 0
    per_day = units / TRAFFIC_DAYS
    try:
        cache.set(cache_key, per_day, TRAFFIC_CACHE_S)
    except Exception:  # noqa: BLE001
        pass
    return per_day or None


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}.", fields={field: [message]})


def sample_size_for(
    *, kind: str, mde: float, alpha: float, power: float, baseline_rate: float | None, baseline_std: float | None,
    fields: tuple[str, str] = ("baseline_rate", "baseline_std"),
) -> int:
    """Units per arm of a design: stats.sample_size_per_arm (proportions, from the control's expected rate) or
    stats.sample_size_per_arm_means (means, from the metric's standard deviation). 400 naming the field at fault
    (`fields`: how the caller names the baseline rate and the standard deviation)."""
    if kind == MetricKind.PROPORTION:
        if baseline_rate is None:
            raise _invalid(fields[0], "needed to size the test: the control's expected rate, in (0, 1)")
        compute, args, field = stats.sample_size_per_arm, (baseline_rate, mde), fields[0]
    else:
        if baseline_std is None:
            raise _invalid(fields[1], "needed to size the test: the metric's standard deviation per unit")
        compute, args, field = stats.sample_size_per_arm_means, (baseline_std, mde), fields[1]
    try:
        return compute(*args, alpha=alpha, power=power)
    except stats.StatsError as exc:
        text = str(exc)
        for name in ("mde", "alpha", "power"):
            if text.startswith(name) or text.startswith(f"baseline + {name}"):
                field = name
        raise _invalid(field, text) from None


@dataclass(frozen=True)
class SampleSizeEstimate:
    kind: str
    per_arm: int
    arms: int
    total: int
    units_per_day: float | None
    days: float | None
    method: str


def sample_size_estimate(
    *, kind: str, mde: float, alpha: float = 0.05, power: float = 0.8, baseline: float | None = None, std: float | None = None, arms: int = 2,
    model: RegisteredModel | None = None, prompt: Prompt | None = None,
) -> SampleSizeEstimate:
    """The calculator: units per arm for the design (as experiment_create sizes it), the total over `arms`, and, with
    a subject, the expected duration at its current traffic (None when it has none)."""
    if kind not in MetricKind.values:
        raise ValidationFailed(f"kind: one of {', '.join(MetricKind.values)}.", fields={"kind": ["unknown kind"]})
    if not 2 <= arms <= 10:
        raise ValidationFailed("arms: 2 to 10.", fields={"arms": ["2 to 10"]})
    for name, value in (("alpha", alpha), ("power", power)):
        if not 0 < value < 1:
            raise ValidationFailed(f"{name}: in (0, 1).", fields={name: ["in (0, 1)"]})
    if mde == 0:
        raise ValidationFailed("mde: not 0: no test detects a zero effect.", fields={"mde": ["not 0"]})
    per_arm = sample_size_for(kind=kind, mde=mde, alpha=alpha, power=power, baseline_rate=baseline, baseline_std=std, fields=("baseline", "std"))
    per_day = subject_traffic_per_day(model=model, prompt=prompt) if (model or prompt) else None
    days = stats.expected_duration_days(per_arm, arms, per_day) if per_day else None
    return SampleSizeEstimate(kind=kind, per_arm=per_arm, arms=arms, total=per_arm * arms, units_per_day=per_day, days=days,
                              method=SAMPLE_SIZE_METHOD[kind])


# --- the HTML pages' extra reads -------------------------------------------------------------------------------------


def experiment_search(*, search: str = "", status: str | None = None) -> QuerySet[Experiment]:
    """`experiment_list` narrowed to experiments whose key or hypothesis contains `search` (the list page's box)."""
    qs = experiment_list(status=status)
    search = search.strip()
    return qs.filter(Q(key__icontains=search) | Q(hypothesis__icontains=search)) if search else qs


DESIGN_VERSIONS = 50  # per subject: the newest, enough to pick an A and a B


def design_subjects() -> dict[str, dict[str, list[int]]]:
    """What the design form offers: `{"model": {name: [version numbers, newest first]}, "prompt": {...}}`, only
    subjects with at least one version, names in order, at most DESIGN_VERSIONS numbers each. Two queries."""
    out: dict[str, dict[str, list[int]]] = {"model": {}, "prompt": {}}
    sources = (("model", ModelVersion.objects.order_by("model__name", "-version").values_list("model__name", "version")),
               ("prompt", PromptVersion.objects.order_by("prompt__name", "-version").values_list("prompt__name", "version")))
    for kind, rows in sources:
        for name, number in rows:
            numbers = out[kind].setdefault(name, [])
            if len(numbers) < DESIGN_VERSIONS:
                numbers.append(number)
    return out


# --- canary rollouts -------------------------------------------------------------------------------------------------


class Health(StrEnum):
    """A rollout's health on the list, from its latest evaluation (`last_numbers`)."""

    NO_DATA = "no_data"  # not evaluated yet
    TRIGGERED = "triggered"  # a trigger fired (the decision rolled back or paused it)
    FAILING = "failing"  # the stage's gate does not pass
    WAITING = "waiting"  # not enough data for the gate yet
    HEALTHY = "healthy"  # no trigger fired and the gate passes (or the stage has none)


def rollout_health(rollout: Rollout) -> Health:
    """The rollout's health from its latest evaluation: no query."""
    numbers = rollout.last_numbers or {}
    if not numbers.get("gate"):
        return Health.NO_DATA
    if any(t.get("state") == canary.CheckState.FIRED for t in numbers.get("triggers", [])):
        return Health.TRIGGERED
    state = numbers["gate"].get("state")
    if state == canary.CheckState.FAIL:
        return Health.FAILING
    if state == canary.CheckState.NOT_ENOUGH_DATA:
        return Health.WAITING
    return Health.HEALTHY


def _rollouts() -> QuerySet[Rollout]:
    return Rollout.objects.select_related(
        "model", "prompt", "policy", "candidate_model_version", "candidate_prompt_version", "baseline_model_version", "baseline_prompt_version",
    )


def rollout_list(
    *, status: str | None = None, model: RegisteredModel | None = None, prompt: Prompt | None = None, promotion_id: int | None = None,
) -> QuerySet[Rollout]:
    """Rollouts, newest first, with their subject, versions and policy (its stages: the stage's name and the share), and the
    latest evaluation (`last_numbers`; `rollout_health` reads it); `promotion_id`: the rollout of that promotion request.
    One query (two with a paginator's count)."""
    if status is not None and status not in RolloutStatus.values:
        raise ValidationFailed(f"status: one of {', '.join(RolloutStatus.values)}.", fields={"status": [f"unknown status {status!r}"]})
    qs = _rollouts()
    if status:
        qs = qs.filter(status=status)
    if model is not None:
        qs = qs.filter(model=model)
    if prompt is not None:
        qs = qs.filter(prompt=prompt)
    if promotion_id is not None:
        qs = qs.filter(promotion_id=promotion_id)
    return qs.order_by("-started_at", "-id")


def rollout_get(*, rollout_id) -> Rollout:
    """One rollout as `rollout_list` reads it, with its decisions in order (`decisions.all()`, each with its actor). Two
    queries; NotFound (404) for an unknown id."""
    decisions = RolloutDecision.objects.select_related("actor").order_by("seq")
    try:
        return _rollouts().prefetch_related(Prefetch("decisions", queryset=decisions)).get(pk=rollout_id)
    except (Rollout.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No rollout {rollout_id}.") from None


def rollout_latest_list() -> QuerySet[Rollout]:
    """The newest rollout of each model and each prompt, running, paused or finished (ranked in the database), as
    `rollout_list` reads them. One query."""
    newest = Window(RowNumber(), partition_by=[F("model_id"), F("prompt_id")], order_by=[F("started_at").desc(), F("id").desc()])
    return _rollouts().annotate(newest=newest).filter(newest=1).order_by("model_id", "prompt_id")


def rollout_active_get(*, model: RegisteredModel | None = None, prompt: Prompt | None = None) -> Rollout | None:
    """The running or paused rollout of a model or prompt, if any (a version or prompt page links it). One query."""
    qs = _rollouts().filter(status__in=ACTIVE_ROLLOUT)
    return (qs.filter(model=model) if model is not None else qs.filter(prompt=prompt)).first()


ROLLOUT_METRICS = ("error_rate", "latency_p95", "guardrail_rate", "negative_feedback_rate", "cost_per_request")
ROLLOUT_MINUTES_LIMIT = timedelta(days=3)  # longer rollouts are charted from the hour roll-ups


@dataclass(frozen=True)
class StageMark:
    """Where a stage began on the chart: a decision that moved the rollout (start, advance, rollback, complete...)."""

    at: datetime
    action: str
    stage_index: int | None
    stage: str
    traffic_percent: float


@dataclass(frozen=True)
class RolloutSeries:
    """Candidate against baseline over the rollout, one point per bucket with traffic on either side (None where a side
    had none): `values[metric]["candidate" | "baseline"]`, metrics ROLLOUT_METRICS; `requests` the same way; the
    stage changes to draw as bands. Thresholds are the policy's (`rollout.policy`)."""

    start: datetime
    end: datetime
    granularity: str
    buckets: tuple[datetime, ...]
    values: dict[str, dict[str, list[float | None]]]
    requests: dict[str, list[int]]
    stages: tuple[StageMark, ...]


def _metric(point: OpsMetrics | None, metric: str) -> float | None:
    if point is None:
        return None
    if metric == "negative_feedback_rate":
        return canary.negative_feedback_rate(point.feedback_count, point.thumbs_up_share)
    return getattr(point, metric)


def rollout_series(*, rollout: Rollout, now: datetime | None = None) -> RolloutSeries:
    """The chart data of a rollout page, from the minute roll-ups (hour roll-ups past three days) of the candidate and the
    baseline over [started_at, finished_at or now). Two queries, plus one for the decisions unless `rollout_get` prefetched them."""
    end = rollout.finished_at or now or timezone.now()
    start = rollout.started_at
    end = max(end, start + timedelta(minutes=1))
    granularity = Granularity.MINUTE if end - start <= ROLLOUT_MINUTES_LIMIT else Granularity.HOUR
    sides = {"candidate": rollout.candidate, "baseline": rollout.baseline}
    points: dict[str, dict[datetime, OpsMetrics]] = {}
    for side, version in sides.items():
        if version is None:
            points[side] = {}
            continue
        series = rollup_series(kind=rollout.subject_kind, name=rollout.subject_name, versions=[version.version], start=start, end=end,
                               granularity=granularity)
        points[side] = {p.bucket: p for p in series.points}
    buckets = tuple(sorted(set(points["candidate"]) | set(points["baseline"])))
    values = {m: {side: [_metric(points[side].get(b), m) for b in buckets] for side in sides} for m in ROLLOUT_METRICS}
    requests = {side: [getattr(points[side].get(b), "requests", 0) for b in buckets] for side in sides}
    stages = rollout.policy.stages
    marks = tuple(
        StageMark(at=d.at, action=d.action, stage_index=d.to_stage, stage=stages[d.to_stage]["name"] if d.to_stage is not None else d.action,
                  traffic_percent=float(d.traffic_percent))
        for d in rollout.decisions.all() if d.action != canary.Action.HOLD
    )
    return RolloutSeries(start=start, end=end, granularity=granularity, buckets=buckets, values=values, requests=requests, stages=marks)


def rollout_policy_list() -> QuerySet[RolloutPolicy]:
    """The newest version of every rollout policy, by name. One query. ("default" appears once it has been used or edited.)"""
    newest = RolloutPolicy.objects.filter(name=OuterRef("name")).order_by("-version").values("version")[:1]
    return RolloutPolicy.objects.select_related("created_by").filter(version=Subquery(newest)).order_by("name")


def rollout_policy_get(*, name: str, version: int | None = None) -> RolloutPolicy:
    """A rollout policy's newest version, or the version asked; NotFound (404) otherwise."""
    qs = RolloutPolicy.objects.select_related("created_by").filter(name=name)
    found = (qs.filter(version=version) if version is not None else qs.order_by("-version")).first()
    if found is None:
        raise NotFound(f"No rollout policy {name!r}" + (f" version {version}." if version is not None else "."))
    return found
