"""The canary rules without a database: policy checks, each trigger and gate at and just past its threshold (strict
inequalities), not enough data, the order of a decision (rollback beats pause, durations, manual stages)."""

import json
import math

import pytest
from statsmodels.stats.proportion import proportions_ztest

from experiments import canary
from experiments.canary import Action, CheckState, Gate, GateName, Side, Stage, TriggerMetric, Why

DEFAULT_JSON = {
    "stages": [
        {"name": "shadow", "traffic_percent": 0, "min_minutes": 60, "max_minutes": 120, "gate": {"name": "no_errors"}},
        {"traffic_percent": 5, "min_minutes": 120, "max_minutes": 240, "gate": {"name": "error_rate", "threshold": 0.005}},
        {"traffic_percent": 25, "min_minutes": 240, "max_minutes": 720, "gate": {"name": "latency_p95", "threshold": 1.1}},
        {"traffic_percent": 50, "min_minutes": 720, "max_minutes": 1440, "gate": {"name": "business_metric_not_worse"}},
        {"traffic_percent": 100, "min_minutes": 60},
    ],
    "triggers": [
        {"metric": "error_rate", "threshold": 0.05, "action": "rollback"},
        {"metric": "latency_p95", "threshold": 2, "relative": True, "action": "rollback"},
        {"metric": "guardrail_rate", "threshold": 3, "relative": True, "action": "rollback"},
        {"metric": "negative_feedback_rate", "threshold": 2, "relative": True, "action": "pause"},
        {"metric": "cost_per_request", "threshold": 2, "relative": True, "action": "pause"},
    ],
}


def test_the_default_policy_is_the_documented_one():
    assert canary.policy_from_json(**DEFAULT_JSON) == canary.DEFAULT_POLICY
    assert canary.policy_from_json(stages=canary.DEFAULT_POLICY.stages_json(), triggers=canary.DEFAULT_POLICY.triggers_json()) == canary.DEFAULT_POLICY
    assert [s.name for s in canary.DEFAULT_POLICY.stages] == ["shadow", "5%", "25%", "50%", "100%"]
    assert (canary.DEFAULT_POLICY.gate_min_requests, canary.DEFAULT_POLICY.trigger_min_requests, canary.DEFAULT_POLICY.business_metric) == (
        100, 20, "conversion")


def stages_with(index: int, **changes) -> list[dict]:
    stages = [dict(s) for s in DEFAULT_JSON["stages"]]
    stages[index] = {**stages[index], **changes}
    return stages


def triggers_with(index: int, **changes) -> list[dict]:
    triggers = [dict(t) for t in DEFAULT_JSON["triggers"]]
    triggers[index] = {**triggers[index], **changes}
    return triggers


