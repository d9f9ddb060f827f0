"""Canary rollouts: start one from an approved canary promotion, the controller's tick, and a person's Advance, Pause,
Resume and Roll back.

The rules (what a tick reads, checks and decides) are experiments/canary.py; this module reads the figures, words
the reasons and applies the decisions. Each decision and its effect commit in one transaction holding the rollout's
row (SELECT ... FOR UPDATE; on SQLite the IMMEDIATE transaction serialises writers): a second tick at the same time
waits, then reads the state the first left and finds it ticked moments ago, so it does nothing. A worker killed
between deciding and applying has committed neither. The stage move itself belongs to the registry: completing
calls `promotion_rollout_complete`, a rollback `promotion_rollout_abort` (each with the system actor when the
controller decides). The routing plan is forgotten after every commit that changes the share or the status.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from mlops_site.exceptions import Conflict, DomainError, NotFound, ValidationFailed
from mlops_site.formatting import number_text
from mlops_site.roles import APPROVER, require_role
from monitoring.models import Event, Granularity
from monitoring.selectors.rollups import rollup_totals, shadow_totals
from monitoring.services import rollups_catch_up
from registry.models import CANARY_STAGES, AuditAction, ModelVersion, PromotionRequest, PromotionStatus, PromptDeployment
from registry.services import audit_record, promotion_rollout_abort, promotion_rollout_complete

from .. import canary
from ..canary import Action, Why
from ..models import ACTIVE_ROLLOUT, Outcome, Rollout, RolloutDecision, RolloutPolicy, RolloutStatus
from . import sql
from .rollout_policies import DEFAULT_POLICY_NAME, policy_rules, rollout_policy_default_ensure
from .routing import route_forget

logger = logging.getLogger(__name__)

# Beat ticks every 60 s. A rollout ticked less than this long ago is left alone: a second beat process, a
# redelivered task or `manage.py rollouts_tick` right after a beat acts on it once, not twice.
MIN_TICK_INTERVAL = timedelta(seconds=30)
# How long a tick may first spend folding new events into the roll-ups it reads.
CATCH_UP_S = 20.0


def _reason(text, field: str = "reason") -> str:
    text = text.strip() if isinstance(text, str) else ""
    if not text:
        raise ValidationFailed(f"{field}: required: say why.", fields={field: ["required: say why"]})
    return text


def _percent(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _label(version) -> str:
    return f"v{version.version}" if version is not None else "nothing"


# --- the figures of one side --------------------------------------------------------------------------------------


def _conversions(rollout: Rollout, version, metric: str, start: datetime, end: datetime) -> tuple[int, int]:
    """(units, converted units) of `version` in [start, end): the distinct unit ids of its served events (not its
    shadow events: their units were served by the baseline), and those with an outcome of `metric` above 0 at or after
    their first event in the window (and before `end`). One query."""
    e_unit, e_ts, e_shadow = sql.column(Event, "unit_id"), sql.column(Event, "timestamp"), sql.column(Event, "shadow")
    e_version = sql.column(Event, "model_version" if rollout.model_id else "prompt_version")
    o_metric, o_unit, o_ts, o_value = (sql.column(Outcome, f) for f in ("metric", "unit_id", "timestamp", "value"))
    prep = Event._meta.get_field("timestamp").get_db_prep_save
    start_db, end_db = prep(start, connection), prep(end, connection)
    query = (
        f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 FROM {sql.table(Outcome)} o WHERE o.{o_metric} = %s AND o.{o_unit} = u.unit_id "
        f"AND o.{o_ts} >= u.first_at AND o.{o_ts} < %s AND o.{o_value} > 0) THEN 1 ELSE 0 END), 0) "
        f"FROM (SELECT {e_unit} AS unit_id, MIN({e_ts}) AS first_at FROM {sql.table(Event)} WHERE {e_version} = %s AND {e_ts} >= %s "
        f"AND {e_ts} < %s AND {e_unit} <> '' AND NOT {e_shadow} GROUP BY {e_unit}) u"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, [metric, end_db, version.pk, start_db, end_db])
        units, converted = cursor.fetchone()
    return int(units), int(converted)


def _side(rollout: Rollout, version, start: datetime, end: datetime, business_metric: str | None, *, shadow: bool = False) -> canary.Side:
    """One version's figures over [start, end) from the minute roll-ups (and, for the business gate, the units).
    `shadow`: from its shadow events instead (the candidate in a shadow stage: mirrored requests, which the roll-ups
    leave out because nobody was served by them)."""
    if end <= start:
        return canary.Side(version=version.version, units=0 if business_metric else None, conversions=0 if business_metric else None)
    if shadow:
        t = shadow_totals(kind=rollout.subject_kind, name=rollout.subject_name, version=version.version, start=start, end=end)
    else:
        t = rollup_totals(kind=rollout.subject_kind, name=rollout.subject_name, versions=[version.version], start=start, end=end,
                          granularity=Granularity.MINUTE)
    negative = canary.negative_feedback_rate(t.feedback_count, t.thumbs_up_share)
    units = conversions = None
    if business_metric:
        units, conversions = _conversions(rollout, version, business_metric, start, end)
    return canary.Side(
        version=version.version, requests=t.requests, errors=t.errors, latency_p95=t.latency_p95, guardrail_known=t.guardrail_known,
        guardrail_rate=t.guardrail_rate, feedback_count=t.feedback_count, negative_feedback_rate=negative, cost_requests=t.cost_requests,
        cost_per_request=t.cost_per_request, units=units, conversions=conversions,
    )


@dataclass(frozen=True)
class Reading:
    """One evaluation of a rollout's current stage, and the plain JSON a decision stores of it."""

    rules: canary.Policy
    stage: canary.Stage
    evaluation: canary.Evaluation
    elapsed_minutes: float
    numbers: dict


