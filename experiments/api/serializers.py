"""Input and output shapes of the experiments API, typed for the OpenAPI schema. Shapes only: the rules live in services."""

from __future__ import annotations

from rest_framework import serializers

from mlops_site.serializers import JSONInteger, StrictSerializer

from ..canary import Action, CheckState, GateName, TriggerAction, TriggerMetric
from ..models import (
    AnalysisStatus,
    Decision,
    Direction,
    ExperimentStatus,
    GuardrailMetric,
    GuardrailState,
    MetricKind,
    Recommendation,
    RolloutStatus,
)
from ..selectors import Health, progress, rollout_health


class FiniteNumber(serializers.FloatField):
    """A JSON number: not a bool (True would be 1.0), not text, not NaN or infinity."""

    def to_internal_value(self, data):
        if isinstance(data, (bool, str)):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictNested(StrictSerializer):
    """StrictSerializer for nested objects too: an unknown key anywhere is a 400, never silently dropped."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


# --- input ---------------------------------------------------------------------------------------------------------------


class SubjectIn(StrictNested):
    model = serializers.CharField(required=False, help_text="a registered model's name")
    prompt = serializers.CharField(required=False, help_text="a prompt's name")


class VariantIn(StrictNested):
    name = serializers.CharField(max_length=50)
    version = serializers.IntegerField(help_text="a version number of the subject")
    weight = serializers.DecimalField(max_digits=5, decimal_places=2, help_text="percent of the traffic; the weights sum to 100")


class MetricIn(StrictNested):
    name = serializers.CharField(max_length=100, help_text="an outcome metric, or judge_score, thumbs_up, latency_ms, cost_usd (monitoring events)")
    kind = serializers.ChoiceField(choices=MetricKind.choices)
    direction = serializers.ChoiceField(choices=Direction.choices, required=False, help_text="default increase (latency_ms, cost_usd: decrease)")


class GuardrailIn(StrictNested):
    metric = serializers.ChoiceField(choices=GuardrailMetric.choices)
    max_degradation = FiniteNumber(help_text="how much worse B may be than A: absolute, or a share of A's value when relative")
    relative = serializers.BooleanField(required=False, default=False)


class ExperimentCreateIn(StrictNested):
    key = serializers.CharField(max_length=100)
    hypothesis = serializers.CharField()
    subject = SubjectIn()
    variants = VariantIn(many=True, help_text="the control first")
    primary_metric = MetricIn()
    secondary_metrics = MetricIn(many=True, required=False)
    guardrails = GuardrailIn(many=True, required=False, allow_null=True, help_text="left out: the defaults; [] for none")
    alpha = FiniteNumber(required=False, default=0.05)
    power = FiniteNumber(required=False, default=0.8)
    mde = FiniteNumber(help_text="the minimum detectable effect, absolute: 0.02 = two points of a rate")
    baseline_rate = FiniteNumber(required=False, allow_null=True, help_text="proportions: the control's expected rate")
    baseline_std = FiniteNumber(required=False, allow_null=True, help_text="means: the metric's standard deviation per unit")


class ReasonIn(StrictNested):
    reason = serializers.CharField()


class DecisionIn(StrictNested):
    decision = serializers.ChoiceField(choices=["promote", "discard", "iterate"])
    variant = serializers.CharField(required=False, help_text="promote: the variant whose version is promoted")
    reason = serializers.CharField()


class AssignIn(serializers.Serializer):
    """One of the two: `unit_id`, or `unit_ids` (up to 10,000). For the schema: the service validates the body."""

    unit_id = serializers.CharField(required=False, max_length=200)
    unit_ids = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=10_000)


class OutcomeIn(serializers.Serializer):
    unit_id = serializers.CharField(max_length=200)
    metric = serializers.CharField(max_length=100)
    value = serializers.FloatField()
    timestamp = serializers.DateTimeField()
    outcome_id = serializers.CharField(required=False, max_length=100, help_text="makes a re-sent outcome a duplicate")


class OutcomeBatchIn(serializers.Serializer):
    """Up to 10,000 outcomes. For the schema: the service validates the body and names every bad index and field."""

    outcomes = OutcomeIn(many=True)


# --- output --------------------------------------------------------------------------------------------------------------


class SubjectOut(serializers.Serializer):
    model = serializers.CharField(source="model.name", default=None)
    prompt = serializers.CharField(source="prompt.name", default=None)


class MetricOut(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=MetricKind.choices)
    direction = serializers.ChoiceField(choices=Direction.choices)


class PrimaryMetricOut(serializers.Serializer):
    name = serializers.CharField(source="primary_metric_name")
    kind = serializers.ChoiceField(choices=MetricKind.choices, source="primary_metric_kind")
    direction = serializers.ChoiceField(choices=Direction.choices, source="primary_metric_direction")


class GuardrailOut(serializers.Serializer):
    metric = serializers.ChoiceField(choices=GuardrailMetric.choices)
    max_degradation = serializers.FloatField()
    relative = serializers.BooleanField()


class VariantOut(serializers.Serializer):
    name = serializers.CharField()
    position = serializers.IntegerField()
    control = serializers.BooleanField(source="is_control")
    version = serializers.IntegerField(source="version.version")
    weight = serializers.DecimalField(max_digits=5, decimal_places=2, coerce_to_string=False)
    bucket_start = serializers.IntegerField()
    bucket_end = serializers.IntegerField()
    units = serializers.IntegerField(default=0, help_text="units exposed so far")


class LatestAnalysisOut(serializers.Serializer):
    id = serializers.IntegerField(source="latest_analysis_id")
    finished_at = serializers.DateTimeField(source="latest_analysis_at")
    leading_variant = serializers.CharField(allow_blank=True)
    recommendation = serializers.ChoiceField(choices=Recommendation.choices, allow_blank=True)
    significant = serializers.BooleanField(allow_null=True)
    srm_flagged = serializers.BooleanField()


class ExperimentOut(serializers.Serializer):
    """An experiment as experiments.selectors.experiment_list / experiment_get annotate it."""

    key = serializers.CharField()
    hypothesis = serializers.CharField()
    subject = SubjectOut(source="*")
    status = serializers.ChoiceField(choices=ExperimentStatus.choices)
    primary_metric = PrimaryMetricOut(source="*")
    secondary_metrics = MetricOut(many=True)
    guardrails = GuardrailOut(many=True)
    alpha = serializers.FloatField()
    power = serializers.FloatField()
    mde = serializers.FloatField()
    baseline_rate = serializers.FloatField(allow_null=True)
    baseline_std = serializers.FloatField(allow_null=True)
    sample_size_per_arm = serializers.IntegerField()
    variants = VariantOut(many=True)
    units_total = serializers.IntegerField()
    progress = serializers.SerializerMethodField(help_text="the smallest arm's units / the planned sample size per arm, 0 to 1")
    days_running = serializers.SerializerMethodField()
    latest_analysis = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    stopped_at = serializers.DateTimeField(allow_null=True)
    stop_reason = serializers.CharField(allow_blank=True)
    decision = serializers.ChoiceField(choices=Decision.choices, allow_blank=True)
    decision_variant = serializers.CharField(allow_blank=True)
    decision_reason = serializers.CharField(allow_blank=True)
    decided_by = serializers.CharField(source="decided_by.username", default=None)
    decided_at = serializers.DateTimeField(allow_null=True)
    promotion_id = serializers.IntegerField(allow_null=True, help_text="the promotion request 'promote' opened")

    def get_progress(self, obj) -> float:
        return progress(obj)

    def get_days_running(self, obj) -> float | None:
        days = obj.days_running()
        return round(days, 3) if days is not None else None

    def get_latest_analysis(self, obj) -> LatestAnalysisOut(allow_null=True):  # type: ignore[valid-type]
        return LatestAnalysisOut(obj).data if getattr(obj, "latest_analysis_id", None) else None


class AssignmentOut(serializers.Serializer):
    unit_id = serializers.CharField()
    variant = serializers.CharField()
    version = serializers.IntegerField(help_text="the version number of the model or prompt that serves the unit")
    bucket = serializers.IntegerField(help_text="0 to 9999: sha256('<key>:<unit_id>'), first 8 bytes big-endian, mod 10,000")

    def to_representation(self, instance):
        # 10,000 of these per batch: the four attributes directly, not DRF's per-field machinery (same shape).
        return {"unit_id": instance.unit_id, "variant": instance.variant, "version": instance.version, "bucket": instance.bucket}


class AssignmentsOut(serializers.Serializer):
    assignments = AssignmentOut(many=True)


class OutcomesOut(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="outcome_ids stored before (or twice in this batch)")
    unexposed = serializers.IntegerField(help_text="outcomes of units no live experiment exposed: stored, counted for nothing")


class SampleSizeOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=MetricKind.choices)
    per_arm = serializers.IntegerField()
    arms = serializers.IntegerField()
    total = serializers.IntegerField()
    units_per_day = serializers.FloatField(allow_null=True, help_text="distinct unit ids a day of the subject's events, last 7 days")
    days = serializers.FloatField(allow_null=True, help_text="expected duration; null without a subject or without traffic")
    method = serializers.CharField()


# --- results: the stored snapshot (experiments/services/results.py) -------------------------------------------------------


class SequentialOut(serializers.Serializer):
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    significant = serializers.BooleanField()


class CupedOut(serializers.Serializer):
    theta = serializers.FloatField()
    variance_reduction = serializers.FloatField()
    diff = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    statistic = serializers.FloatField(allow_null=True)
    df = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    significant = serializers.BooleanField()
    always_valid = SequentialOut(allow_null=True)


class ComparisonOut(serializers.Serializer):
    variant = serializers.CharField()
    control = serializers.CharField()
    state = serializers.ChoiceField(choices=["ok", "not_enough_data"])
    message = serializers.CharField(allow_blank=True)
    diff = serializers.FloatField(allow_null=True, help_text="B minus A: points of a rate as a fraction (0.02), or the metric's units")
    lift = serializers.FloatField(allow_null=True, help_text="(B - A) / A; null when A is 0")
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)
    statistic_name = serializers.CharField(allow_blank=True, help_text="z (proportions) or t (means, Welch)")
    statistic = serializers.FloatField(allow_null=True)
    df = serializers.FloatField(allow_null=True)
    p_value = serializers.FloatField(allow_null=True)
    significant = serializers.BooleanField(help_text="fixed-horizon test")
    always_valid = SequentialOut(allow_null=True)
    cuped = CupedOut(allow_null=True)
    decision_test = serializers.CharField(allow_blank=True, help_text="always_valid (before the planned sample size) or fixed_horizon")
    decisive = serializers.BooleanField(help_text="significant by the decision test")
    better = serializers.BooleanField(allow_null=True)


class ArmOut(serializers.Serializer):
    variant = serializers.CharField()
    units = serializers.IntegerField()
    value = serializers.FloatField(allow_null=True, help_text="rate or mean")
    conversions = serializers.IntegerField(allow_null=True)
    std = serializers.FloatField(allow_null=True)


class MetricResultsOut(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.ChoiceField(choices=MetricKind.choices)
    direction = serializers.ChoiceField(choices=Direction.choices)
    primary = serializers.BooleanField()
    source = serializers.ChoiceField(choices=["outcomes", "events"])
    arms = ArmOut(many=True)
    comparisons = ComparisonOut(many=True)
    cuped_note = serializers.CharField(allow_blank=True)


class GuardrailArmOut(serializers.Serializer):
    variant = serializers.CharField()
    requests = serializers.IntegerField()
    value = serializers.FloatField(allow_null=True)


class GuardrailCheckOut(serializers.Serializer):
    variant = serializers.CharField()
    state = serializers.ChoiceField(choices=GuardrailState.choices, help_text="violated: significantly beyond the allowed degradation "
                                    "(one-sided, at the experiment's alpha); warning: beyond it by the point estimates only")
    degradation = serializers.FloatField(allow_null=True, help_text="B - A, or (B - A) / A when the guardrail is relative")
    violated = serializers.BooleanField(help_text="state == violated")
    message = serializers.CharField()
    p_value = serializers.FloatField(allow_null=True, required=False, help_text="one-sided, of a degradation beyond the allowed one")
    test = serializers.CharField(allow_blank=True, required=False)


class GuardrailResultsOut(serializers.Serializer):
    metric = serializers.ChoiceField(choices=GuardrailMetric.choices)
    max_degradation = serializers.FloatField()
    relative = serializers.BooleanField()
    arms = GuardrailArmOut(many=True)
    checks = GuardrailCheckOut(many=True)


class SrmOut(serializers.Serializer):
    chi2 = serializers.FloatField()
    p_value = serializers.FloatField()
    flagged = serializers.BooleanField()
    threshold = serializers.FloatField()
    observed = serializers.ListField(child=serializers.IntegerField())
    expected = serializers.ListField(child=serializers.FloatField())


class VerdictOut(serializers.Serializer):
    action = serializers.ChoiceField(choices=Recommendation.choices)
    variant = serializers.CharField(allow_null=True)
    text = serializers.CharField()
    test = serializers.CharField()
    units_needed_per_arm = serializers.IntegerField()


class SeriesArmOut(serializers.Serializer):
    variant = serializers.CharField()
    units = serializers.ListField(child=serializers.IntegerField())
    value = serializers.ListField(child=serializers.FloatField(allow_null=True))


class SeriesLiftOut(serializers.Serializer):
    variant = serializers.CharField()
    diff = serializers.ListField(child=serializers.FloatField(allow_null=True))
    lift = serializers.ListField(child=serializers.FloatField(allow_null=True))
    ci_low = serializers.ListField(child=serializers.FloatField(allow_null=True))
    ci_high = serializers.ListField(child=serializers.FloatField(allow_null=True))
    always_valid_low = serializers.ListField(child=serializers.FloatField(allow_null=True))
    always_valid_high = serializers.ListField(child=serializers.FloatField(allow_null=True))


class SeriesOut(serializers.Serializer):
    metric = serializers.CharField()
    kind = serializers.ChoiceField(choices=MetricKind.choices)
    days = serializers.ListField(child=serializers.DateField())
    arms = SeriesArmOut(many=True)
    lifts = SeriesLiftOut(many=True)


class VariantUnitsOut(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    weight = serializers.FloatField()
    control = serializers.BooleanField()
    units = serializers.IntegerField()


class SnapshotOut(serializers.Serializer):
    experiment = serializers.CharField()
    computed_at = serializers.DateTimeField()
    experiment_status = serializers.ChoiceField(choices=ExperimentStatus.choices)
    alpha = serializers.FloatField()
    planned_per_arm = serializers.IntegerField()
    units_total = serializers.IntegerField()
    decision_test = serializers.CharField()
    variants = VariantUnitsOut(many=True)
    srm = SrmOut()
    metrics = MetricResultsOut(many=True)
    guardrails = GuardrailResultsOut(many=True)
    recommendation = VerdictOut()
    series = SeriesOut()
    leading_variant = serializers.CharField(allow_blank=True)
    significant = serializers.BooleanField(allow_null=True)


class AnalysisOut(serializers.Serializer):
    id = serializers.IntegerField()
    experiment = serializers.CharField(source="experiment.key")
    status = serializers.ChoiceField(choices=AnalysisStatus.choices)
    requested_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    attempts = serializers.IntegerField()
    error = serializers.CharField(allow_blank=True)


class ResultsOut(AnalysisOut):
    results = SnapshotOut()


# --- canary rollouts ---------------------------------------------------------------------------------------------------

GATE_NAMES = [(g.value, g.value) for g in GateName]
TRIGGER_METRICS = [(m.value, m.value) for m in TriggerMetric]
TRIGGER_ACTIONS = [(a.value, a.value) for a in TriggerAction]
CHECK_STATES = [(s.value, s.value) for s in CheckState]
ROLLOUT_ACTIONS = [(a.value, a.value) for a in Action]
HEALTH_STATES = [(h.value, h.value) for h in Health]


class PolicyGateIn(StrictNested):
    name = serializers.ChoiceField(choices=GATE_NAMES)
    threshold = FiniteNumber(required=False, allow_null=True, help_text="error_rate: points above the baseline (0.005); latency_p95: x the "
                             "baseline (1.10); business_metric_not_worse: alpha (0.05); no_errors: none")


class PolicyStageIn(StrictNested):
    name = serializers.CharField(required=False, max_length=40, help_text="default: shadow at 0 %, else the share ('25%')")
    traffic_percent = FiniteNumber(help_text="the candidate's share, 0 to 100, 2 decimals at most; never decreasing, the last 100")
    min_minutes = JSONInteger(min_value=0)
    max_minutes = JSONInteger(required=False, allow_null=True, help_text="null: no maximum")
    gate = PolicyGateIn(required=False, allow_null=True, help_text="null: none (the stage passes when its minimum elapsed)")
    manual = serializers.BooleanField(required=False, help_text="a person must press Advance")


class PolicyTriggerIn(StrictNested):
    metric = serializers.ChoiceField(choices=TRIGGER_METRICS)
    threshold = FiniteNumber(help_text="above 0; the candidate's value must not exceed it (relative: threshold x the baseline's value)")
    relative = serializers.BooleanField(required=False)
    action = serializers.ChoiceField(choices=TRIGGER_ACTIONS)


class RolloutPolicyIn(StrictNested):
    name = serializers.CharField(max_length=100, help_text="an existing name gets its next version")
    description = serializers.CharField(required=False, allow_blank=True, help_text="what this version changes, and why")
    stages = PolicyStageIn(many=True)
    triggers = PolicyTriggerIn(many=True)
    business_metric = serializers.CharField(required=False, help_text="the outcome metric of business_metric_not_worse (default conversion)")
    gate_min_requests = JSONInteger(required=False, min_value=1, help_text="per side, behind a gate (default 100)")
    trigger_min_requests = JSONInteger(required=False, min_value=1, help_text="behind a trigger's value (default 20)")


class PolicyGateOut(serializers.Serializer):
    name = serializers.ChoiceField(choices=GATE_NAMES)
    threshold = serializers.FloatField(allow_null=True)


class PolicyStageOut(serializers.Serializer):
    name = serializers.CharField()
    traffic_percent = serializers.FloatField()
    min_minutes = serializers.IntegerField()
    max_minutes = serializers.IntegerField(allow_null=True)
    gate = PolicyGateOut(allow_null=True)
    manual = serializers.BooleanField()


class PolicyTriggerOut(serializers.Serializer):
    metric = serializers.ChoiceField(choices=TRIGGER_METRICS)
    threshold = serializers.FloatField()
    relative = serializers.BooleanField()
    action = serializers.ChoiceField(choices=TRIGGER_ACTIONS)


class RolloutPolicyOut(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    description = serializers.CharField(allow_blank=True)
    stages = PolicyStageOut(many=True)
    triggers = PolicyTriggerOut(many=True)
    business_metric = serializers.CharField()
    gate_min_requests = serializers.IntegerField()
    trigger_min_requests = serializers.IntegerField()
    created_by = serializers.CharField(source="created_by.username", default=None)
    created_at = serializers.DateTimeField()


class RolloutSideOut(serializers.Serializer):
    """One version's figures over the stage's window (minute roll-ups)."""

    version = serializers.IntegerField()
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    error_rate = serializers.FloatField(allow_null=True)
    latency_p95 = serializers.FloatField(allow_null=True, help_text="ms, from the merged sketches (within 1 %)")
    guardrail_known = serializers.IntegerField()
    guardrail_rate = serializers.FloatField(allow_null=True)
    feedback_count = serializers.IntegerField()
    negative_feedback_rate = serializers.FloatField(allow_null=True)
    cost_requests = serializers.IntegerField()
    cost_per_request = serializers.FloatField(allow_null=True)
    units = serializers.IntegerField(allow_null=True, help_text="business gate only: distinct units served")
    conversions = serializers.IntegerField(allow_null=True, help_text="business gate only: units with the outcome after their first request")


class RolloutTriggerCheckOut(serializers.Serializer):
    metric = serializers.ChoiceField(choices=TRIGGER_METRICS)
    action = serializers.ChoiceField(choices=TRIGGER_ACTIONS)
    threshold = serializers.FloatField()
    relative = serializers.BooleanField()
    state = serializers.ChoiceField(choices=CHECK_STATES, help_text="fired, ok or not_enough_data")
    value = serializers.FloatField(allow_null=True)
    baseline = serializers.FloatField(allow_null=True)
    limit = serializers.FloatField(allow_null=True, help_text="the value fires the trigger when strictly above this")
    requests = serializers.IntegerField()


class RolloutGateCheckOut(serializers.Serializer):
    name = serializers.ChoiceField(choices=GATE_NAMES, allow_null=True)
    threshold = serializers.FloatField(allow_null=True)
    state = serializers.ChoiceField(choices=CHECK_STATES, help_text="pass, fail, not_enough_data or none (no gate)")
    value = serializers.FloatField(allow_null=True)
    baseline = serializers.FloatField(allow_null=True)
    limit = serializers.FloatField(allow_null=True, help_text="the value passes when strictly below this (no_errors: equal to 0)")
    requests = serializers.IntegerField(help_text="the smaller side's count (units for the business metric)")
    p_value = serializers.FloatField(allow_null=True)


class RolloutWindowOut(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()


class RolloutEvaluationOut(serializers.Serializer):
    """What one controller step read of the stage's window, and the check of every trigger and of the gate."""

    stage_index = serializers.IntegerField()
    stage = serializers.CharField()
    traffic_percent = serializers.FloatField()
    window = RolloutWindowOut()
    elapsed_minutes = serializers.FloatField()
    candidate = RolloutSideOut()
    baseline = RolloutSideOut(allow_null=True)
    triggers = RolloutTriggerCheckOut(many=True)
    gate = RolloutGateCheckOut()
    gate_min_requests = serializers.IntegerField()
    trigger_min_requests = serializers.IntegerField()