@pytest.mark.parametrize(("parts", "field"), [
    ({"stages": stages_with(2, traffic_percent=4)}, "stages[2].traffic_percent"),
    ({"stages": stages_with(1, traffic_percent=101)}, "stages[1].traffic_percent"),
    ({"stages": stages_with(1, traffic_percent=-1)}, "stages[1].traffic_percent"),
    ({"stages": stages_with(1, traffic_percent=5.125)}, "stages[1].traffic_percent"),
    ({"stages": stages_with(1, traffic_percent=True)}, "stages[1].traffic_percent"),
    ({"stages": stages_with(4, traffic_percent=99)}, "stages[4].traffic_percent"),
    ({"stages": stages_with(1, min_minutes=241)}, "stages[1].max_minutes"),
    ({"stages": stages_with(1, min_minutes=-1)}, "stages[1].min_minutes"),
    ({"stages": stages_with(1, min_minutes=1.5)}, "stages[1].min_minutes"),
    ({"stages": stages_with(1, gate={"name": "accuracy"})}, "stages[1].gate.name"),
    ({"stages": stages_with(1, gate={"name": "error_rate", "threshold": 0})}, "stages[1].gate.threshold"),
    ({"stages": stages_with(1, gate={"name": "error_rate", "threshold": -0.1})}, "stages[1].gate.threshold"),
    ({"stages": stages_with(1, gate={"name": "error_rate", "threshold": math.inf})}, "stages[1].gate.threshold"),
    ({"stages": stages_with(1, gate={"name": "error_rate", "threshold": math.nan})}, "stages[1].gate.threshold"),
    ({"stages": stages_with(0, gate={"name": "no_errors", "threshold": 1})}, "stages[0].gate.threshold"),
    ({"stages": stages_with(3, gate={"name": "business_metric_not_worse", "threshold": 1})}, "stages[3].gate.threshold"),
    ({"stages": stages_with(1, manual="yes")}, "stages[1].manual"),
    ({"stages": stages_with(1, name="")}, "stages[1].name"),
    ({"stages": stages_with(1, duration=3)}, "stages[1].duration"),
    ({"stages": [{"traffic_percent": 100}]}, "stages[0].min_minutes"),
    ({"stages": []}, "stages"),
    ({"stages": "5,25,100"}, "stages"),
    ({"triggers": triggers_with(0, metric="accuracy")}, "triggers[0].metric"),
    ({"triggers": triggers_with(0, threshold=0)}, "triggers[0].threshold"),
    ({"triggers": triggers_with(0, threshold=math.inf)}, "triggers[0].threshold"),
    ({"triggers": triggers_with(0, threshold="0.05")}, "triggers[0].threshold"),
    ({"triggers": triggers_with(1, action="alert")}, "triggers[1].action"),
    ({"triggers": triggers_with(1, relative=1)}, "triggers[1].relative"),
    ({"triggers": None}, "triggers"),
    ({"business_metric": "a b"}, "business_metric"),
    ({"gate_min_requests": 0}, "gate_min_requests"),
    ({"trigger_min_requests": True}, "trigger_min_requests"),
])
def test_a_bad_policy_is_refused_naming_the_field(parts, field):
    with pytest.raises(canary.PolicyError) as caught:
        canary.policy_from_json(**{**DEFAULT_JSON, **parts})

    assert caught.value.field == field


def test_equal_shares_a_missing_maximum_and_a_gate_default_threshold_are_accepted():
    stages = [{"traffic_percent": 5, "min_minutes": 10, "manual": True}, {"traffic_percent": 5, "min_minutes": 10, "gate": {"name": "latency_p95"}},
              {"name": "all", "traffic_percent": 100, "min_minutes": 0}]

    policy = canary.policy_from_json(stages=stages, triggers=[])

    assert [(s.name, s.traffic_percent, s.max_minutes, s.manual) for s in policy.stages] == [("5%", 5, None, True), ("5%", 5, None, False),
                                                                                           ("all", 100, None, False)]
    assert policy.stages[1].gate == Gate(GateName.LATENCY_P95, 1.10)


# --- triggers ---------------------------------------------------------------------------------------------------------


def side(version: int = 2, **figures) -> Side:
    base = {"requests": 1000, "guardrail_known": 1000, "feedback_count": 1000, "cost_requests": 1000}
    return Side(version=version, **{**base, **figures})


BASELINE = side(1, errors=10, latency_p95=200.0, guardrail_rate=0.02, negative_feedback_rate=0.1, cost_per_request=0.003)
TRIGGERS = {t.metric: t for t in canary.DEFAULT_POLICY.triggers}