def _read(rollout: Rollout, now: datetime) -> Reading:
    rules = policy_rules(rollout.policy)
    stage = rules.stages[rollout.stage_index]
    start = rollout.stage_started_at
    business = rules.business_metric if stage.gate and stage.gate.name == canary.GateName.BUSINESS_METRIC_NOT_WORSE else None
    candidate = _side(rollout, rollout.candidate, start, now, business, shadow=stage.traffic_percent == 0)
    baseline = _side(rollout, rollout.baseline, start, now, business) if rollout.baseline is not None else None
    evaluation = canary.evaluate(rules, stage, candidate, baseline)
    elapsed = max(0.0, (now - start).total_seconds() / 60)
    numbers = {
        **evaluation.as_dict(), "stage_index": rollout.stage_index, "stage": stage.name, "traffic_percent": stage.traffic_percent,
        "window": {"start": start.isoformat(), "end": now.isoformat()}, "elapsed_minutes": round(elapsed, 3),
    }
    return Reading(rules=rules, stage=stage, evaluation=evaluation, elapsed_minutes=elapsed, numbers=numbers)


# --- the words of a decision ---------------------------------------------------------------------------------------


def trigger_text(check: canary.TriggerCheck) -> str:
    """"error_rate 0.0612 > 0.05" / "latency_p95 410 > 2 x baseline 200 (= 400)": a fired trigger and its numbers."""
    if check.relative:
        return (f"{check.metric} {number_text(check.value)} > {number_text(check.threshold)} x baseline {number_text(check.baseline)} "
                f"(= {number_text(check.limit)}), {check.requests} requests")
    return f"{check.metric} {number_text(check.value)} > {number_text(check.limit)}, {check.requests} requests"


def _gate_label(stage: canary.Stage) -> str:
    return f"the {stage.gate.name} gate" if stage.gate else "the stage (no gate)"


def verdict_text(verdict: canary.Verdict, reading: Reading, rollout: Rollout) -> str:
    """The reason a controller's decision is stored with. A hold's words depend only on the state (not on the figures), so
    an unchanged hold is recognised and not stored again."""
    stage, why = reading.stage, verdict.why
    if why == Why.TRIGGER:
        verb = "Rolled back" if verdict.action == Action.ROLLBACK else "Paused"
        return f"{verb} by {'; '.join(trigger_text(t) for t in verdict.fired)}."
    if why == Why.GATE_PASSED:
        if verdict.action == Action.COMPLETE:
            return f"All {len(reading.rules.stages)} stages passed: v{rollout.candidate.version} takes {CANARY_STAGES[rollout.subject_kind]}."
        following = reading.rules.stages[rollout.stage_index + 1]
        return (f"{_gate_label(stage).capitalize()} passed after {number_text(round(reading.elapsed_minutes))} minutes: "
                f"{stage.name} -> {following.name} ({following.traffic_percent:g} %).")
    if why == Why.GATE_TIMEOUT:
        return f"{_gate_label(stage).capitalize()} did not pass within the stage's maximum of {stage.max_minutes} minutes."
    if why == Why.MANUAL_STAGE:
        return f"Stage {stage.name} is manual: waiting for a person to press Advance."
    if why == Why.MINIMUM_DURATION:
        return f"{_gate_label(stage).capitalize()} passes; waiting for the stage's minimum of {stage.min_minutes} minutes."
    if why == Why.NOT_ENOUGH_DATA:
        counted = "units" if stage.gate and stage.gate.name == canary.GateName.BUSINESS_METRIC_NOT_WORSE else "requests"
        return f"Not enough data for {_gate_label(stage)}: fewer than {reading.rules.gate_min_requests} {counted} on a side; holding."
    if why == Why.GATE_FAILS:
        return f"{_gate_label(stage).capitalize()} does not pass; holding."
    return "Paused: waiting for a person."