def _evaluation(numbers: dict) -> dict | None:
    return RolloutEvaluationOut(numbers).data if numbers.get("gate") else None


class RolloutDecisionOut(serializers.Serializer):
    seq = serializers.IntegerField()
    at = serializers.DateTimeField()
    action = serializers.ChoiceField(choices=ROLLOUT_ACTIONS)
    from_stage = serializers.IntegerField(allow_null=True)
    to_stage = serializers.IntegerField(allow_null=True, help_text="null once the rollout ended (rollback, complete)")
    traffic_percent = serializers.FloatField(help_text="the candidate's share after the decision")
    reason = serializers.CharField()
    actor = serializers.CharField(source="actor.username", default=None, help_text="null: the controller")
    numbers = serializers.SerializerMethodField()

    def get_numbers(self, obj) -> RolloutEvaluationOut(allow_null=True):  # type: ignore[valid-type]
        return _evaluation(obj.numbers)


class PolicyRefOut(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()


class RolloutOut(serializers.Serializer):
    """A rollout as experiments.selectors.rollout_list reads it."""

    id = serializers.IntegerField()
    promotion_id = serializers.IntegerField()
    subject = SubjectOut(source="*")
    candidate = serializers.IntegerField(source="candidate.version", help_text="the version rolled out")
    baseline = serializers.IntegerField(source="baseline.version", default=None, help_text="production (prod) when it started")
    policy = PolicyRefOut()
    status = serializers.ChoiceField(choices=RolloutStatus.choices)
    stage_index = serializers.IntegerField()
    stage = serializers.SerializerMethodField()
    stages = serializers.SerializerMethodField(help_text="how many stages the policy has")
    traffic_percent = serializers.FloatField(help_text="the candidate's share now")
    health = serializers.SerializerMethodField()
    paused_reason = serializers.CharField(allow_blank=True)
    started_at = serializers.DateTimeField()
    stage_started_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    last_tick_at = serializers.DateTimeField(allow_null=True)
    last_numbers = serializers.SerializerMethodField()

    def get_stage(self, obj) -> str:
        return obj.policy.stages[obj.stage_index]["name"]

    def get_stages(self, obj) -> int:
        return len(obj.policy.stages)

    def get_health(self, obj) -> serializers.ChoiceField(choices=HEALTH_STATES):  # type: ignore[valid-type]
        return rollout_health(obj).value

    def get_last_numbers(self, obj) -> RolloutEvaluationOut(allow_null=True):  # type: ignore[valid-type]
        return _evaluation(obj.last_numbers)


class RolloutDetailOut(RolloutOut):
    policy_rules = RolloutPolicyOut(source="policy", help_text="the policy version this rollout follows")
    decisions = RolloutDecisionOut(many=True, source="decisions.all")


class RouteRolloutOut(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RolloutStatus.choices)
    stage = serializers.CharField(source="stage_name")
    stage_index = serializers.IntegerField()
    traffic_percent = serializers.FloatField()
    candidate = serializers.IntegerField()
    baseline = serializers.IntegerField(allow_null=True)


class ShadowOut(serializers.Serializer):
    version = serializers.IntegerField(help_text="mirror the request to this version and log its event with shadow: true; never answer with it")


class RouteOut(serializers.Serializer):
    version = serializers.IntegerField(help_text="the version that serves this unit")
    stage = serializers.CharField(help_text="production / prod, or canary when the rollout's candidate serves the unit")
    rollout = RouteRolloutOut(allow_null=True)
    shadow = serializers.SerializerMethodField()
    bucket = serializers.IntegerField(allow_null=True, help_text="0 to 9999: sha256('<salt>:<unit_id>'), first 8 bytes big-endian, mod 10,000")

    def get_shadow(self, obj) -> ShadowOut(allow_null=True):  # type: ignore[valid-type]
        return {"version": obj.shadow} if obj.shadow is not None else None