@pytest.mark.parametrize(("metric", "limit"), [
    (TriggerMetric.LATENCY_P95, 2 * 200.0),
    (TriggerMetric.GUARDRAIL_RATE, 3 * 0.02),
    (TriggerMetric.NEGATIVE_FEEDBACK_RATE, 2 * 0.1),
    (TriggerMetric.COST_PER_REQUEST, 2 * 0.003),
])
def test_a_relative_trigger_fires_just_past_its_threshold_not_at_it(metric, limit):
    at = canary.check_trigger(TRIGGERS[metric], side(**{metric.value: limit}), BASELINE, 20)
    past = canary.check_trigger(TRIGGERS[metric], side(**{metric.value: math.nextafter(limit, math.inf)}), BASELINE, 20)

    assert (at.state, past.state) == (CheckState.OK, CheckState.FIRED)
    assert at.limit == limit and at.baseline == getattr(BASELINE, metric.value)


def test_the_error_rate_trigger_fires_past_five_percent_not_at_it():
    at = canary.check_trigger(TRIGGERS[TriggerMetric.ERROR_RATE], side(requests=20, errors=1), None, 20)
    past = canary.check_trigger(TRIGGERS[TriggerMetric.ERROR_RATE], side(requests=1999, errors=100), None, 20)

    assert (at.value, at.state) == (0.05, CheckState.OK)
    assert past.value > 0.05 and past.state == CheckState.FIRED and past.limit == 0.05


def test_a_trigger_needs_its_minimum_of_requests_behind_each_value():
    error = TRIGGERS[TriggerMetric.ERROR_RATE]
    cost = TRIGGERS[TriggerMetric.COST_PER_REQUEST]

    few = canary.check_trigger(error, side(requests=19, errors=19), None, 20)
    enough = canary.check_trigger(error, side(requests=20, errors=19), None, 20)
    few_priced = canary.check_trigger(cost, side(cost_requests=19, cost_per_request=1.0), BASELINE, 20)
    thin_baseline = canary.check_trigger(cost, side(cost_per_request=1.0), side(1, cost_requests=19, cost_per_request=0.001), 20)
    no_baseline = canary.check_trigger(cost, side(cost_per_request=1.0), None, 20)

    assert (few.state, enough.state) == (CheckState.NOT_ENOUGH_DATA, CheckState.FIRED)
    assert few_priced.state == thin_baseline.state == no_baseline.state == CheckState.NOT_ENOUGH_DATA
    assert thin_baseline.baseline is None


# --- gates --------------------------------------------------------------------------------------------------------------


def test_the_no_errors_gate_passes_on_enough_clean_mirrored_traffic_only():
    gate = Gate(GateName.NO_ERRORS, None)

    clean = canary.check_gate(gate, side(requests=100, errors=0), None, 100)
    one_error = canary.check_gate(gate, side(requests=5000, errors=1), None, 100)
    too_few = canary.check_gate(gate, side(requests=99, errors=0), None, 100)

    assert (clean.state, one_error.state, too_few.state) == (CheckState.PASS, CheckState.FAIL, CheckState.NOT_ENOUGH_DATA)


def test_the_error_rate_gate_passes_below_baseline_plus_half_a_point_not_at_it():
    gate = Gate(GateName.ERROR_RATE, 0.005)
    clean_baseline = side(1, requests=200, errors=0)

    at = canary.check_gate(gate, side(requests=200, errors=1), clean_baseline, 100)
    below = canary.check_gate(gate, side(requests=201, errors=1), clean_baseline, 100)

    assert (at.value, at.limit, at.state) == (0.005, 0.005, CheckState.FAIL)
    assert below.state == CheckState.PASS


def test_the_latency_gate_passes_below_1_10_times_the_baseline_p95_not_at_it():
    gate = Gate(GateName.LATENCY_P95, 1.10)
    limit = 1.10 * 200.0

    at = canary.check_gate(gate, side(latency_p95=limit), BASELINE, 100)
    below = canary.check_gate(gate, side(latency_p95=math.nextafter(limit, 0)), BASELINE, 100)

    assert (at.limit, at.state, below.state) == (limit, CheckState.FAIL, CheckState.PASS)