# --- applying a decision ---------------------------------------------------------------------------------------------


def _record(rollout: Rollout, *, action: Action, reason: str, actor, numbers: dict, now: datetime, from_stage: int) -> RolloutDecision | None:
    """Store a decision after its effect is set on `rollout` (its stage and share then are the decision's); a hold only
    when its reason differs from the last decision's."""
    last = rollout.decisions.order_by("-seq").first()
    if action == Action.HOLD and last is not None and last.action == Action.HOLD and last.reason == reason:
        return None
    finished = action in (Action.ROLLBACK, Action.COMPLETE)
    return RolloutDecision.objects.create(
        rollout=rollout, seq=(last.seq if last else 0) + 1, at=now, action=action, from_stage=from_stage,
        to_stage=None if finished else rollout.stage_index, traffic_percent=rollout.traffic_percent, numbers=numbers, reason=reason,
        actor=actor if actor is not None and actor.pk else None,
    )


def _audit(rollout: Rollout, action: str, *, actor, reason: str, extra: dict | None = None) -> None:
    stages = rollout.policy.stages
    audit_record(
        actor=actor, action=action, subject=rollout.subject, version=rollout.candidate.version, reason=reason,
        extra={"rollout_id": rollout.pk, "promotion_id": rollout.promotion_id, "stage": stages[rollout.stage_index]["name"],
               "traffic_percent": float(rollout.traffic_percent), **(extra or {})},
    )


def _advance(rollout: Rollout, reading: Reading, *, reason: str, actor, now: datetime) -> Action:
    if rollout.stage_index == len(reading.rules.stages) - 1:
        return _complete(rollout, reading, reason=reason, actor=actor, now=now)
    was, to = rollout.stage_index, rollout.stage_index + 1
    rollout.stage_index, rollout.stage_started_at = to, now
    rollout.traffic_percent = _percent(reading.rules.stages[to].traffic_percent)
    rollout.status, rollout.paused_reason = RolloutStatus.RUNNING, ""
    _record(rollout, action=Action.ADVANCE, reason=reason, actor=actor, numbers=reading.numbers, now=now, from_stage=was)
    _audit(rollout, AuditAction.ROLLOUT_ADVANCED, actor=actor, reason=reason, extra={"from_stage": reading.stage.name})
    return Action.ADVANCE


def _complete(rollout: Rollout, reading: Reading, *, reason: str, actor, now: datetime) -> Action:
    rollout.status, rollout.finished_at, rollout.paused_reason = RolloutStatus.COMPLETED, now, ""
    rollout.traffic_percent = _percent(100)
    _record(rollout, action=Action.COMPLETE, reason=reason, actor=actor, numbers=reading.numbers, now=now, from_stage=rollout.stage_index)
    promotion_rollout_complete(promotion_id=rollout.promotion_id, actor=actor, reason=reason)
    return Action.COMPLETE


def _rollback(rollout: Rollout, numbers: dict, *, reason: str, actor, now: datetime, fired: tuple[canary.TriggerCheck, ...] = ()) -> Action:
    stage = rollout.policy.stages[rollout.stage_index]["name"]
    rollout.status, rollout.finished_at, rollout.paused_reason = RolloutStatus.ROLLED_BACK, now, ""
    rollout.traffic_percent = _percent(0)
    _record(rollout, action=Action.ROLLBACK, reason=reason, actor=actor, numbers=numbers, now=now, from_stage=rollout.stage_index)
    promotion_rollout_abort(
        promotion_id=rollout.promotion_id, reason=reason, actor=actor,
        extra={"rollout_id": rollout.pk, "stage": stage, "triggers": [_trigger_numbers(t) for t in fired],
               "candidate": numbers.get("candidate"), "baseline": numbers.get("baseline")},
    )
    return Action.ROLLBACK


