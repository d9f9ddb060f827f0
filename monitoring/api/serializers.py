"""Input and output shapes of the monitoring API, typed for the OpenAPI schema. Shapes only: the rules live in services.

Stored JSON (a reference's column profile, a report's per-column results) is answered as it was written; its
documented shape is what the services write today.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mlops_site.serializers import JSONInteger, JSONNumber, StrictSerializer

from ..drift import Severity
from ..models import AlertAction, AlertRule, BudgetPeriod, BudgetScope, DriftReport, Price, Reference

# --- ingestion ---------------------------------------------------------------------------------------------------------


class EventBatchIn(serializers.Serializer):
    """Up to 10,000 served requests. For the schema: ingestion validates the body and names every bad index and field."""

    events = serializers.ListField(
        child=serializers.DictField(), max_length=10_000,
        help_text="event_id, model + version (or prompt + version), timestamp, latency_ms, error; optional unit_id, features, "
                  "prediction, label, tokens, cost_usd, ttft_ms, guardrail_triggered, feedback, judge_score, faithfulness, llm_model, "
                  "shadow (true: a request mirrored to a canary's candidate, served to nobody)",
    )


class IngestOut(serializers.Serializer):
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="events whose event_id was already stored (or repeated in the batch)")


class LabelIn(serializers.Serializer):
    event_id = serializers.CharField()
    label = serializers.JSONField(help_text="a number, string or boolean")


class LabelBatchIn(serializers.Serializer):
    """Up to 10,000 labels. For the schema: the service validates the body."""

    labels = LabelIn(many=True)


class LabelsOut(serializers.Serializer):
    updated = serializers.IntegerField()
    unknown = serializers.IntegerField(help_text="labels for event ids not (yet) stored")
    unknown_ids = serializers.ListField(child=serializers.CharField(), help_text="the first 100 of them")


class OtlpTracesIn(serializers.Serializer):
    """OTLP/HTTP JSON. For the schema: monitoring/otlp.py reads the spans."""

    resourceSpans = serializers.ListField(child=serializers.DictField())  # noqa: N815 - OTLP's own name


class OtelIngestOut(IngestOut):
    skipped = serializers.IntegerField(help_text="spans without GenAI attributes")


class OtlpPartialSuccessOut(serializers.Serializer):
    rejectedSpans = serializers.IntegerField(help_text="GenAI spans not stored")  # noqa: N815 - OTLP's own names
    errorMessage = serializers.CharField(help_text="why, span by span (the first five)")  # noqa: N815


class OtlpExportOut(serializers.Serializer):
    """An ExportTraceServiceResponse (OTLP/JSON here; protobuf for a protobuf request): `{}` when all was taken."""

    partialSuccess = OtlpPartialSuccessOut(required=False)  # noqa: N815 - OTLP's own name


# --- references and drift reports --------------------------------------------------------------------------------------


class ReferenceColumnOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["numeric", "categorical"])
    missing = serializers.FloatField(help_text="share of missing values")
    n = serializers.IntegerField(help_text="values in the reference")
    std = serializers.FloatField(required=False, help_text="numeric columns: the standard deviation")


class ReferenceOut(serializers.ModelSerializer):
    columns = serializers.SerializerMethodField()

    class Meta:
        model = Reference
        fields = ["source", "description", "rows", "created_at", "columns"]

    @extend_schema_field(serializers.DictField(child=ReferenceColumnOut()))
    def get_columns(self, reference: Reference) -> dict[str, Any]:
        return reference.columns


class WindowIn(serializers.Serializer):
    """The last `hours` (default 24, 1 to 2160), or `start` and `end` (ISO 8601; UTC when no offset is given).
    For the schema: the view reads the window."""

    hours = serializers.IntegerField(required=False, min_value=1, max_value=24 * 90)
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)


class ReferenceWindowIn(serializers.Serializer):
    window = WindowIn()


class ReferenceUploadIn(serializers.Serializer):
    file = serializers.FileField(help_text="CSV, JSON lines or Parquet")


class DriftColumnOut(serializers.Serializer):
    column = serializers.CharField()
    kind = serializers.ChoiceField(choices=["numeric", "categorical"])
    n_reference = serializers.IntegerField()
    n_current = serializers.IntegerField()
    missing_reference = serializers.FloatField()
    missing_current = serializers.FloatField()
    invalid_current = serializers.IntegerField(help_text="infinite or non-numeric values in a numeric column")
    psi = serializers.FloatField(allow_null=True)
    kl = serializers.FloatField(allow_null=True)
    js = serializers.FloatField(allow_null=True)
    ks_statistic = serializers.FloatField(allow_null=True)
    ks_pvalue = serializers.FloatField(allow_null=True)
    wasserstein = serializers.FloatField(allow_null=True)
    wasserstein_norm = serializers.FloatField(allow_null=True)
    chi2_pvalue = serializers.FloatField(allow_null=True)
    pvalue_subsampled = serializers.BooleanField()
    drifted = serializers.BooleanField()
    severity = serializers.ChoiceField(choices=[s.value for s in Severity])
    reason = serializers.CharField()
    bins = serializers.ListField(child=serializers.JSONField(), help_text="bin edges (numeric) or categories")
    reference_share = serializers.ListField(child=serializers.FloatField())
    current_share = serializers.ListField(child=serializers.FloatField())


class DriftReportOut(serializers.ModelSerializer):
    model = serializers.CharField(source="model_version.model.name")
    version = serializers.IntegerField(source="model_version.version")

    class Meta:
        model = DriftReport
        fields = ["id", "model", "version", "window_start", "window_end", "status", "requested_at", "started_at", "finished_at",
                  "error", "rows", "drifted_columns", "max_psi"]


class DriftReportDetailOut(DriftReportOut):
    """A report with its per-column results, the most drifted first."""

    results = serializers.SerializerMethodField()

    class Meta(DriftReportOut.Meta):
        fields = [*DriftReportOut.Meta.fields, "results"]

    @extend_schema_field(DriftColumnOut(many=True))
    def get_results(self, report: DriftReport) -> list[dict[str, Any]]:
        return report.results


# --- alerts ------------------------------------------------------------------------------------------------------------


class AlertRuleOut(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", default=None)
    prompt = serializers.CharField(source="prompt.name", default=None)
    acknowledged_by = serializers.CharField(source="acknowledged_by.username", default=None)
    action_set_by = serializers.CharField(source="action_set_by.username", default=None)

    class Meta:
        model = AlertRule
        fields = ["id", "name", "model", "prompt", "window_minutes", "metric", "comparison", "threshold", "warning_threshold", "enabled",
                  "state", "state_since", "last_value", "silenced_until", "acknowledged_by", "acknowledged_at", "action", "action_set_by",
                  "action_set_at"]


class AlertActionIn(StrictSerializer):
    action = serializers.ChoiceField(choices=AlertAction.choices, help_text="what the rule does when it enters the alert state: none, or "
                                     "rollback_production (its model's production, its prompt's prod, rolled back by the system)")


class AlertSilenceIn(serializers.Serializer):
    """Other keys are ignored (as they always were)."""

    hours = JSONInteger(help_text="silence notifications for this many hours; 0 ends a silence",
                        error_messages={"invalid": "a whole number", "required": "a whole number"})


# --- costs: budgets and prices -----------------------------------------------------------------------------------------


class BudgetIn(StrictSerializer):
    name = serializers.CharField()
    amount_usd = JSONNumber(help_text="USD per period, above 0")
    period = serializers.ChoiceField(choices=BudgetPeriod.choices, required=False, help_text="default day (UTC)")
    scope = serializers.ChoiceField(choices=BudgetScope.choices, required=False, help_text="default all")
    members = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True,
                                    help_text='"model:<name>" or "prompt:<name>": one for a model or prompt budget, any for a team')
    thresholds = serializers.ListField(child=JSONNumber(), required=False, allow_null=True,
                                       help_text="shares of the budget that alert, default [0.8, 1.0]")
    webhook_url = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    webhook_secret = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    emails = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False, help_text="comma-separated")


class BudgetOut(serializers.Serializer):
    """A budget (`budget`) with the status of its current period (`status`, selectors.BudgetStatus)."""

    name = serializers.CharField(source="budget.name")
    scope = serializers.ChoiceField(choices=BudgetScope.choices, source="budget.scope")
    members = serializers.ListField(child=serializers.CharField(), source="budget.members")
    period = serializers.ChoiceField(choices=BudgetPeriod.choices, source="budget.period")
    amount_usd = serializers.FloatField(source="budget.amount_usd")
    thresholds = serializers.ListField(child=JSONNumber(), source="budget.thresholds")
    enabled = serializers.BooleanField(source="budget.enabled")
    period_start = serializers.DateTimeField(source="status.period_start")
    period_end = serializers.DateTimeField(source="status.period_end")
    spent_usd = serializers.FloatField(source="status.spent_usd")
    share = serializers.FloatField(source="status.share", help_text="spent / amount")
    forecast_usd = serializers.FloatField(source="status.forecast_usd", allow_null=True, help_text="null before any spend in the period")
    pricing_missing = serializers.IntegerField(source="status.pricing_missing", help_text="requests whose cost is unknown (not counted)")


class PriceIn(StrictSerializer):
    pattern = serializers.CharField(help_text="an exact LLM model name, or a glob such as gpt-4o-mini*")
    input_per_token = serializers.FloatField(help_text="USD per input token")
    output_per_token = serializers.FloatField(help_text="USD per output token")
    cached_input_per_token = serializers.FloatField(required=False, allow_null=True, default=None, help_text="empty: the input price")
    reasoning_per_token = serializers.FloatField(required=False, allow_null=True, default=None, help_text="empty: the output price")
    cache_creation_per_token = serializers.FloatField(required=False, allow_null=True, default=None,
                                                      help_text="USD per input token written to a cache; empty: the input price")
    long_context_threshold = serializers.IntegerField(required=False, allow_null=True, default=None,
                                                      help_text="above this many input tokens in a request, the long_context_* prices apply")
    long_context_input_per_token = serializers.FloatField(required=False, allow_null=True, default=None)
    long_context_output_per_token = serializers.FloatField(required=False, allow_null=True, default=None)
    long_context_cached_input_per_token = serializers.FloatField(required=False, allow_null=True, default=None)
    long_context_cache_creation_per_token = serializers.FloatField(required=False, allow_null=True, default=None)
    effective_from = serializers.DateField(help_text="YYYY-MM-DD, the first day (UTC) this price is in force")
    # No `source` (nor actor): the server writes "manual by <user>"; a body that sends one is refused as an unknown field.


class PriceOut(serializers.ModelSerializer):
    source = serializers.CharField(read_only=True, help_text='set by the server: "manual by <user>", "default" or "import <file>"')

    class Meta:
        model = Price
        fields = ["id", "pattern", "input_per_token", "output_per_token", "cached_input_per_token", "reasoning_per_token",
                  "cache_creation_per_token", "long_context_threshold", "long_context_input_per_token", "long_context_output_per_token",
                  "long_context_cached_input_per_token", "long_context_cache_creation_per_token", "effective_from", "source", "created_at"]


class PricesImportIn(StrictSerializer):
    """A LiteLLM price map to import, or `defaults`: the snapshot shipped with the server."""

    defaults = serializers.BooleanField(required=False, default=False, help_text="import the shipped snapshot (in force from its date)")
    prices = serializers.DictField(required=False, allow_null=True, default=None,
                                   help_text="a LiteLLM model_prices_and_context_window.json object (or send it as the multipart file `file`)")
    effective_from = serializers.DateField(required=False, allow_null=True, default=None,
                                           help_text="YYYY-MM-DD the imported prices are in force from (default: today, UTC); not with defaults")


class PricesImportOut(serializers.Serializer):
    effective_from = serializers.DateField()
    source = serializers.CharField()
    created = serializers.ListField(child=serializers.CharField(), help_text="patterns given a new price (new, or changed)")
    unchanged = serializers.IntegerField(help_text="how many had the same price in force already")
    conflicts = serializers.ListField(child=serializers.CharField(), help_text="patterns with another price from that very day, left as they are")
