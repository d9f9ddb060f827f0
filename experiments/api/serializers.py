"""Input and output shapes of the experiments API, typed for the OpenAPI schema. Shapes only: the rules live in services."""

from __future__ import annotations

from rest_framework import serializers

from mlops_site.serializers import StrictSerializer

from ..models import AnalysisStatus, Decision, Direction, ExperimentStatus, GuardrailMetric, MetricKind, Recommendation
from ..selectors import progress


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
    state = serializers.ChoiceField(choices=["ok", "not_enough_data"])
    degradation = serializers.FloatField(allow_null=True)
    violated = serializers.BooleanField()
    message = serializers.CharField()


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