def _trigger_numbers(check: canary.TriggerCheck) -> dict:
    return {"metric": check.metric.value, "action": check.action.value, "value": check.value, "limit": check.limit, "threshold": check.threshold,
            "relative": check.relative, "baseline": check.baseline, "requests": check.requests}


def _pause(rollout: Rollout, numbers: dict, *, reason: str, actor, now: datetime) -> Action:
    rollout.status, rollout.paused_reason = RolloutStatus.PAUSED, reason
    _record(rollout, action=Action.PAUSE, reason=reason, actor=actor, numbers=numbers, now=now, from_stage=rollout.stage_index)
    _audit(rollout, AuditAction.ROLLOUT_PAUSED, actor=actor, reason=reason)
    return Action.PAUSE


def _resume(rollout: Rollout, numbers: dict, *, reason: str, actor, now: datetime) -> Action:
    # The stage starts over: a fresh window and fresh durations (a pause at the stage's maximum would fire again at once).
    rollout.status, rollout.paused_reason, rollout.stage_started_at = RolloutStatus.RUNNING, "", now
    _record(rollout, action=Action.RESUME, reason=reason, actor=actor, numbers=numbers, now=now, from_stage=rollout.stage_index)
    _audit(rollout, AuditAction.ROLLOUT_RESUMED, actor=actor, reason=reason)
    return Action.RESUME


_SAVED = ["status", "stage_index", "stage_started_at", "traffic_percent", "paused_reason", "finished_at", "last_tick_at", "last_numbers"]


