"""The canary rules: a rollout policy, the checks of one controller tick and the decision they lead to. No Django.

A policy is ordered stages (a traffic share, a minimum and a maximum duration in minutes, a gate, whether a person
must advance it) and triggers. On every tick the controller reads the candidate's and the baseline's figures over
the stage's window (`Side`, from the minute roll-ups) and calls `evaluate` then `decide`:

Triggers (every stage; strict inequalities)
    value > threshold (absolute), or value > threshold x the baseline's value (relative). A trigger needs
    `trigger_min_requests` behind the candidate's value (and the baseline's, when relative), else it says
    "not enough data" and does not fire. A rollback trigger beats a pause trigger.
Gates (the stage's one check before advancing; strict inequalities)
    no_errors                  candidate errors == 0 (shadow: its mirrored traffic)
    error_rate                 candidate error rate < baseline error rate + threshold (absolute points)
    latency_p95                candidate P95 < threshold x baseline P95
    business_metric_not_worse  the candidate's conversion of the policy's business metric is not significantly
                               lower: one-sided pooled two-proportion z-test (stats.two_proportion_ztest),
                               p = Phi(z) (z < 0 when the candidate is lower), passes when p >= threshold (alpha)
    none                       nothing to check (the last stage: "all metrics healthy" = no trigger fired)
    Each side needs `gate_min_requests` (units, for the business metric) or the gate says "not enough data" and
    holds: it never passes on too little traffic.
Decision, in this order
    a rollback trigger fired -> rollback; paused -> hold (a paused rollout only watches its rollback triggers);
    a pause trigger fired -> pause; a manual stage -> hold (a person advances it); the gate passes and the
    stage's minimum has elapsed -> advance (from the last stage: complete); the stage's maximum has elapsed ->
    pause ("the gate did not pass within the stage's maximum"); else hold.

Bad policies raise `PolicyError` naming the field (`stages[2].traffic_percent`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from scipy import stats as scipy_stats

from . import stats

MAX_STAGES = 20
MAX_TRIGGERS = 20
STAGE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 %._-]{0,39}$")
METRIC_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


class GateName(StrEnum):
    NO_ERRORS = "no_errors"
    ERROR_RATE = "error_rate"
    LATENCY_P95 = "latency_p95"
    BUSINESS_METRIC_NOT_WORSE = "business_metric_not_worse"


# What a gate's threshold means, and its default: None for a gate without one.
GATE_THRESHOLDS: dict[GateName, float | None] = {
    GateName.NO_ERRORS: None,
    GateName.ERROR_RATE: 0.005,  # points of error rate above the baseline's
    GateName.LATENCY_P95: 1.10,  # times the baseline's P95
    GateName.BUSINESS_METRIC_NOT_WORSE: 0.05,  # alpha of the one-sided test
}


class TriggerMetric(StrEnum):
    ERROR_RATE = "error_rate"
    LATENCY_P95 = "latency_p95"
    GUARDRAIL_RATE = "guardrail_rate"
    NEGATIVE_FEEDBACK_RATE = "negative_feedback_rate"
    COST_PER_REQUEST = "cost_per_request"


class TriggerAction(StrEnum):
    ROLLBACK = "rollback"
    PAUSE = "pause"


class Action(StrEnum):
    """What a decision does (the controller's, or a person's)."""

    START = "start"
    ADVANCE = "advance"
    HOLD = "hold"
    PAUSE = "pause"
    RESUME = "resume"
    ROLLBACK = "rollback"
    COMPLETE = "complete"


class CheckState(StrEnum):
    """The result of one check: a gate passes or fails, a trigger fires or not, or there is not enough data."""

    PASS = "pass"
    FAIL = "fail"
    FIRED = "fired"
    OK = "ok"
    NOT_ENOUGH_DATA = "not_enough_data"
    NONE = "none"  # a stage without a gate


class Why(StrEnum):
    """Why a decision was taken; the controller words each one (experiments.services.rollouts)."""

    TRIGGER = "trigger"
    PAUSED = "paused"
    MANUAL_STAGE = "manual_stage"
    GATE_PASSED = "gate_passed"
    MINIMUM_DURATION = "minimum_duration"
    GATE_TIMEOUT = "gate_timeout"
    NOT_ENOUGH_DATA = "not_enough_data"
    GATE_FAILS = "gate_fails"


class PolicyError(ValueError):
    """A rollout policy the controller cannot follow; `field` names the part at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Gate:
    name: GateName
    threshold: float | None