def test_a_comparing_gate_without_a_baseline_or_with_a_thin_side_has_not_enough_data():
    gate = Gate(GateName.ERROR_RATE, 0.005)

    no_baseline = canary.check_gate(gate, side(requests=10_000), None, 100)
    idle_baseline = canary.check_gate(gate, side(requests=10_000), side(1, requests=0), 100)
    thin_candidate = canary.check_gate(gate, side(requests=99), side(1, requests=10_000), 100)

    assert no_baseline.state == idle_baseline.state == thin_candidate.state == CheckState.NOT_ENOUGH_DATA


def test_the_business_gate_is_statsmodels_one_sided_z_test_against_alpha():
    gate = Gate(GateName.BUSINESS_METRIC_NOT_WORSE, 0.05)
    baseline = side(1, units=2000, conversions=240)
    worse, slightly_worse = side(units=2000, conversions=200), side(units=2000, conversions=225)
    _, p_worse = proportions_ztest([200, 240], [2000, 2000], alternative="smaller")
    _, p_slight = proportions_ztest([225, 240], [2000, 2000], alternative="smaller")

    failed = canary.check_gate(gate, worse, baseline, 100)
    passed = canary.check_gate(gate, slightly_worse, baseline, 100)

    assert failed.p_value == pytest.approx(p_worse, rel=1e-9) and p_worse < 0.05 and failed.state == CheckState.FAIL
    assert passed.p_value == pytest.approx(p_slight, rel=1e-9) and p_slight >= 0.05 and passed.state == CheckState.PASS
    assert (failed.value, failed.baseline, failed.requests) == (0.1, 0.12, 2000)


def test_the_business_gate_at_alpha_itself_passes():
    p = canary.worse_p_value(240, 2000, 200, 2000)

    at = canary.check_gate(Gate(GateName.BUSINESS_METRIC_NOT_WORSE, p), side(units=2000, conversions=200), side(1, units=2000, conversions=240), 100)
    past = canary.check_gate(Gate(GateName.BUSINESS_METRIC_NOT_WORSE, math.nextafter(p, 1)), side(units=2000, conversions=200),
                             side(1, units=2000, conversions=240), 100)

    assert (at.state, past.state) == (CheckState.PASS, CheckState.FAIL)


def test_the_business_gate_needs_its_units_on_both_sides_and_a_better_candidate_passes():
    gate = Gate(GateName.BUSINESS_METRIC_NOT_WORSE, 0.05)

    thin = canary.check_gate(gate, side(units=99, conversions=99), side(1, units=5000, conversions=10), 100)
    better = canary.check_gate(gate, side(units=500, conversions=100), side(1, units=500, conversions=50), 100)

    assert thin.state == CheckState.NOT_ENOUGH_DATA
    assert better.state == CheckState.PASS and better.p_value > 0.99


# --- decisions ---------------------------------------------------------------------------------------------------------


GATED = Stage("5%", 5, 120, 240, Gate(GateName.ERROR_RATE, 0.005))
QUIET = {"requests": 1000, "errors": 0}


def decided(stage=GATED, *, candidate=None, baseline=None, elapsed=130.0, last=False, paused=False) -> canary.Verdict:
    candidate = candidate or side(**QUIET, latency_p95=200.0, cost_per_request=0.003)
    baseline = baseline or side(1, **QUIET, latency_p95=200.0, cost_per_request=0.003)
    evaluation = canary.evaluate(canary.DEFAULT_POLICY, stage, candidate, baseline)
    return canary.decide(stage=stage, last=last, elapsed_minutes=elapsed, evaluation=evaluation, paused=paused)


def test_a_rollback_trigger_beats_a_pause_trigger():
    both = side(requests=1000, errors=60, cost_per_request=0.01)

    verdict = decided(candidate=both)

    assert (verdict.action, verdict.why) == (Action.ROLLBACK, Why.TRIGGER)
    assert [t.metric for t in verdict.fired] == [TriggerMetric.ERROR_RATE]