def _locked(rollout_id: int) -> Rollout:
    try:
        return (Rollout.objects.select_for_update(of=("self",))
                .select_related("model", "prompt", "policy", "candidate_model_version", "candidate_prompt_version", "baseline_model_version",
                                "baseline_prompt_version")
                .get(pk=rollout_id))
    except (Rollout.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No rollout {rollout_id}.") from None


def _holder(*, model_id: int | None, prompt_id: int | None):
    """The version in the stage a canary of this model (production) or prompt (prod) rolls out into, now, or None."""
    if model_id:
        return ModelVersion.objects.filter(model_id=model_id, stage=CANARY_STAGES["model"]).first()
    deployment = PromptDeployment.objects.select_related("version").filter(prompt_id=prompt_id, environment=CANARY_STAGES["prompt"]).first()
    return deployment.version if deployment else None


# --- start ---------------------------------------------------------------------------------------------------------


def rollout_start(*, promotion_id: int, now: datetime | None = None) -> Rollout | None:
    """Start the rollout of a `rolling_out` canary promotion (the task the registry queues on approval, and the tick's
    recovery of one whose message was lost). Once per promotion: a second call returns the rollout already started;
    a promotion no longer rolling out gets none (None).

    The baseline is the stage's holder now, which must still be the one the approval saw; the policy the newest
    version of the promotion's policy name (blank: "default"). An unknown policy name, or a stage changed since the
    approval, ends the promotion as rolled back (audited with the reason): nothing was rolled out.
    """
    now = now or timezone.now()
    with transaction.atomic():
        try:
            promotion = (PromotionRequest.objects.select_for_update(of=("self",))
                         .select_related("model", "prompt", "version", "prompt_version", "from_version", "from_prompt_version").get(pk=promotion_id))
        except PromotionRequest.DoesNotExist:
            raise NotFound(f"No promotion request {promotion_id}.") from None
        existing = Rollout.objects.filter(promotion=promotion).first()
        if existing is not None or promotion.status != PromotionStatus.ROLLING_OUT:
            return existing
        name = promotion.policy or DEFAULT_POLICY_NAME
        policy = rollout_policy_default_ensure() if name == DEFAULT_POLICY_NAME else RolloutPolicy.objects.filter(name=name).order_by("-version").first()
        if policy is None:
            promotion_rollout_abort(promotion_id=promotion.pk, reason=f"No rollout policy named {name!r}: nothing was rolled out.", extra={"policy": name})
            return None
        is_model = promotion.kind == "model"
        stage = CANARY_STAGES[promotion.kind]
        holder = _holder(model_id=promotion.model_id, prompt_id=promotion.prompt_id)
        if getattr(holder, "pk", None) != getattr(promotion.replaces, "pk", None):
            promotion_rollout_abort(
                promotion_id=promotion.pk,
                reason=f"{stage} changed between the approval and the start (was {_label(promotion.replaces)}, now {_label(holder)}): "
                       "nothing was rolled out; request again.",
            )
            return None
        first = policy.stages[0]
        rollout = Rollout.objects.create(
            promotion=promotion, model=promotion.model if is_model else None, prompt=None if is_model else promotion.prompt,
            candidate_model_version=promotion.version if is_model else None, candidate_prompt_version=None if is_model else promotion.prompt_version,
            baseline_model_version=holder if is_model else None, baseline_prompt_version=None if is_model else holder,
            policy=policy, status=RolloutStatus.RUNNING, stage_index=0, stage_started_at=now, traffic_percent=_percent(first["traffic_percent"]),
            salt="pending", started_at=now,
        )
        rollout.salt = f"rollout-{rollout.pk}"
        rollout.save(update_fields=["salt"])
        reason = (f"Canary of v{promotion.target.version} against {_label(holder)} under the policy {policy.name} v{policy.version}: "
                  f"{first['name']} ({float(first['traffic_percent']):g} %).")
        _record(rollout, action=Action.START, reason=reason, actor=None, numbers={}, now=now, from_stage=0)
        _audit(rollout, AuditAction.ROLLOUT_STARTED, actor=None, reason=reason,
               extra={"policy": policy.name, "policy_version": policy.version, "baseline_version": holder.version if holder else None})
        route_forget(rollout.subject_kind, rollout.subject_name)
    return rollout


# --- the controller ------------------------------------------------------------------------------------------------


def rollout_tick(*, rollout_id: int, now: datetime | None = None) -> Action | None:
    """One controller step of one rollout (canary.decide on its stage's window), applied with its decision in one
    transaction. None when there was nothing to do: the rollout is finished, or was ticked less than
    MIN_TICK_INTERVAL ago (a duplicate tick). A paused rollout only watches its rollback triggers."""
    now = now or timezone.now()
    with transaction.atomic():
        rollout = _locked(rollout_id)
        if not rollout.active or (rollout.last_tick_at is not None and now - rollout.last_tick_at < MIN_TICK_INTERVAL):
            return None
        rollout.last_tick_at = now
        holder = _holder(model_id=rollout.model_id, prompt_id=rollout.prompt_id)
        if getattr(holder, "pk", None) != getattr(rollout.baseline, "pk", None):
            reason = (f"{CANARY_STAGES[rollout.subject_kind]} of {rollout.subject_name} changed during the rollout (was {_label(rollout.baseline)}, "
                      f"now {_label(holder)}): the candidate has nothing to be compared with; rolled back.")
            action = _rollback(rollout, rollout.last_numbers, reason=reason, actor=None, now=now)
        else:
            reading = _read(rollout, now)
            rollout.last_numbers = reading.numbers
            verdict = canary.decide(
                stage=reading.stage, last=rollout.stage_index == len(reading.rules.stages) - 1, elapsed_minutes=reading.elapsed_minutes,
                evaluation=reading.evaluation, paused=rollout.status == RolloutStatus.PAUSED,
            )
            reason = verdict_text(verdict, reading, rollout)
            if verdict.action == Action.ROLLBACK:
                action = _rollback(rollout, reading.numbers, reason=reason, actor=None, now=now, fired=verdict.fired)
            elif verdict.action == Action.PAUSE:
                action = _pause(rollout, reading.numbers, reason=reason, actor=None, now=now)
            elif verdict.action in (Action.ADVANCE, Action.COMPLETE):
                action = _advance(rollout, reading, reason=reason, actor=None, now=now)
            else:
                if verdict.why != Why.PAUSED:  # a paused rollout's hold is its pause: nothing new to store
                    _record(rollout, action=Action.HOLD, reason=reason, actor=None, numbers=reading.numbers, now=now, from_stage=rollout.stage_index)
                action = Action.HOLD
        rollout.save(update_fields=_SAVED)
        if action != Action.HOLD:
            route_forget(rollout.subject_kind, rollout.subject_name)
    return action


@dataclass(frozen=True)
class TickReport:
    folded: int  # new events the roll-ups took in first
    started: int  # rollouts started by the recovery (their start message was lost)
    actions: dict[str, int]  # what the tick did, per action ("skipped": ticked moments ago; "failed": logged)

    def text(self) -> str:
        done = ", ".join(f"{n} {action}" for action, n in sorted(self.actions.items())) or "no active rollout"
        return f"{self.folded} new events rolled up; {self.started} rollouts started; {done}."


def rollouts_tick(*, now: datetime | None = None) -> TickReport:
    """The controller, once (beat, every minute; `manage.py rollouts_tick`): fold new events into the roll-ups, start
    any rolling-out promotion without a rollout, then tick every running or paused rollout, each in its own
    transaction. One rollout's failure is logged and does not stop the others."""
    folded = rollups_catch_up(max_seconds=CATCH_UP_S)
    now = now or timezone.now()
    started = 0
    waiting = PromotionRequest.objects.filter(status=PromotionStatus.ROLLING_OUT, rollout__isnull=True).values_list("pk", flat=True)
    for promotion_id in list(waiting):
        try:
            started += rollout_start(promotion_id=promotion_id, now=now) is not None
        except DomainError as exc:
            logger.warning("could not start the rollout of promotion %s: %s", promotion_id, exc)
    actions: Counter[str] = Counter()
    for rollout_id in list(Rollout.objects.filter(status__in=ACTIVE_ROLLOUT).order_by("pk").values_list("pk", flat=True)):
        try:
            action = rollout_tick(rollout_id=rollout_id, now=now)
        except DomainError as exc:
            logger.warning("rollout %s: the tick failed: %s", rollout_id, exc)
            actions["failed"] += 1
            continue
        actions[action.value if action else "skipped"] += 1
    return TickReport(folded=folded, started=started, actions=dict(actions))


# --- a person's decisions ------------------------------------------------------------------------------------------


def _manual(rollout_id: int, *, reason: str, actor, doing: str, allowed: tuple[str, ...], now: datetime | None):
    require_role(actor, APPROVER, doing)
    reason = _reason(reason)
    rollout = _locked(rollout_id)
    if rollout.status not in allowed:
        raise Conflict(f"Rollout {rollout.pk} is {rollout.status}: {doing.lower()} needs it {' or '.join(allowed)}.", code=f"rollout_{rollout.status}")
    now = now or timezone.now()
    reading = _read(rollout, now)
    rollout.last_numbers = reading.numbers
    return rollout, reading, reason, now


def _finish_manual(rollout: Rollout) -> Rollout:
    rollout.save(update_fields=_SAVED)
    route_forget(rollout.subject_kind, rollout.subject_name)
    return rollout


def rollout_advance(*, rollout_id: int, reason: str, actor, now: datetime | None = None) -> Rollout:
    """A person (approvers) moves a running or paused rollout to its next stage now, whatever its gate says (the
    numbers it read are stored with the decision); from the last stage it completes. Audited with the reason."""
    with transaction.atomic():
        rollout, reading, reason, now = _manual(rollout_id, reason=reason, actor=actor, doing="Advancing a rollout", allowed=ACTIVE_ROLLOUT, now=now)
        _advance(rollout, reading, reason=reason, actor=actor, now=now)
        return _finish_manual(rollout)


def rollout_pause(*, rollout_id: int, reason: str, actor, now: datetime | None = None) -> Rollout:
    """A person pauses a running rollout: it keeps its share and stops advancing (its rollback triggers still act)."""
    with transaction.atomic():
        rollout, reading, reason, now = _manual(rollout_id, reason=reason, actor=actor, doing="Pausing a rollout",
                                                allowed=(RolloutStatus.RUNNING,), now=now)
        _pause(rollout, reading.numbers, reason=reason, actor=actor, now=now)
        return _finish_manual(rollout)


def rollout_resume(*, rollout_id: int, reason: str, actor, now: datetime | None = None) -> Rollout:
    """A person resumes a paused rollout: its stage starts over (a fresh window and durations)."""
    with transaction.atomic():
        rollout, reading, reason, now = _manual(rollout_id, reason=reason, actor=actor, doing="Resuming a rollout",
                                                allowed=(RolloutStatus.PAUSED,), now=now)
        _resume(rollout, reading.numbers, reason=reason, actor=actor, now=now)
        return _finish_manual(rollout)


def rollout_rollback(*, rollout_id: int, reason: str, actor, now: datetime | None = None) -> Rollout:
    """A person rolls a running or paused rollout back now: all traffic returns to the baseline (production never
    moved) and the promotion is closed as rolled back, audited with the reason."""
    with transaction.atomic():
        rollout, reading, reason, now = _manual(rollout_id, reason=reason, actor=actor, doing="Rolling back a rollout", allowed=ACTIVE_ROLLOUT, now=now)
        _rollback(rollout, reading.numbers, reason=reason, actor=actor, now=now)
        return _finish_manual(rollout)