@dataclass(frozen=True)
class Stage:
    name: str
    traffic_percent: float
    min_minutes: int
    max_minutes: int | None  # None: no maximum
    gate: Gate | None
    manual: bool = False


@dataclass(frozen=True)
class Trigger:
    metric: TriggerMetric
    threshold: float
    relative: bool  # True: threshold x the baseline's value
    action: TriggerAction


@dataclass(frozen=True)
class Policy:
    stages: tuple[Stage, ...]
    triggers: tuple[Trigger, ...]
    business_metric: str = "conversion"
    gate_min_requests: int = 100
    trigger_min_requests: int = 20

    def stages_json(self) -> list[dict]:
        return [
            {"name": s.name, "traffic_percent": s.traffic_percent, "min_minutes": s.min_minutes, "max_minutes": s.max_minutes,
             "gate": {"name": s.gate.name.value, "threshold": s.gate.threshold} if s.gate else None, "manual": s.manual}
            for s in self.stages
        ]

    def triggers_json(self) -> list[dict]:
        return [{"metric": t.metric.value, "threshold": t.threshold, "relative": t.relative, "action": t.action.value} for t in self.triggers]


DEFAULT_POLICY = Policy(
    stages=(
        Stage("shadow", 0, 60, 120, Gate(GateName.NO_ERRORS, None)),
        Stage("5%", 5, 120, 240, Gate(GateName.ERROR_RATE, 0.005)),
        Stage("25%", 25, 240, 720, Gate(GateName.LATENCY_P95, 1.10)),
        Stage("50%", 50, 720, 1440, Gate(GateName.BUSINESS_METRIC_NOT_WORSE, 0.05)),
        Stage("100%", 100, 60, None, None),
    ),
    triggers=(
        Trigger(TriggerMetric.ERROR_RATE, 0.05, False, TriggerAction.ROLLBACK),
        Trigger(TriggerMetric.LATENCY_P95, 2.0, True, TriggerAction.ROLLBACK),
        Trigger(TriggerMetric.GUARDRAIL_RATE, 3.0, True, TriggerAction.ROLLBACK),
        Trigger(TriggerMetric.NEGATIVE_FEEDBACK_RATE, 2.0, True, TriggerAction.PAUSE),
        Trigger(TriggerMetric.COST_PER_REQUEST, 2.0, True, TriggerAction.PAUSE),
    ),
)


# --- reading a policy ----------------------------------------------------------------------------------------------


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PolicyError(field, "a finite number")
    return float(value)


