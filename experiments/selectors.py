"""Read queries of experiments, shared by pages, the API, tasks and commands. Every list is a fixed number of queries.

What a page needs:
- the list: `experiment_list` (status, subject, units, the latest finished analysis's leading variant and
  recommendation as columns) + `progress` and `Experiment.days_running` (no query);
- one experiment: `experiment_get`, its variants with their units, `analysis_latest` (the newest finished
  results, whose snapshot holds the daily series: `results["series"]`) and `analysis_current` (a run waiting
  or in progress, for a "computing..." note);
- the sample-size calculator: `sample_size_estimate`, with the subject's current traffic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.db.models import BigIntegerField, Count, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from mlops_site.exceptions import NotFound, ValidationFailed
from monitoring.models import Event
from registry.models import ModelVersion, Prompt, PromptVersion, RegisteredModel

from . import stats
from .models import Analysis, AnalysisStatus, Experiment, ExperimentStatus, ExposureCount, MetricKind, Variant

TRAFFIC_DAYS = 7
TRAFFIC_CACHE_S = 600
SAMPLE_SIZE_METHOD = {
    MetricKind.PROPORTION: "statsmodels-equivalent NormalIndPower on Cohen's h, two-sided",
    MetricKind.MEAN: "statsmodels-equivalent NormalIndPower on Cohen's d = mde / std, two-sided",
}


def _units_of_variant() -> Subquery:
    total = ExposureCount.objects.filter(variant=OuterRef("pk")).order_by().values("variant").annotate(n=Sum("units")).values("n")
    return Coalesce(Subquery(total, output_field=BigIntegerField()), 0)


def variant_list(*, experiment: Experiment | None = None) -> QuerySet[Variant]:
    """Variants in position order (the control first) with their versions and `units` exposed so far."""
    qs = Variant.objects.select_related("model_version", "prompt_version").annotate(units=_units_of_variant()).order_by("experiment_id", "position")
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
