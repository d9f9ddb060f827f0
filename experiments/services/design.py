"""Designing and running an experiment: create (validated, sized), start, stop, decide.

Every change locks the experiment's row, writes one audit event in the registry's log (the site's
one log) with the subject `model:<name>` / `prompt:<name>`, and forgets the cached assignment plan
once the transaction commits. "Promote B" records the A/B result as evidence on B's gate card and
opens a normal promotion request, which an approver then decides in the registry.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone

from mlops_site.exceptions import Conflict, NotFound, ValidationFailed
from mlops_site.formatting import number_text
from mlops_site.roles import EDITOR, require_role
from registry.models import AuditAction, EvaluationKind, ModelVersion, Prompt, PromptVersion, RegisteredModel
from registry.services import audit_record, promotion_request_create
from registry.services.evaluations import evaluation_record_external
from registry.services.gates import check_problem, gate_status

from .. import stats
from ..models import (
    Analysis,
    AnalysisStatus,
    Decision,
    Direction,
    EventMetric,
    Experiment,
    ExperimentStatus,
    GuardrailMetric,
    MetricKind,
    Variant,
)
from ..selectors import sample_size_for
from .analysis import analysis_request
from .assignment import plan_forget

MIN_VARIANTS, MAX_VARIANTS = 2, 10
MAX_SECONDARY_METRICS = 10
# Routes of their own: GET /api/v1/experiments/sample-size and the design form /experiments/new/.
RESERVED_KEYS = frozenset({"sample-size", "new"})
KEY_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
METRIC_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
VARIANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,49}$")
# Metrics of the monitoring events have a fixed kind (a mean per unit) and a natural direction.
EVENT_METRIC_DIRECTION = {
    EventMetric.JUDGE_SCORE: Direction.INCREASE,
    EventMetric.THUMBS_UP: Direction.INCREASE,
    EventMetric.LATENCY_MS: Direction.DECREASE,
    EventMetric.COST_USD: Direction.DECREASE,
}
# The degradation each guardrail allows by default, B against the control A (higher is worse for all four):
# errors half a point more (the canary's 5 % stage gate), P95 latency and cost 10 % more (the 25 % stage's
# latency gate), guardrail triggers one point more.
DEFAULT_GUARDRAILS = [
    {"metric": GuardrailMetric.ERROR_RATE.value, "max_degradation": 0.005, "relative": False},
    {"metric": GuardrailMetric.LATENCY_P95.value, "max_degradation": 0.10, "relative": True},
    {"metric": GuardrailMetric.COST_PER_REQUEST.value, "max_degradation": 0.10, "relative": True},
    {"metric": GuardrailMetric.GUARDRAIL_RATE.value, "max_degradation": 0.01, "relative": False},
]
DECISIONS = {"promote": Decision.PROMOTED, "discard": Decision.DISCARDED, "iterate": Decision.ITERATE}
# Where "Promote B" asks to put B's version.
PROMOTION_TARGET = {"model": "production", "prompt": "prod"}


def _invalid(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {message}.", fields={field: [message]})


def _number(value, field: str) -> float:
    """A finite JSON number (not a bool, not text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _invalid(field, "a finite number")
    return float(value)


def _reason(text, field: str = "reason") -> str:
    text = (text or "").strip() if isinstance(text, str) else ""
    if not text:
        raise _invalid(field, "required: say why")
    return text


@dataclass(frozen=True)
class _VariantRow:
    name: str
    weight: Decimal
    version: ModelVersion | PromptVersion


def _clean_metric(raw, field: str) -> dict:
    if not isinstance(raw, dict) or set(raw) - {"name", "kind", "direction"}:
        raise _invalid(field, "an object with name, kind and optionally direction")
    name, kind = raw.get("name"), raw.get("kind")
    if not isinstance(name, str) or not METRIC_RE.match(name):
        raise _invalid(f"{field}.name", "1 to 100 letters, digits, '.', '_', ':' or '-'")
    if kind not in MetricKind.values:
        raise _invalid(f"{field}.kind", f"one of {', '.join(MetricKind.values)}")
    direction = raw.get("direction")
    if name in EVENT_METRIC_DIRECTION:
        if kind != MetricKind.MEAN:
            raise _invalid(f"{field}.kind", f"{name} comes from the monitoring events as a mean per unit: kind mean")
        direction = direction or EVENT_METRIC_DIRECTION[name].value
    direction = direction or Direction.INCREASE.value
    if direction not in Direction.values:
        raise _invalid(f"{field}.direction", f"one of {', '.join(Direction.values)}")
    return {"name": name, "kind": kind, "direction": direction}


def _clean_guardrails(raw) -> list[dict]:
    if raw is None:
        return [dict(g) for g in DEFAULT_GUARDRAILS]
    if not isinstance(raw, list):
        raise _invalid("guardrails", "a list of {metric, max_degradation, relative}")
    out, seen = [], set()
    for i, item in enumerate(raw):
        field = f"guardrails[{i}]"
        if not isinstance(item, dict) or set(item) - {"metric", "max_degradation", "relative"}:
            raise _invalid(field, "an object with metric, max_degradation and relative")
        metric = item.get("metric")
        if metric not in GuardrailMetric.values:
            raise _invalid(f"{field}.metric", f"one of {', '.join(GuardrailMetric.values)}")
        if metric in seen:
            raise _invalid(f"{field}.metric", f"{metric} is listed twice")
        seen.add(metric)
        allowed = _number(item.get("max_degradation"), f"{field}.max_degradation")
        if allowed < 0:
            raise _invalid(f"{field}.max_degradation", "0 or more (how much worse B may be)")
        relative = item.get("relative", False)
        if not isinstance(relative, bool):
            raise _invalid(f"{field}.relative", "true or false")
        out.append({"metric": metric, "max_degradation": allowed, "relative": relative})
    return out


def _subject(model: str | None, prompt: str | None) -> RegisteredModel | Prompt:
    if (model is None) == (prompt is None):
        raise _invalid("subject", "give either model or prompt (a name)")
    cls, name, field = (RegisteredModel, model, "subject.model") if model is not None else (Prompt, prompt, "subject.prompt")
    found = cls.objects.filter(name=name).first() if isinstance(name, str) else None
    if found is None:
        raise _invalid(field, f"no {'model' if cls is RegisteredModel else 'prompt'} named {name!r}")
    return found


def _clean_variants(raw, subject: RegisteredModel | Prompt) -> list[_VariantRow]:
    if not isinstance(raw, list) or not MIN_VARIANTS <= len(raw) <= MAX_VARIANTS:
        raise _invalid("variants", f"a list of {MIN_VARIANTS} to {MAX_VARIANTS} variants, the control first")
    rows, names = [], set()
    for i, item in enumerate(raw):
        field = f"variants[{i}]"
        if not isinstance(item, dict) or set(item) - {"name", "version", "weight"}:
            raise _invalid(field, "an object with name, version and weight")
        name = item.get("name")
        if not isinstance(name, str) or not VARIANT_RE.match(name):
            raise _invalid(f"{field}.name", "1 to 50 letters, digits, spaces, '.', '_' or '-'")
        if name in names:
            raise _invalid(f"{field}.name", f"{name!r} is used twice")
        names.add(name)
        number = item.get("version")
        if isinstance(number, bool) or not isinstance(number, int):
            raise _invalid(f"{field}.version", "required: a version number of the subject")
        raw_weight = item.get("weight")
        try:
            if isinstance(raw_weight, bool) or not isinstance(raw_weight, (int, float, Decimal, str)):
                raise InvalidOperation
            weight = Decimal(str(raw_weight))
        except InvalidOperation:
            raise _invalid(f"{field}.weight", "a percentage") from None
        if not weight.is_finite() or weight <= 0 or weight > 100 or weight != weight.quantize(Decimal("0.01")):
            raise _invalid(f"{field}.weight", "a percentage above 0 with at most 2 decimals")
        rows.append((name, weight.quantize(Decimal("0.01")), number, field))
    total = sum(w for _, w, _, _ in rows)
    if total != 100:
        raise _invalid("variants", f"the weights sum to {total}, not 100")
    if isinstance(subject, RegisteredModel):
        versions = {v.version: v for v in ModelVersion.objects.filter(model=subject, version__in=[n for _, _, n, _ in rows])}
    else:
        versions = {v.version: v for v in PromptVersion.objects.filter(prompt=subject, version__in=[n for _, _, n, _ in rows])}
    out = []
    for name, weight, number, field in rows:
        if number not in versions:
            raise _invalid(f"{field}.version", f"{subject.name} has no version {number}")
        out.append(_VariantRow(name=name, weight=weight, version=versions[number]))
    return out


def experiment_create(
    *, key: str, hypothesis: str, model: str | None = None, prompt: str | None = None, variants: list[dict], primary_metric: dict,
    secondary_metrics: list[dict] | None = None, guardrails: list[dict] | None = None, alpha: float = 0.05, power: float = 0.8,
    mde: float, baseline_rate: float | None = None, baseline_std: float | None = None, actor,
) -> Experiment:
    """Create a draft experiment (editors): validated, with its bucket ranges and its sample size per arm.

    Variants are `[{"name", "version", "weight"}]`, the control first, weights in percent (2 decimals)
    summing to exactly 100. `guardrails=None` takes DEFAULT_GUARDRAILS; `[]` means none. 409 if the key exists.
    """
    require_role(actor, EDITOR, "Designing an experiment")
    if not isinstance(key, str) or not KEY_RE.match(key) or key in RESERVED_KEYS:
        raise _invalid("key", "1 to 100 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit (not 'sample-size' or 'new')")
    hypothesis = hypothesis.strip() if isinstance(hypothesis, str) else ""
    if not hypothesis:
        raise _invalid("hypothesis", "required: what you expect and why (\"v2 raises conversion by 2 points\")")
    subject = _subject(model, prompt)
    rows = _clean_variants(variants, subject)
    primary = _clean_metric(primary_metric, "primary_metric")
    if secondary_metrics is None:
        secondary_metrics = []
    if not isinstance(secondary_metrics, list) or len(secondary_metrics) > MAX_SECONDARY_METRICS:
        raise _invalid("secondary_metrics", f"a list of at most {MAX_SECONDARY_METRICS} metrics")
    secondary, names = [], {primary["name"]}
    for i, raw in enumerate(secondary_metrics):
        metric = _clean_metric(raw, f"secondary_metrics[{i}]")
        if metric["name"] in names:
            raise _invalid(f"secondary_metrics[{i}].name", f"{metric['name']} is already measured")
        names.add(metric["name"])
        secondary.append(metric)
    guard = _clean_guardrails(guardrails)
    alpha, power, mde = _number(alpha, "alpha"), _number(power, "power"), _number(mde, "mde")
    for name, value in (("alpha", alpha), ("power", power)):
        if not 0 < value < 1:
            raise _invalid(name, "in (0, 1)")
    if mde == 0:
        raise _invalid("mde", "not 0: no test detects a zero effect")
    if baseline_rate is not None:
        baseline_rate = _number(baseline_rate, "baseline_rate")
    if baseline_std is not None:
        baseline_std = _number(baseline_std, "baseline_std")
    per_arm = sample_size_for(kind=primary["kind"], mde=mde, alpha=alpha, power=power, baseline_rate=baseline_rate, baseline_std=baseline_std)
    try:
        ranges = stats.bucket_ranges([float(r.weight) for r in rows])
    except stats.StatsError as exc:
        raise _invalid("variants", str(exc)) from None
    exists = Conflict(f"An experiment with the key {key!r} exists already.", code="already_exists")
    if Experiment.objects.filter(key=key).exists():
        raise exists
    is_model = isinstance(subject, RegisteredModel)
    try:
        with transaction.atomic():
            experiment = Experiment.objects.create(
                key=key, hypothesis=hypothesis, model=subject if is_model else None, prompt=None if is_model else subject,
                primary_metric_name=primary["name"], primary_metric_kind=primary["kind"], primary_metric_direction=primary["direction"],
                secondary_metrics=secondary, guardrails=guard, alpha=alpha, power=power, mde=mde, baseline_rate=baseline_rate,
                baseline_std=baseline_std, sample_size_per_arm=per_arm, created_by=actor,
            )
            Variant.objects.bulk_create([
                Variant(experiment=experiment, position=i, name=r.name, weight=r.weight, bucket_start=start, bucket_end=end,
                        model_version=r.version if is_model else None, prompt_version=None if is_model else r.version)
                for i, (r, (start, end)) in enumerate(zip(rows, ranges, strict=True))
            ])
            audit_record(actor=actor, action=AuditAction.EXPERIMENT_CREATED, subject=experiment.subject, reason=hypothesis,
                         extra={"experiment": key, "variants": [{"name": r.name, "version": r.version.version, "weight": str(r.weight)} for r in rows],
                                "primary_metric": primary, "sample_size_per_arm": per_arm})
    except IntegrityError:
        raise exists from None
    return experiment


def _locked(experiment: Experiment) -> Experiment:
    try:
        return Experiment.objects.select_for_update(of=("self",)).select_related("model", "prompt").get(pk=experiment.pk)
    except Experiment.DoesNotExist:
        raise NotFound(f"No experiment {experiment.key!r}.") from None


def experiment_start(*, experiment: Experiment, reason: str, actor) -> Experiment:
    """draft -> running (editors). Every variant's version must exist and, where its subject has an enforced gate
    policy, pass its gates (409 `gates_failed` naming the checks). From now on units are assigned and exposed."""
    require_role(actor, EDITOR, "Starting an experiment")
    reason = _reason(reason)
    with transaction.atomic():
        experiment = _locked(experiment)
        if experiment.status != ExperimentStatus.DRAFT:
            raise Conflict(f"Experiment {experiment.key} is {experiment.status}; only a draft can start.", code="not_draft")
        variants = list(experiment.variants.select_related("model_version__model", "prompt_version__prompt"))
        problems = []
        for v in variants:
            version = v.version
            if version is None:
                raise Conflict(f"Variant {v.name}'s version no longer exists.", code="version_missing")
            state = gate_status(version=version)
            if state.enforced and not state.passed:
                problems.append((v, version, state))
        if problems:
            text = "; ".join(f"{v.name} (v{version.version}): " + ", ".join(check_problem(c) for c in state.failed) for v, version, state in problems)
            error = Conflict(f"Gates not passed, the experiment cannot start: {text}.", code="gates_failed")
            error.extra["failed"] = [
                {"variant": v.name, "version": version.version, "checks": [check_problem(c) for c in state.failed]} for v, version, state in problems
            ]
            raise error
        experiment.status, experiment.started_at = ExperimentStatus.RUNNING, timezone.now()
        experiment.save(update_fields=["status", "started_at"])
        audit_record(actor=actor, action=AuditAction.EXPERIMENT_STARTED, subject=experiment.subject, reason=reason,
                     extra={"experiment": experiment.key, "variants": {v.name: v.version.version for v in variants}})
        plan_forget(experiment.key)
    return experiment


def _stop(experiment: Experiment, reason: str, actor) -> None:
    experiment.status, experiment.stopped_at, experiment.stop_reason = ExperimentStatus.STOPPED, timezone.now(), reason
    experiment.save(update_fields=["status", "stopped_at", "stop_reason"])
    audit_record(actor=actor, action=AuditAction.EXPERIMENT_STOPPED, subject=experiment.subject, reason=reason,
                 extra={"experiment": experiment.key, "days_running": round(experiment.days_running() or 0.0, 2)})
    plan_forget(experiment.key)


def experiment_stop(*, experiment: Experiment, reason: str, actor) -> Experiment:
    """running -> stopped (editors): assignment then answers 409; one more analysis is queued so the results
    include everything up to the stop (outcomes arriving later still count: analyses keep working)."""
    require_role(actor, EDITOR, "Stopping an experiment")
    reason = _reason(reason)
    with transaction.atomic():
        experiment = _locked(experiment)
        if experiment.status != ExperimentStatus.RUNNING:
            raise Conflict(f"Experiment {experiment.key} is {experiment.status}; only a running one can stop.", code="experiment_not_running")
        _stop(experiment, reason, actor)
        analysis_request(experiment=experiment, actor=actor)
    return experiment


def _evidence(experiment: Experiment, analysis: Analysis, variant: Variant) -> tuple[dict, dict]:
    """The gate figures and the details of B's comparison with the control on the primary metric."""
    primary = next((m for m in analysis.results.get("metrics", []) if m.get("primary")), None)
    comparison = next((c for c in (primary or {}).get("comparisons", []) if c.get("variant") == variant.name), None)
    if primary is None or comparison is None or comparison.get("state") != "ok":
        raise Conflict(f"The latest results have no comparison of {variant.name} with the control on {experiment.primary_metric_name} "
                       "(not enough data): run an analysis when there is.", code="no_results")
    decided = comparison.get("cuped") or comparison
    always_valid = decided.get("always_valid") or {}
    arms = {a["variant"]: a for a in primary.get("arms", [])}
    srm = analysis.results.get("srm") or {}
    figures = {
        "ab_diff": decided.get("diff"), "ab_lift": decided.get("lift"), "ab_ci_low": decided.get("ci_low"), "ab_ci_high": decided.get("ci_high"),
        "ab_p_value": decided.get("p_value"), "ab_always_valid_low": always_valid.get("ci_low"),
        "ab_always_valid_high": always_valid.get("ci_high"), "ab_always_valid_p_value": always_valid.get("p_value"),
        "ab_significant": 1.0 if comparison.get("decisive") else 0.0,
        "ab_units_control": arms.get(comparison.get("control"), {}).get("units"), "ab_units_variant": arms.get(variant.name, {}).get("units"),
        "ab_srm_p_value": srm.get("p_value"),
    }
    figures = {k: float(v) for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
    recommendation = analysis.results.get("recommendation") or {}
    summary = (f"{experiment.key}: {variant.name} vs {comparison.get('control')} on {primary['name']} ({primary['kind']}): "
               f"difference {number_text(decided.get('diff'))}, {int(round((1 - experiment.alpha) * 100))} % interval "
               f"[{number_text(decided.get('ci_low'))}, {number_text(decided.get('ci_high'))}], p = {number_text(decided.get('p_value'))}; "
               f"always-valid [{number_text(always_valid.get('ci_low'))}, {number_text(always_valid.get('ci_high'))}]"
               + (" (CUPED-adjusted)" if comparison.get("cuped") else "") + f". {recommendation.get('text', '')}").strip()
    details = {"experiment": experiment.key, "analysis_id": analysis.pk, "metric": {"name": primary["name"], "kind": primary["kind"]},
               "comparison": comparison, "srm": srm, "recommendation": recommendation, "summary": summary}
    return figures, details


def experiment_decide(*, experiment: Experiment, decision: str, reason: str, actor, variant: str | None = None) -> Experiment:
    """Record the decision (editors) on a started experiment, once; a running one stops.

    - "promote" + `variant` (not the control): B's result from the latest finished analysis becomes an evaluation
      of kind experiment on B's version (its gate card shows it; its figures ab_lift, ab_p_value... can be gate
      checks), then a normal promotion request of B's version into production (prompts: prod) is opened, which an
      approver decides. All in one transaction: if the registry refuses the request (gates, a pending request),
      nothing is recorded.
    - "discard" / "iterate": the decision and its reason, audited.
    """
    require_role(actor, EDITOR, "Deciding an experiment")
    if decision not in DECISIONS:
        raise _invalid("decision", f"one of {', '.join(DECISIONS)}")
    reason = _reason(reason)
    with transaction.atomic():
        experiment = _locked(experiment)
        if experiment.status == ExperimentStatus.DRAFT:
            raise Conflict(f"Experiment {experiment.key} has not started: there is nothing to decide.", code="experiment_not_started")
        if experiment.decision:
            raise Conflict(f"Experiment {experiment.key} was decided already ({experiment.decision}).", code="already_decided")
        chosen = None
        if decision == "promote":
            if not isinstance(variant, str) or not variant:
                raise _invalid("variant", "required: the variant to promote")
            chosen = experiment.variants.select_related("model_version__model", "prompt_version__prompt").filter(name=variant).first()
            if chosen is None:
                raise _invalid("variant", f"no variant named {variant!r}")
            if chosen.is_control:
                raise _invalid("variant", f"{variant} is the control: promote a variant tested against it")
            analysis = experiment.analyses.filter(status=AnalysisStatus.DONE).order_by("-finished_at", "-id").first()
            if analysis is None:
                raise Conflict(f"Experiment {experiment.key} has no results yet: run an analysis first.", code="no_results")
            figures, details = _evidence(experiment, analysis, chosen)
            version = chosen.version
            evaluation_record_external(
                kind=EvaluationKind.EXPERIMENT, model_version=chosen.model_version, prompt_version=chosen.prompt_version, metrics=figures,
                details=details, source=f"experiment:{experiment.key}", actor=actor,
            )
            experiment.promotion = promotion_request_create(
                version=version, to_stage=PROMOTION_TARGET[experiment.subject_kind], reason=f"A/B test {experiment.key}: {reason}", actor=actor,
            )
        if experiment.status == ExperimentStatus.RUNNING:
            _stop(experiment, f"decided: {decision}" + (f" {variant}" if chosen else ""), actor)
        experiment.decision, experiment.decision_variant = DECISIONS[decision], chosen.name if chosen else ""
        experiment.decision_reason, experiment.decided_by, experiment.decided_at = reason, actor, timezone.now()
        experiment.save(update_fields=["decision", "decision_variant", "decision_reason", "decided_by", "decided_at", "promotion"])
        audit_record(
            actor=actor, action=AuditAction.EXPERIMENT_DECIDED, subject=experiment.subject, reason=reason,
            version=chosen.version.version if chosen else None,
            extra={"experiment": experiment.key, "decision": DECISIONS[decision].value, "variant": chosen.name if chosen else None,
                   "promotion_id": experiment.promotion_id},
        )
        plan_forget(experiment.key)
    return experiment