def _whole(value: Any, field: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise PolicyError(field, f"a whole number of at least {minimum}")
    return value


def _positive(value: Any, field: str) -> float:
    number = _number(value, field)
    if number <= 0:
        raise PolicyError(field, "a finite number above 0")
    return number


def _object(raw: Any, field: str, required: set[str], optional: set[str]) -> dict:
    if not isinstance(raw, dict):
        raise PolicyError(field, f"an object with {', '.join(sorted(required | optional))}")
    unknown = sorted(set(raw) - required - optional)
    if unknown:
        raise PolicyError(f"{field}.{unknown[0]}", "unknown field")
    missing = sorted(required - set(raw))
    if missing:
        raise PolicyError(f"{field}.{missing[0]}", "required")
    return raw


def _gate(raw: Any, field: str) -> Gate | None:
    if raw is None:
        return None
    raw = _object(raw, field, {"name"}, {"threshold"})
    if raw["name"] not in GateName.__members__.values():
        raise PolicyError(f"{field}.name", f"one of {', '.join(GateName)} (or no gate: null)")
    name = GateName(raw["name"])
    default = GATE_THRESHOLDS[name]
    if default is None:
        if raw.get("threshold") is not None:
            raise PolicyError(f"{field}.threshold", f"{name} takes no threshold")
        return Gate(name, None)
    threshold = raw.get("threshold")
    threshold = default if threshold is None else _positive(threshold, f"{field}.threshold")
    if name == GateName.BUSINESS_METRIC_NOT_WORSE and not threshold < 1:
        raise PolicyError(f"{field}.threshold", "the test's alpha, in (0, 1)")
    return Gate(name, threshold)


def _percent(value: Any, field: str) -> float:
    percent = _number(value, field)
    if not 0 <= percent <= 100:
        raise PolicyError(field, "a share in percent, 0 to 100")
    if abs(percent * 100 - round(percent * 100)) > 1e-6:
        raise PolicyError(field, "at most 2 decimals (10,000 buckets)")
    return round(percent, 2)


def _stage_name(percent: float) -> str:
    return "shadow" if percent == 0 else f"{percent:g}%"


def policy_from_json(
    *, stages: Any, triggers: Any, business_metric: Any = "conversion", gate_min_requests: Any = 100, trigger_min_requests: Any = 20,
) -> Policy:
    """A Policy from its JSON parts, checked: 1 to 20 stages, shares 0 to 100 that never decrease and end at 100,
    min_minutes <= max_minutes (max null: none), known gates with thresholds finite and above 0, known trigger
    metrics and actions, thresholds finite and above 0. Raises PolicyError naming the field."""
    if not isinstance(stages, list) or not 1 <= len(stages) <= MAX_STAGES:
        raise PolicyError("stages", f"a list of 1 to {MAX_STAGES} stages, in order")
    clean: list[Stage] = []
    for i, raw in enumerate(stages):
        field = f"stages[{i}]"
        raw = _object(raw, field, {"traffic_percent", "min_minutes"}, {"name", "max_minutes", "gate", "manual"})
        percent = _percent(raw["traffic_percent"], f"{field}.traffic_percent")
        if clean and percent < clean[-1].traffic_percent:
            raise PolicyError(f"{field}.traffic_percent", f"shares never decrease: {percent:g} after {clean[-1].traffic_percent:g}")
        minimum = _whole(raw["min_minutes"], f"{field}.min_minutes", 0)
        maximum = raw.get("max_minutes")
        if maximum is not None:
            maximum = _whole(maximum, f"{field}.max_minutes", 1)
            if maximum < minimum:
                raise PolicyError(f"{field}.max_minutes", f"at least min_minutes ({minimum})")
        name = raw.get("name")
        if name is None:
            name = _stage_name(percent)
        elif not isinstance(name, str) or not STAGE_NAME_RE.match(name):
            raise PolicyError(f"{field}.name", "1 to 40 letters, digits, spaces, '%', '.', '_' or '-'")
        manual = raw.get("manual", False)
        if not isinstance(manual, bool):
            raise PolicyError(f"{field}.manual", "true or false")
        clean.append(Stage(name, percent, minimum, maximum, _gate(raw.get("gate"), f"{field}.gate"), manual))
    if clean[-1].traffic_percent != 100:
        raise PolicyError(f"stages[{len(clean) - 1}].traffic_percent", "the last stage takes all the traffic: 100")
    if not isinstance(triggers, list) or len(triggers) > MAX_TRIGGERS:
        raise PolicyError("triggers", f"a list of at most {MAX_TRIGGERS} triggers")
    rules: list[Trigger] = []
    for i, raw in enumerate(triggers):
        field = f"triggers[{i}]"
        raw = _object(raw, field, {"metric", "threshold", "action"}, {"relative"})
        if raw["metric"] not in TriggerMetric.__members__.values():
            raise PolicyError(f"{field}.metric", f"one of {', '.join(TriggerMetric)}")
        if raw["action"] not in TriggerAction.__members__.values():
            raise PolicyError(f"{field}.action", f"one of {', '.join(TriggerAction)}")
        relative = raw.get("relative", False)
        if not isinstance(relative, bool):
            raise PolicyError(f"{field}.relative", "true or false")
        rules.append(Trigger(TriggerMetric(raw["metric"]), _positive(raw["threshold"], f"{field}.threshold"), relative, TriggerAction(raw["action"])))
    if not isinstance(business_metric, str) or not METRIC_RE.match(business_metric):
        raise PolicyError("business_metric", "an outcome metric's name: 1 to 100 letters, digits, '.', '_', ':' or '-'")
    return Policy(
        stages=tuple(clean), triggers=tuple(rules), business_metric=business_metric,
        gate_min_requests=_whole(gate_min_requests, "gate_min_requests", 1), trigger_min_requests=_whole(trigger_min_requests, "trigger_min_requests", 1),
    )


# --- one tick --------------------------------------------------------------------------------------------------------


def negative_feedback_rate(feedback_count: int, thumbs_up_share: float | None) -> float | None:
    """Thumbs down / feedback, from the roll-ups' count and thumbs-up share. The down count is recovered as a whole number
    (count - round(share x count)), so the rate is down / count exactly, not 1 - share with its rounding."""
    if not feedback_count or thumbs_up_share is None:
        return None
    return (feedback_count - round(thumbs_up_share * feedback_count)) / feedback_count


@dataclass(frozen=True)
class Side:
    """The figures of one version over the window (from the minute roll-ups). Each rate is None without its denominator;
    `units` and `conversions` (of the business metric) only where the stage's gate needs them."""

    version: int
    requests: int = 0
    errors: int = 0
    latency_p95: float | None = None
    guardrail_known: int = 0
    guardrail_rate: float | None = None
    feedback_count: int = 0
    negative_feedback_rate: float | None = None
    cost_requests: int = 0
    cost_per_request: float | None = None
    units: int | None = None
    conversions: int | None = None

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    def measure(self, metric: TriggerMetric) -> tuple[float | None, int]:
        """(value, the number of requests behind it) of a trigger's metric."""
        count = {
            TriggerMetric.ERROR_RATE: self.requests, TriggerMetric.LATENCY_P95: self.requests, TriggerMetric.GUARDRAIL_RATE: self.guardrail_known,
            TriggerMetric.NEGATIVE_FEEDBACK_RATE: self.feedback_count, TriggerMetric.COST_PER_REQUEST: self.cost_requests,
        }[metric]
        return getattr(self, metric.value), count

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "error_rate": self.error_rate}


