"""Canary rollouts through the services on real roll-ups: the start, every controller decision with the events that
cause it (a trigger rolls back or pauses, a gate advances, durations, not enough data, no baseline traffic), the
completion through the registry, a person's Advance / Pause / Resume / Roll back, policies, and ticks acting once."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.utils import timezone
from statsmodels.stats.proportion import proportions_ztest

from experiments import canary, selectors, services, tasks
from experiments.models import Outcome, Rollout, RolloutDecision, RolloutPolicy
from experiments.services import rollouts
from mlops_site.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from mlops_site.queue import task_get
from monitoring.services import rollups_catch_up
from registry import services as registry_services
from registry.models import AuditEvent, ModelVersion, PromotionRequest
from tests.experiments.conftest import QUICK, canary_of, traffic
from tests.factories import promote, register

pytestmark = pytest.mark.django_db


def minutes(t0, n: float):
    return t0 + timedelta(minutes=n)


def decisions(rollout) -> list[tuple]:
    return list(RolloutDecision.objects.filter(rollout=rollout).order_by("seq").values_list("action", "from_stage", "to_stage", "traffic_percent"))


def tick(rollout, at):
    """One controller step of `rollout` at `at`, on roll-ups brought up to date first (as rollouts_tick does)."""
    rollups_catch_up()
    action = services.rollout_tick(rollout_id=rollout.pk, now=at)
    rollout.refresh_from_db()
    return action


def at_stage(rollout, index: int, since):
    """Put a rollout at stage `index` of its policy from `since` (a test's shortcut past the earlier stages)."""
    percent = rollout.policy.stages[index]["traffic_percent"]
    Rollout.objects.filter(pk=rollout.pk).update(stage_index=index, stage_started_at=since, traffic_percent=Decimal(str(percent)))
    rollout.refresh_from_db()
    return rollout


# --- start -------------------------------------------------------------------------------------------------------------


def test_approving_a_canary_starts_its_rollout_under_the_default_policy(fraud, editor, approver, celery_eager, django_capture_on_commit_callbacks):
    v1, v2 = fraud
    request = registry_services.promotion_request_create(version=v2, to_stage="production", reason="faster", actor=editor, strategy="canary")

    with django_capture_on_commit_callbacks(execute=True):
        registry_services.promotion_approve(promotion_id=request.pk, actor=approver)

    rollout = Rollout.objects.get(promotion=request)
    assert (rollout.candidate, rollout.baseline, rollout.status, rollout.stage_index, rollout.traffic_percent) == (v2, v1, "running", 0, Decimal("0"))
    assert rollout.salt == f"rollout-{rollout.pk}"
    assert (rollout.policy.name, rollout.policy.version, rollout.policy.stages[1]["traffic_percent"]) == ("default", 1, 5)
    assert decisions(rollout) == [("start", 0, 0, Decimal("0"))]
    started = AuditEvent.objects.get(action="rollout_started")
    assert (started.actor_name, started.subject, started.version) == ("system", "model:fraud", 2)
    assert started.extra["baseline_version"] == 1 and started.extra["policy"] == "default"
    assert ModelVersion.objects.get(pk=v1.pk).stage == "production"


def test_starting_twice_gives_the_same_rollout(fraud, editor, approver, t0):
    rollout = canary_of(fraud[1], editor, approver, at=t0)

    again = services.rollout_start(promotion_id=rollout.promotion_id)

    assert again.pk == rollout.pk
    assert Rollout.objects.count() == 1 and RolloutDecision.objects.count() == 1


def test_an_unknown_policy_ends_the_promotion_as_rolled_back(fraud, editor, approver):
    rollout = canary_of(fraud[1], editor, approver, policy="no-such-policy")

    promotion = PromotionRequest.objects.get(version=fraud[1])
    assert rollout is None and not Rollout.objects.exists()
    assert promotion.status == "rolled_back"
    event = AuditEvent.objects.get(action="rollout_rolled_back")
    assert "no-such-policy" in event.reason and event.actor_name == "system"


def test_the_tick_starts_a_rollout_whose_start_message_was_lost(fraud, editor, approver):
    request = registry_services.promotion_request_create(version=fraud[1], to_stage="production", reason="r", actor=editor, strategy="canary")
    registry_services.promotion_approve(promotion_id=request.pk, actor=approver)  # its task went to a broker nobody reads

    report = services.rollouts_tick()

    assert report.started == 1
    assert Rollout.objects.get(promotion=request).status == "running"


def test_a_canary_of_a_prompt_rolls_out_against_its_prod(editor, approver, prompt_versions, t0):
    prod_request = PromotionRequest.objects.get(prompt__name="summarize", to_stage="prod", status="pending")
    registry_services.promotion_approve(promotion_id=prod_request.pk, actor=approver)

    rollout = canary_of(prompt_versions[3], editor, approver, at=t0)

    assert (rollout.candidate, rollout.baseline, rollout.subject) == (prompt_versions[3], prompt_versions[2], "prompt:summarize")


# --- triggers ------------------------------------------------------------------------------------------------------------


def test_an_error_spike_rolls_back_within_one_tick_and_production_keeps_serving(fraud, editor, approver, quick, t0):
    v1, v2 = fraud
    rollout = at_stage(canary_of(v2, editor, approver, policy="quick", at=t0), 1, t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=200)
    traffic(editor, version=2, at=minutes(t0, 1), n=40, errors=3)

    action = tick(rollout, minutes(t0, 5))

    assert action == "rollback" and rollout.status == "rolled_back" and rollout.traffic_percent == 0
    assert PromotionRequest.objects.get(pk=rollout.promotion_id).status == "rolled_back"
    assert (ModelVersion.objects.get(pk=v1.pk).stage, ModelVersion.objects.get(pk=v2.pk).stage) == ("production", "candidate")
    [event] = AuditEvent.objects.filter(action="rollout_rolled_back")
    assert event.actor_name == "system" and "error_rate 0.075 > 0.05" in event.reason
    [trigger] = event.extra["triggers"]
    assert (trigger["metric"], trigger["value"], trigger["limit"], trigger["requests"]) == ("error_rate", 3 / 40, 0.05, 40)
    assert (event.extra["candidate"]["errors"], event.extra["baseline"]["requests"]) == (3, 200)
    rollback = RolloutDecision.objects.get(rollout=rollout, action="rollback")
    assert rollback.numbers["candidate"]["requests"] == 40 and rollback.actor is None
    assert services.route(model="fraud", unit_id="anyone").version == 1


def test_the_error_rate_trigger_at_five_percent_holds(fraud, editor, approver, quick, t0):
    rollout = at_stage(canary_of(fraud[1], editor, approver, policy="quick", at=t0), 1, t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=200)
    traffic(editor, version=2, at=minutes(t0, 1), n=40, errors=2)

    action = tick(rollout, minutes(t0, 5))

    assert action == "hold" and rollout.status == "running"
    error_trigger = next(t for t in rollout.last_numbers["triggers"] if t["metric"] == "error_rate")
    assert (error_trigger["value"], error_trigger["state"]) == (0.05, "ok")


def test_a_cost_spike_pauses_and_an_error_spike_beside_it_rolls_back(fraud, editor, approver, quick, t0):
    rollout = at_stage(canary_of(fraud[1], editor, approver, policy="quick", at=t0), 1, t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=100, cost_usd=0.001)
    traffic(editor, version=2, at=minutes(t0, 1), n=100, cost_usd=0.0021)

    paused = tick(rollout, minutes(t0, 5))
    traffic(editor, version=2, at=minutes(t0, 6), n=100, errors=20, cost_usd=0.0021)
    rolled_back = tick(rollout, minutes(t0, 7))

    assert (paused, rolled_back) == ("pause", "rollback")
    pause = RolloutDecision.objects.get(rollout=rollout, action="pause")
    assert pause.reason.startswith("Paused by cost_per_request") and "2 x baseline 0.001" in pause.reason
    assert AuditEvent.objects.get(action="rollout_paused").actor_name == "system"
    assert "error_rate" in RolloutDecision.objects.get(rollout=rollout, action="rollback").reason


def test_negative_feedback_past_twice_the_baseline_pauses(fraud, editor, approver, quick, t0):
    rollout = at_stage(canary_of(fraud[1], editor, approver, policy="quick", at=t0), 1, t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=90, feedback=1)
    traffic(editor, version=1, at=minutes(t0, 3), n=10, feedback=-1)
    traffic(editor, version=2, at=minutes(t0, 1), n=79, feedback=1)
    traffic(editor, version=2, at=minutes(t0, 3), n=21, feedback=-1)

    action = tick(rollout, minutes(t0, 5))

    assert action == "pause" and rollout.status == "paused"
    feedback = next(t for t in rollout.last_numbers["triggers"] if t["metric"] == "negative_feedback_rate")
    assert (feedback["value"], feedback["baseline"], feedback["limit"]) == (0.21, 0.1, 0.2)
    assert rollout.paused_reason.startswith("Paused by negative_feedback_rate")


def test_a_paused_rollout_still_rolls_back_on_errors_and_stores_no_holds(fraud, editor, approver, quick, t0):
    rollout = at_stage(canary_of(fraud[1], editor, approver, policy="quick", at=t0), 1, t0)
    services.rollout_pause(rollout_id=rollout.pk, reason="weekend", actor=approver, now=minutes(t0, 1))
    traffic(editor, version=1, at=minutes(t0, 2), n=100)
    traffic(editor, version=2, at=minutes(t0, 2), n=100)

    quiet = [tick(rollout, minutes(t0, m)) for m in (20, 40, 60, 80)]
    traffic(editor, version=2, at=minutes(t0, 81), n=100, errors=40)
    spike = tick(rollout, minutes(t0, 90))

    assert quiet == ["hold"] * 4 and spike == "rollback"
    assert [a for a, *_ in decisions(rollout)] == ["start", "pause", "rollback"]


# --- gates and durations ---------------------------------------------------------------------------------------------------


def test_the_shadow_gate_holds_on_too_little_traffic_and_pauses_at_its_maximum(fraud, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    traffic(editor, version=2, at=minutes(t0, 1), n=19, shadow=True)

    held = [tick(rollout, minutes(t0, m)) for m in (6, 10, 29)]
    timed_out = tick(rollout, minutes(t0, 30))

    assert held == ["hold"] * 3 and timed_out == "pause"
    assert rollout.stage_index == 0 and rollout.status == "paused"
    assert rollout.paused_reason == "The no_errors gate did not pass within the stage's maximum of 30 minutes."
    holds = RolloutDecision.objects.filter(rollout=rollout, action="hold")
    assert [h.reason for h in holds] == ["Not enough data for the no_errors gate: fewer than 20 requests on a side; holding."]


def test_a_gate_that_passes_waits_for_the_stage_minimum_then_advances(fraud, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    traffic(editor, version=2, at=minutes(t0, 1), n=20, shadow=True)

    early = tick(rollout, minutes(t0, 4))
    advanced = tick(rollout, minutes(t0, 5))

    assert (early, advanced) == ("hold", "advance")
    assert (rollout.stage_index, rollout.traffic_percent, rollout.stage_started_at) == (1, Decimal("5"), minutes(t0, 5))
    assert decisions(rollout)[-1] == ("advance", 0, 1, Decimal("5.00"))
    assert RolloutDecision.objects.filter(rollout=rollout, action="hold").get().reason == (
        "The no_errors gate passes; waiting for the stage's minimum of 5 minutes.")
    advanced_event = AuditEvent.objects.get(action="rollout_advanced")
    assert (advanced_event.actor_name, advanced_event.extra["from_stage"], advanced_event.extra["stage"]) == ("system", "shadow", "5%")


def test_the_new_stage_reads_only_its_own_window(fraud, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    traffic(editor, version=2, at=minutes(t0, 1), n=30, shadow=True)
    traffic(editor, version=1, at=minutes(t0, 1), n=300)
    tick(rollout, minutes(t0, 5))

    tick(rollout, minutes(t0, 15))

    assert rollout.stage_index == 1
    assert rollout.last_numbers["candidate"]["requests"] == 0 and rollout.last_numbers["gate"]["state"] == "not_enough_data"


def test_a_baseline_with_no_traffic_holds_and_never_rolls_back_on_relative_triggers(fraud, editor, approver, quick, t0):
    rollout = at_stage(canary_of(fraud[1], editor, approver, policy="quick", at=t0), 2, t0)
    traffic(editor, version=2, at=minutes(t0, 1), n=300, latency_ms=9000.0, cost_usd=1.0)

    actions = [tick(rollout, minutes(t0, m)) for m in (15, 30, 59)]
    at_max = tick(rollout, minutes(t0, 60))

    assert actions == ["hold"] * 3 and at_max == "pause"
    assert {t["state"] for t in rollout.last_numbers["triggers"] if t["relative"]} == {"not_enough_data"}
    assert rollout.last_numbers["baseline"]["requests"] == 0


def test_holds_are_stored_only_when_their_reason_changes(fraud, editor, approver, quick, t0):
    rollout = at_stage(canary_of(fraud[1], editor, approver, policy="quick", at=t0), 1, t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=300)
    traffic(editor, version=2, at=minutes(t0, 1), n=10)

    for m in (2, 3, 4):
        tick(rollout, minutes(t0, m))
    traffic(editor, version=2, at=minutes(t0, 5), n=100, errors=1)
    for m in (8, 9):
        tick(rollout, minutes(t0, m))

    assert [d.reason for d in RolloutDecision.objects.filter(rollout=rollout, action="hold")] == [
        "Not enough data for the error_rate gate: fewer than 20 requests on a side; holding.", "The error_rate gate does not pass; holding."]


def test_the_latency_gate_compares_the_window_p95_with_the_baseline(fraud, editor, approver, quick, t0):
    rollout = at_stage(canary_of(fraud[1], editor, approver, policy="quick", at=t0), 2, t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=100, latency_ms=100.0)
    traffic(editor, version=2, at=minutes(t0, 1), n=100, latency_ms=112.0)

    slow = tick(rollout, minutes(t0, 11))
    traffic(editor, version=1, at=minutes(t0, 12), n=1000, latency_ms=100.0)
    traffic(editor, version=2, at=minutes(t0, 12), n=2000, latency_ms=104.0)
    fast = tick(rollout, minutes(t0, 50))

    assert (slow, fast) == ("hold", "advance")
    gate = RolloutDecision.objects.get(rollout=rollout, action="advance").numbers["gate"]
    assert gate["value"] == pytest.approx(104.0, rel=0.01) and gate["baseline"] == pytest.approx(100.0, rel=0.01)


def test_a_rollout_walks_every_stage_and_completes_through_the_registry(fraud, editor, approver, quick, t0):
    v1, v2 = fraud
    rollout = canary_of(v2, editor, approver, policy="quick", at=t0)
    for start in (1, 12, 24, 36):
        traffic(editor, version=1, at=minutes(t0, start), n=50)
        traffic(editor, version=2, at=minutes(t0, start), n=50, shadow=start == 1)  # mirrored in the shadow stage

    actions = [tick(rollout, minutes(t0, m)) for m in (6, 17, 29, 35)]

    assert actions == ["advance", "advance", "advance", "complete"]
    assert [(a, f, t) for a, f, t, _ in decisions(rollout)] == [("start", 0, 0), ("advance", 0, 1), ("advance", 1, 2), ("advance", 2, 3),
                                                                 ("complete", 3, None)]
    assert (rollout.status, rollout.finished_at, rollout.traffic_percent) == ("completed", minutes(t0, 35), Decimal("100"))
    assert (ModelVersion.objects.get(pk=v1.pk).stage, ModelVersion.objects.get(pk=v2.pk).stage) == ("archived", "production")
    completed = AuditEvent.objects.get(action="promotion_completed")
    assert completed.actor_name == "system" and completed.reason == "All 4 stages passed: v2 takes production."
    assert PromotionRequest.objects.get(pk=rollout.promotion_id).status == "approved"
    route = services.route(model="fraud", unit_id="u-1")
    assert (route.version, route.rollout) == (2, None)


def test_a_manual_stage_waits_for_advance(fraud, editor, approver, t0):
    stages = [dict(s) for s in QUICK["stages"]]
    stages[1] = {**stages[1], "manual": True}
    services.rollout_policy_create(name="careful", actor=approver, **{**QUICK, "stages": stages})
    rollout = at_stage(canary_of(fraud[1], editor, approver, policy="careful", at=t0), 1, t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=100)
    traffic(editor, version=2, at=minutes(t0, 1), n=100)

    waiting = [tick(rollout, minutes(t0, m)) for m in (30, 120, 600)]
    services.rollout_advance(rollout_id=rollout.pk, reason="numbers look fine", actor=approver, now=minutes(t0, 601))
    rollout.refresh_from_db()

    assert waiting == ["hold"] * 3 and rollout.status == "running"
    assert (rollout.stage_index, rollout.traffic_percent) == (2, Decimal("25"))
    hold = RolloutDecision.objects.get(rollout=rollout, action="hold")
    assert hold.reason == "Stage 5% is manual: waiting for a person to press Advance."
    advance = RolloutDecision.objects.get(rollout=rollout, action="advance")
    assert (advance.actor, advance.reason, advance.numbers["gate"]["state"]) == (approver, "numbers look fine", "pass")
    assert AuditEvent.objects.get(action="rollout_advanced").actor_name == "bob"


def test_the_business_gate_counts_units_converted_after_their_first_request(fraud, editor, approver, t0):
    stages = [{"traffic_percent": 50, "min_minutes": 10, "max_minutes": 60, "gate": {"name": "business_metric_not_worse"}},
              {"traffic_percent": 100, "min_minutes": 5}]
    services.rollout_policy_create(name="business", actor=approver, stages=stages, triggers=[], gate_min_requests=100)
    rollout = canary_of(fraud[1], editor, approver, policy="business", at=t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=400, unit="b")
    traffic(editor, version=2, at=minutes(t0, 1), n=400, unit="c")
    converted = [(f"b-{i}", minutes(t0, 20)) for i in range(60)] + [(f"c-{i}", minutes(t0, 20)) for i in range(30)]
    ignored = [("c-100", t0 - timedelta(minutes=1)), ("c-101", minutes(t0, 40)), ("c-102", minutes(t0, 20))]
    Outcome.objects.bulk_create([Outcome(unit_id=u, metric="conversion", value=1.0, timestamp=ts) for u, ts in converted + ignored[:2]]
                                + [Outcome(unit_id="c-102", metric="conversion", value=0.0, timestamp=ignored[2][1]),
                                   Outcome(unit_id="c-103", metric="revenue", value=5.0, timestamp=minutes(t0, 20))])
    _, p = proportions_ztest([30, 60], [400, 400], alternative="smaller")

    action = tick(rollout, minutes(t0, 30))

    gate = rollout.last_numbers["gate"]
    assert (rollout.last_numbers["candidate"]["units"], rollout.last_numbers["candidate"]["conversions"]) == (400, 30)
    assert (rollout.last_numbers["baseline"]["units"], rollout.last_numbers["baseline"]["conversions"]) == (400, 60)
    assert gate["p_value"] == pytest.approx(p, rel=1e-9) and p < 0.05
    assert (gate["state"], action) == ("fail", "hold")


def test_production_changed_during_the_rollout_rolls_it_back(fraud, editor, approver, quick, t0):
    v1, v2 = fraud
    promote(v2, "production", editor, approver)
    rollout = canary_of(register("fraud", editor), editor, approver, policy="quick", at=t0)
    registry_services.model_rollback(model_name="fraud", stage="production", reason="v2 misbehaves", actor=approver)

    action = tick(rollout, minutes(t0, 3))

    assert action == "rollback" and "changed during the rollout (was v2, now v1)" in rollout.decisions.last().reason
    assert PromotionRequest.objects.get(pk=rollout.promotion_id).status == "rolled_back"
    assert ModelVersion.objects.get(stage="production").pk == v1.pk


# --- a person's decisions ---------------------------------------------------------------------------------------------------


def test_pause_then_resume_restarts_the_stage_window(fraud, editor, approver, quick, t0):
    rollout = at_stage(canary_of(fraud[1], editor, approver, policy="quick", at=t0), 1, t0)

    services.rollout_pause(rollout_id=rollout.pk, reason="holiday freeze", actor=approver, now=minutes(t0, 3))
    paused = Rollout.objects.get(pk=rollout.pk)
    services.rollout_resume(rollout_id=rollout.pk, reason="back", actor=approver, now=minutes(t0, 90))
    rollout.refresh_from_db()

    assert (paused.status, paused.paused_reason) == ("paused", "holiday freeze")
    assert (rollout.status, rollout.paused_reason, rollout.stage_started_at, rollout.stage_index) == ("running", "", minutes(t0, 90), 1)
    assert [a for a, *_ in decisions(rollout)] == ["start", "pause", "resume"]
    assert [(e.action, e.actor_name, e.reason) for e in AuditEvent.objects.filter(action__in=["rollout_paused", "rollout_resumed"]).order_by("id")] == [
        ("rollout_paused", "bob", "holiday freeze"), ("rollout_resumed", "bob", "back")]


def test_roll_back_now_by_an_approver(fraud, editor, approver, quick, t0):
    rollout = at_stage(canary_of(fraud[1], editor, approver, policy="quick", at=t0), 2, t0)

    services.rollout_rollback(rollout_id=rollout.pk, reason="customer complaints", actor=approver, now=minutes(t0, 3))

    rollout.refresh_from_db()
    assert (rollout.status, rollout.traffic_percent) == ("rolled_back", Decimal("0"))
    event = AuditEvent.objects.get(action="rollout_rolled_back")
    assert (event.actor_name, event.reason, event.extra["stage"], event.extra["triggers"]) == ("bob", "customer complaints", "25%", [])
    assert ModelVersion.objects.get(stage="production").version == 1


def test_advancing_the_last_stage_completes_with_the_person_named(fraud, editor, approver, quick, t0):
    rollout = at_stage(canary_of(fraud[1], editor, approver, policy="quick", at=t0), 3, t0)

    services.rollout_advance(rollout_id=rollout.pk, reason="ship it", actor=approver, now=minutes(t0, 1))

    rollout.refresh_from_db()
    assert rollout.status == "completed"
    completed = AuditEvent.objects.get(action="promotion_completed")
    assert (completed.actor_name, completed.reason) == ("bob", "ship it")


@pytest.mark.parametrize("act", ["rollout_advance", "rollout_pause", "rollout_rollback"])
def test_a_person_needs_the_approver_role_and_a_reason(fraud, editor, approver, quick, t0, act):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)

    with pytest.raises(Forbidden):
        getattr(services, act)(rollout_id=rollout.pk, reason="why not", actor=editor)
    with pytest.raises(ValidationFailed) as blank:
        getattr(services, act)(rollout_id=rollout.pk, reason=" ", actor=approver)

    assert blank.value.extra["fields"] == {"reason": ["required: say why"]}
    assert Rollout.objects.get(pk=rollout.pk).status == "running" and RolloutDecision.objects.count() == 1


def test_a_finished_rollout_refuses_a_person_with_a_409(fraud, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    services.rollout_rollback(rollout_id=rollout.pk, reason="no", actor=approver)

    with pytest.raises(Conflict) as advance:
        services.rollout_advance(rollout_id=rollout.pk, reason="oops", actor=approver)
    with pytest.raises(Conflict) as resume:
        services.rollout_resume(rollout_id=rollout.pk, reason="oops", actor=approver)
    with pytest.raises(NotFound):
        services.rollout_pause(rollout_id=10**9, reason="oops", actor=approver)

    assert advance.value.code == resume.value.code == "rollout_rolled_back"


def test_resume_needs_a_paused_rollout_and_pause_a_running_one(fraud, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)

    with pytest.raises(Conflict) as resume:
        services.rollout_resume(rollout_id=rollout.pk, reason="go", actor=approver)
    services.rollout_pause(rollout_id=rollout.pk, reason="wait", actor=approver)
    with pytest.raises(Conflict) as pause:
        services.rollout_pause(rollout_id=rollout.pk, reason="wait more", actor=approver)

    assert (resume.value.code, pause.value.code) == ("rollout_running", "rollout_paused")


# --- policies ------------------------------------------------------------------------------------------------------------


def test_a_policy_change_is_a_new_version_and_a_running_rollout_keeps_its_own(fraud, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)

    changed = services.rollout_policy_create(name="quick", actor=approver, description="longer shadow",
                                             **{**QUICK, "stages": [{**QUICK["stages"][0], "min_minutes": 15}, *QUICK["stages"][1:]]})

    rollout.refresh_from_db()
    assert (changed.version, rollout.policy.version, rollout.policy.stages[0]["min_minutes"]) == (2, 1, 5)
    assert list(RolloutPolicy.objects.filter(name="quick").values_list("version", flat=True)) == [2, 1]
    event = AuditEvent.objects.filter(action="rollout_policy_set").latest("id")
    assert (event.subject, event.version, event.reason, event.actor_name) == ("rollout-policy:quick", 2, "longer shadow", "bob")


def test_the_default_policy_is_created_once_and_editing_it_keeps_version_one(approver):
    first = services.rollout_policy_default_ensure()
    again = services.rollout_policy_default_ensure()

    edited = services.rollout_policy_create(name="default", actor=approver, stages=[{"traffic_percent": 100, "min_minutes": 0}], triggers=[])

    assert first.pk == again.pk and first.version == 1 and edited.version == 2
    assert services.rollout_policy_default_ensure().pk == edited.pk


def test_decreasing_shares_or_a_non_approver_are_refused(editor, approver):
    decreasing = [{"traffic_percent": 25, "min_minutes": 1}, {"traffic_percent": 5, "min_minutes": 1}, {"traffic_percent": 100, "min_minutes": 1}]

    with pytest.raises(ValidationFailed) as caught:
        services.rollout_policy_create(name="odd", actor=approver, stages=decreasing, triggers=[])
    with pytest.raises(Forbidden):
        services.rollout_policy_create(name="odd", actor=editor, stages=QUICK["stages"], triggers=[])
    with pytest.raises(ValidationFailed) as bad_name:
        services.rollout_policy_create(name="no spaces", actor=approver, stages=QUICK["stages"], triggers=[])

    assert caught.value.extra["fields"] == {"stages[1].traffic_percent": ["shares never decrease: 5 after 25"]}
    assert "name" in bad_name.value.extra["fields"]
    assert not RolloutPolicy.objects.exists()


# --- ticks act once ---------------------------------------------------------------------------------------------------------


def test_a_retried_or_second_tick_in_the_same_minute_acts_once(fraud, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    traffic(editor, version=2, at=minutes(t0, 1), n=20, shadow=True)

    first = tick(rollout, minutes(t0, 6))
    retried = tick(rollout, minutes(t0, 6))
    second_beat = tick(rollout, minutes(t0, 6.4))
    next_minute = tick(rollout, minutes(t0, 7))

    assert (first, retried, second_beat, next_minute) == ("advance", None, None, "hold")
    assert [a for a, *_ in decisions(rollout)] == ["start", "advance", "hold"]
    assert AuditEvent.objects.filter(action="rollout_advanced").count() == 1


def test_a_tick_that_dies_before_its_commit_leaves_nothing_and_the_next_one_applies_once(fraud, editor, approver, quick, t0, monkeypatch):
    rollout = at_stage(canary_of(fraud[1], editor, approver, policy="quick", at=t0), 3, t0)

    def killed(**kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr(rollouts, "promotion_rollout_complete", killed)
    with pytest.raises(SystemExit):
        tick(rollout, minutes(t0, 6))
    after_kill = (rollout.status, rollout.last_tick_at, [a for a, *_ in decisions(rollout)])
    monkeypatch.undo()
    retried = tick(rollout, minutes(t0, 6))

    assert after_kill == ("running", None, ["start"])
    assert retried == "complete" and [a for a, *_ in decisions(rollout)] == ["start", "complete"]
    assert PromotionRequest.objects.get(pk=rollout.promotion_id).status == "approved"
    assert AuditEvent.objects.filter(action="promotion_completed").count() == 1


def test_rollouts_tick_reports_what_it_did(fraud, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=20)
    traffic(editor, version=2, at=minutes(t0, 1), n=20, shadow=True)  # read raw by the shadow stage: never rolled up

    report = services.rollouts_tick(now=minutes(t0, 6))
    again = services.rollouts_tick(now=minutes(t0, 6))

    assert (report.folded, report.actions) == (20, {"advance": 1})
    assert (again.folded, again.actions) == (0, {"skipped": 1})
    assert report.text() == "20 new events rolled up; 0 rollouts started; 1 advance."
    assert Rollout.objects.get(pk=rollout.pk).stage_index == 1


def test_one_rollout_failing_does_not_stop_the_others(fraud, editor, approver, quick, t0, monkeypatch):
    first = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    other_v1 = register("churn", editor)
    promote(other_v1, "production", editor, approver)
    second = canary_of(register("churn", editor), editor, approver, policy="quick", at=t0)
    real = rollouts._read

    def broken(rollout, now):
        if rollout.pk == first.pk:
            raise Conflict("boom")
        return real(rollout, now)

    monkeypatch.setattr(rollouts, "_read", broken)

    report = services.rollouts_tick(now=minutes(t0, 3))

    assert report.actions == {"failed": 1, "hold": 1}
    assert Rollout.objects.get(pk=second.pk).last_tick_at == minutes(t0, 3)
    assert Rollout.objects.get(pk=first.pk).last_tick_at is None



# --- what the pages read -------------------------------------------------------------------------------------------------------


def numbers_of(candidate: canary.Side, baseline: canary.Side, gate: canary.Gate | None) -> dict:
    stage = canary.Stage("5%", 5, 0, None, gate)
    return canary.evaluate(canary.DEFAULT_POLICY, stage, candidate, baseline).as_dict()


@pytest.mark.parametrize(("candidate", "gate", "health"), [
    (canary.Side(2, requests=1000, errors=60), canary.Gate(canary.GateName.ERROR_RATE, 0.005), "triggered"),
    (canary.Side(2, requests=1000, errors=6), canary.Gate(canary.GateName.ERROR_RATE, 0.005), "failing"),
    (canary.Side(2, requests=99), canary.Gate(canary.GateName.ERROR_RATE, 0.005), "waiting"),
    (canary.Side(2, requests=1000), canary.Gate(canary.GateName.ERROR_RATE, 0.005), "healthy"),
    (canary.Side(2, requests=1000), None, "healthy"),
])
def test_health_reads_the_latest_evaluation(candidate, gate, health):
    rollout = Rollout(last_numbers=numbers_of(candidate, canary.Side(1, requests=1000), gate))

    assert selectors.rollout_health(rollout) == health
    assert selectors.rollout_health(Rollout(last_numbers={})) == "no_data"


def test_the_series_compares_candidate_and_baseline_minute_by_minute(fraud, editor, approver, quick, t0, django_assert_max_num_queries):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=40, errors=1, latency_ms=100.0, cost_usd=0.001)
    traffic(editor, version=2, at=minutes(t0, 1), n=20, errors=1, latency_ms=150.0, cost_usd=0.0015)
    traffic(editor, version=2, at=minutes(t0, 3), n=10, feedback=-1)
    traffic(editor, version=2, at=minutes(t0, 3) + timedelta(seconds=30), n=30, feedback=1)
    held = tick(rollout, minutes(t0, 5))
    services.rollout_rollback(rollout_id=rollout.pk, reason="enough", actor=approver, now=minutes(t0, 6))
    rollout = selectors.rollout_get(rollout_id=rollout.pk)

    with django_assert_max_num_queries(2):
        series = selectors.rollout_series(rollout=rollout)

    assert series.buckets == (minutes(t0, 1), minutes(t0, 3))
    assert series.requests == {"candidate": [20, 40], "baseline": [40, 0]}
    assert held == "hold"
    assert series.values["error_rate"] == {"candidate": [0.05, 0.0], "baseline": [1 / 40, None]}
    assert series.values["latency_p95"]["candidate"][0] == pytest.approx(150.0, rel=0.01)
    assert series.values["cost_per_request"] == {"candidate": [pytest.approx(0.0015), None], "baseline": [pytest.approx(0.001), None]}
    assert series.values["negative_feedback_rate"]["candidate"] == [None, 0.25]
    assert [(m.action, m.stage, m.traffic_percent) for m in series.stages] == [("start", "shadow", 0.0), ("rollback", "rollback", 0.0)]
    assert (series.start, series.end, series.granularity) == (t0, minutes(t0, 6), "minute")


# --- the task, the beat entry and the command ---------------------------------------------------------------------------------


def test_the_tasks_call_the_services_and_beat_ticks_every_minute(fraud, editor, approver, settings):
    request = registry_services.promotion_request_create(version=fraud[1], to_stage="production", reason="r", actor=editor, strategy="canary")
    registry_services.promotion_approve(promotion_id=request.pk, actor=approver)

    started = tasks.rollout_start(request.pk)
    again = tasks.rollout_start(request.pk)
    ticked = tasks.rollouts_tick()

    rollout = Rollout.objects.get(promotion=request)
    assert started == again == f"rollout {rollout.pk}"
    assert ticked == "0 new events rolled up; 0 rollouts started; 1 hold." and rollout.last_tick_at is not None
    entry = settings.CELERY_BEAT_SCHEDULE["experiments-rollouts-tick"]
    assert entry == {"task": "experiments.tasks.rollouts_tick", "schedule": 60.0}
    assert (task_get(entry["task"]).name, task_get(settings.MLOPS_ROLLOUT_START_TASK).name) == (tasks.rollouts_tick.name, tasks.rollout_start.name)


def test_the_command_rolls_up_new_events_then_ticks_once(fraud, editor, approver, quick, t0, capsys):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    Rollout.objects.filter(pk=rollout.pk).update(stage_started_at=timezone.now() - timedelta(minutes=10))
    traffic(editor, version=1, at=timezone.now() - timedelta(minutes=5), n=25)
    traffic(editor, version=2, at=timezone.now() - timedelta(minutes=5), n=25, shadow=True)  # read raw: never rolled up

    call_command("rollouts_tick")
    call_command("rollouts_tick")

    out = capsys.readouterr().out.splitlines()
    assert out == ["25 new events rolled up; 0 rollouts started; 1 advance.", "0 new events rolled up; 0 rollouts started; 1 skipped."]
    assert Rollout.objects.get(pk=rollout.pk).stage_index == 1


def test_the_database_holds_one_active_rollout_per_model(fraud, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    other = PromotionRequest.objects.create(model=rollout.model, version=register("fraud", editor), to_stage="production", strategy="canary",
                                            requested_by=editor)
    second = dict(promotion=other, model=rollout.model, candidate_model_version=other.version, baseline_model_version=rollout.baseline,
                  policy=rollout.policy, stage_started_at=t0, traffic_percent=0, salt="s")

    with pytest.raises(IntegrityError), transaction.atomic():
        Rollout.objects.create(**second)
    services.rollout_rollback(rollout_id=rollout.pk, reason="make room", actor=approver)
    Rollout.objects.create(**second)

    assert Rollout.objects.filter(model=rollout.model).count() == 2


# --- the shadow stage reads the mirrored requests -------------------------------------------------------------------------


def test_the_shadow_stage_reads_the_candidates_shadow_events_only(fraud, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=50)
    traffic(editor, version=2, at=minutes(t0, 1), n=30, errors=30, unit="served")  # not mirrored: not the shadow's
    traffic(editor, version=2, at=minutes(t0, 2), n=25, errors=1, shadow=True, latency_ms=80.0)

    action = tick(rollout, minutes(t0, 6))

    candidate = rollout.last_numbers["candidate"]
    assert (candidate["requests"], candidate["errors"]) == (25, 1)
    assert candidate["latency_p95"] == pytest.approx(80.0, rel=0.01)
    assert rollout.last_numbers["baseline"]["requests"] == 50
    assert (action, rollout.last_numbers["gate"]["state"]) == ("hold", "fail")


def test_the_business_gate_leaves_out_the_units_of_shadow_events(fraud, editor, approver, t0):
    stages = [{"traffic_percent": 50, "min_minutes": 10, "max_minutes": 60, "gate": {"name": "business_metric_not_worse"}},
              {"traffic_percent": 100, "min_minutes": 5}]
    services.rollout_policy_create(name="business", actor=approver, stages=stages, triggers=[], gate_min_requests=10)
    rollout = canary_of(fraud[1], editor, approver, policy="business", at=t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=20, unit="b")
    traffic(editor, version=2, at=minutes(t0, 1), n=20, unit="c")
    traffic(editor, version=2, at=minutes(t0, 1), n=15, unit="m", shadow=True)

    tick(rollout, minutes(t0, 30))

    assert (rollout.last_numbers["candidate"]["units"], rollout.last_numbers["baseline"]["units"]) == (20, 20)