def test_a_pause_trigger_pauses_and_a_paused_rollout_only_watches_its_rollback_triggers():
    costly = side(**QUIET, cost_per_request=0.0061)
    failing = side(requests=1000, errors=51, cost_per_request=0.0061)

    assert decided(candidate=costly).action == Action.PAUSE
    assert (decided(candidate=costly, paused=True).action, decided(candidate=costly, paused=True).why) == (Action.HOLD, Why.PAUSED)
    assert decided(candidate=failing, paused=True).action == Action.ROLLBACK


def test_durations_hold_before_the_minimum_advance_at_it_and_pause_at_the_maximum():
    thin = side(requests=50)

    assert (decided(elapsed=119.9).action, decided(elapsed=119.9).why) == (Action.HOLD, Why.MINIMUM_DURATION)
    assert (decided(elapsed=120).action, decided(elapsed=120).why) == (Action.ADVANCE, Why.GATE_PASSED)
    assert (decided(candidate=thin, elapsed=239.9).action, decided(candidate=thin, elapsed=239.9).why) == (Action.HOLD, Why.NOT_ENOUGH_DATA)
    assert (decided(candidate=thin, elapsed=240).action, decided(candidate=thin, elapsed=240).why) == (Action.PAUSE, Why.GATE_TIMEOUT)


def test_not_enough_data_never_passes_however_long_it_waits():
    thin = side(requests=99)
    open_ended = Stage("5%", 5, 0, None, Gate(GateName.ERROR_RATE, 0.005))

    verdicts = {decided(open_ended, candidate=thin, elapsed=minutes).why for minutes in (0, 60, 10_000, 10**7)}

    assert verdicts == {Why.NOT_ENOUGH_DATA}


def test_a_failing_gate_holds_then_pauses_at_the_maximum():
    worse = side(requests=1000, errors=6)

    assert (decided(candidate=worse).action, decided(candidate=worse).why) == (Action.HOLD, Why.GATE_FAILS)
    assert decided(candidate=worse, elapsed=240).why == Why.GATE_TIMEOUT


def test_the_last_stage_completes_after_its_minimum_when_no_trigger_fires():
    last = Stage("100%", 100, 60, None, None)

    assert decided(last, elapsed=59, last=True).why == Why.MINIMUM_DURATION
    assert decided(last, elapsed=60, last=True).action == Action.COMPLETE


def test_a_manual_stage_waits_for_a_person_but_its_triggers_still_act():
    manual = Stage("25%", 25, 0, 10, Gate(GateName.ERROR_RATE, 0.005), manual=True)

    assert (decided(manual, elapsed=10_000).action, decided(manual, elapsed=10_000).why) == (Action.HOLD, Why.MANUAL_STAGE)
    assert decided(manual, candidate=side(requests=100, errors=6)).action == Action.ROLLBACK


def test_without_a_baseline_comparisons_hold_and_the_absolute_trigger_still_fires():
    evaluation = canary.evaluate(canary.DEFAULT_POLICY, GATED, side(requests=500, errors=30, latency_p95=9000.0), None)

    states = {t.metric: t.state for t in evaluation.triggers}

    assert states[TriggerMetric.ERROR_RATE] == CheckState.FIRED
    assert {states[m] for m in TriggerMetric if m != TriggerMetric.ERROR_RATE} == {CheckState.NOT_ENOUGH_DATA}
    assert evaluation.gate.state == CheckState.NOT_ENOUGH_DATA


def test_an_evaluation_is_plain_json():
    evaluation = canary.evaluate(canary.DEFAULT_POLICY, GATED, side(**QUIET), BASELINE)

    data = json.loads(json.dumps(evaluation.as_dict()))

    assert data["gate"]["name"] == "error_rate" and data["gate"]["state"] == "pass"
    assert data["candidate"]["error_rate"] == 0.0 and data["baseline"]["version"] == 1
    assert [t["metric"] for t in data["triggers"]] == [m.value for m in TriggerMetric]