@dataclass(frozen=True)
class TriggerCheck:
    metric: TriggerMetric
    action: TriggerAction
    threshold: float
    relative: bool
    state: CheckState  # FIRED, OK or NOT_ENOUGH_DATA
    value: float | None  # the candidate's
    baseline: float | None  # the baseline's (relative triggers)
    limit: float | None  # what the value must not exceed
    requests: int  # behind the candidate's value


@dataclass(frozen=True)
class GateCheck:
    name: GateName | None
    threshold: float | None
    state: CheckState  # PASS, FAIL, NOT_ENOUGH_DATA or NONE
    value: float | None = None  # the candidate's
    baseline: float | None = None
    limit: float | None = None  # the candidate's value must stay below it (no_errors: errors must equal it)
    requests: int = 0  # the smaller side's count (units for the business metric)
    p_value: float | None = None  # business metric: one-sided, the candidate lower


@dataclass(frozen=True)
class Evaluation:
    candidate: Side
    baseline: Side | None
    triggers: tuple[TriggerCheck, ...]
    gate: GateCheck
    gate_min_requests: int
    trigger_min_requests: int

    def fired(self, action: TriggerAction) -> tuple[TriggerCheck, ...]:
        return tuple(t for t in self.triggers if t.state == CheckState.FIRED and t.action == action)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON (what a decision stores)."""
        return {
            "candidate": self.candidate.as_dict(), "baseline": self.baseline.as_dict() if self.baseline else None,
            "triggers": [{**dataclasses.asdict(t), "metric": t.metric.value, "action": t.action.value, "state": t.state.value} for t in self.triggers],
            "gate": {**dataclasses.asdict(self.gate), "name": self.gate.name.value if self.gate.name else None, "state": self.gate.state.value},
            "gate_min_requests": self.gate_min_requests, "trigger_min_requests": self.trigger_min_requests,
        }


def check_trigger(trigger: Trigger, candidate: Side, baseline: Side | None, min_requests: int) -> TriggerCheck:
    """One trigger: fires when the candidate's value > the limit (strict), with enough requests behind each value read."""
    value, count = candidate.measure(trigger.metric)
    base_value = None
    if baseline is not None:
        base_value, base_count = baseline.measure(trigger.metric)
        if base_count < min_requests:
            base_value = None
    check = {"metric": trigger.metric, "action": trigger.action, "threshold": trigger.threshold, "relative": trigger.relative,
             "value": value, "baseline": base_value, "requests": count}
    if value is None or count < min_requests or (trigger.relative and base_value is None):
        return TriggerCheck(**check, state=CheckState.NOT_ENOUGH_DATA, limit=None)
    limit = trigger.threshold * base_value if trigger.relative else trigger.threshold
    return TriggerCheck(**check, state=CheckState.FIRED if value > limit else CheckState.OK, limit=limit)


def worse_p_value(successes_base: int, total_base: int, successes_cand: int, total_cand: int) -> float:
    """One-sided p-value of "the candidate converts less than the baseline": Phi(z) of the pooled two-proportion z-test
    (z = (p_cand - p_base) / SE, stats.two_proportion_ztest with the baseline as A). z = 0 (no difference, or SE 0) gives 0.5."""
    test = stats.two_proportion_ztest(successes_base, total_base, successes_cand, total_cand)
    return float(scipy_stats.norm.cdf(test.z_score))


