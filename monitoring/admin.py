"""Django admin for the monitoring tables: the stream, batches, references and reports are read-only; alert rules are configuration."""

from django.contrib import admin

from registry.admin import ReadOnlyAdmin

from .models import AlertEvent, AlertRule, DriftReport, Event, FeatureBatch, Reference


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "model_version", "prompt_version", "timestamp", "latency_ms", "error"]
    list_filter = ["error"]
    search_fields = ["event_id", "unit_id"]
    list_select_related = ["model_version__model", "prompt_version__prompt"]


@admin.register(FeatureBatch)
class FeatureBatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "model_version", "rows", "first_ts", "last_ts", "received_at"]
    exclude = ["data"]
    list_select_related = ["model_version__model"]


@admin.register(Reference)
class ReferenceAdmin(ReadOnlyAdmin):
    list_display = ["model_version", "source", "rows", "created_at"]
    exclude = ["profile"]
    list_select_related = ["model_version__model"]


@admin.register(DriftReport)
class DriftReportAdmin(ReadOnlyAdmin):
    list_display = ["id", "model_version", "window_start", "window_end", "status", "drifted_columns", "max_psi"]
    list_filter = ["status"]
    list_select_related = ["model_version__model"]


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["name", "model", "metric", "comparison", "threshold", "warning_threshold", "state", "enabled"]
    list_filter = ["state", "metric", "enabled"]
    readonly_fields = ["state", "state_since", "last_value", "acknowledged_by", "acknowledged_at"]
    list_select_related = ["model"]


@admin.register(AlertEvent)
class AlertEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "rule", "from_state", "to_state", "value", "silenced", "notified_at"]
    list_select_related = ["rule__model"]