def check_gate(gate: Gate | None, candidate: Side, baseline: Side | None, min_requests: int) -> GateCheck:
    """The stage's gate on the window's figures: PASS, FAIL, or NOT_ENOUGH_DATA (never a pass on too little traffic)."""
    if gate is None:
        return GateCheck(None, None, CheckState.NONE)
    name, threshold = gate.name, gate.threshold
    if name == GateName.NO_ERRORS:
        if candidate.requests < min_requests:
            return GateCheck(name, threshold, CheckState.NOT_ENOUGH_DATA, value=candidate.errors, limit=0, requests=candidate.requests)
        return GateCheck(name, threshold, CheckState.PASS if candidate.errors == 0 else CheckState.FAIL, value=candidate.errors, limit=0, requests=candidate.requests)
    if name == GateName.BUSINESS_METRIC_NOT_WORSE:
        units = min(candidate.units or 0, baseline.units or 0) if baseline is not None else 0
        cand_rate = candidate.conversions / candidate.units if candidate.units else None
        base_rate = baseline.conversions / baseline.units if baseline is not None and baseline.units else None
        figures = {"value": cand_rate, "baseline": base_rate, "requests": units}
        if units < min_requests:
            return GateCheck(name, threshold, CheckState.NOT_ENOUGH_DATA, **figures)
        p_value = worse_p_value(baseline.conversions, baseline.units, candidate.conversions, candidate.units)
        return GateCheck(name, threshold, CheckState.PASS if p_value >= threshold else CheckState.FAIL, limit=threshold, p_value=p_value, **figures)
    value = candidate.error_rate if name == GateName.ERROR_RATE else candidate.latency_p95
    base_value = None if baseline is None else (baseline.error_rate if name == GateName.ERROR_RATE else baseline.latency_p95)
    requests = min(candidate.requests, baseline.requests) if baseline is not None else 0
    figures = {"value": value, "baseline": base_value, "requests": requests}
    if requests < min_requests or value is None or base_value is None:
        return GateCheck(name, threshold, CheckState.NOT_ENOUGH_DATA, **figures)
    limit = base_value + threshold if name == GateName.ERROR_RATE else threshold * base_value
    return GateCheck(name, threshold, CheckState.PASS if value < limit else CheckState.FAIL, limit=limit, **figures)


def evaluate(policy: Policy, stage: Stage, candidate: Side, baseline: Side | None) -> Evaluation:
    """Every trigger of the policy and the stage's gate, on one window's figures."""
    return Evaluation(
        candidate=candidate, baseline=baseline,
        triggers=tuple(check_trigger(t, candidate, baseline, policy.trigger_min_requests) for t in policy.triggers),
        gate=check_gate(stage.gate, candidate, baseline, policy.gate_min_requests),
        gate_min_requests=policy.gate_min_requests, trigger_min_requests=policy.trigger_min_requests,
    )


@dataclass(frozen=True)
class Verdict:
    action: Action  # ROLLBACK, PAUSE, ADVANCE, COMPLETE or HOLD
    why: Why
    fired: tuple[TriggerCheck, ...] = ()  # the triggers behind a rollback or a pause


def decide(*, stage: Stage, last: bool, elapsed_minutes: float, evaluation: Evaluation, paused: bool = False) -> Verdict:
    """What the controller does with one stage's evaluation (the order is in the module's docstring)."""
    rollback = evaluation.fired(TriggerAction.ROLLBACK)
    if rollback:
        return Verdict(Action.ROLLBACK, Why.TRIGGER, rollback)
    if paused:
        return Verdict(Action.HOLD, Why.PAUSED)
    pause = evaluation.fired(TriggerAction.PAUSE)
    if pause:
        return Verdict(Action.PAUSE, Why.TRIGGER, pause)
    if stage.manual:
        return Verdict(Action.HOLD, Why.MANUAL_STAGE)
    state = evaluation.gate.state
    passed = state in (CheckState.PASS, CheckState.NONE)
    if passed and elapsed_minutes >= stage.min_minutes:
        return Verdict(Action.COMPLETE if last else Action.ADVANCE, Why.GATE_PASSED)
    if passed:
        return Verdict(Action.HOLD, Why.MINIMUM_DURATION)
    if stage.max_minutes is not None and elapsed_minutes >= stage.max_minutes:
        return Verdict(Action.PAUSE, Why.GATE_TIMEOUT)
    return Verdict(Action.HOLD, Why.NOT_ENOUGH_DATA if state == CheckState.NOT_ENOUGH_DATA else Why.GATE_FAILS)
