"""Django admin for the monitoring tables: the stream, batches, references, reports, prices and budgets are read-only;
alert rules are configuration, saved and deleted through the alert services so each change is audited."""

from django import forms
from django.contrib import admin

from mlops_site.exceptions import ValidationFailed
from mlops_site.webhooks import webhook_url_check
from registry.admin import ReadOnlyAdmin

from .models import (
    AlertEvent,
    AlertRule,
    Budget,
    BudgetAlert,
    DriftReport,
    Event,
    FeatureBatch,
    FeatureNames,
    NotificationAttempt,
    PerformanceWindow,
    Price,
    Reference,
    Rollup,
    RollupCursor,
)
from .services.alerts import alert_rule_delete, alert_rule_fields, alert_rule_save


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


@admin.register(FeatureNames)
class FeatureNamesAdmin(ReadOnlyAdmin):
    list_display = ["model_version", "__str__"]
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


class AlertRuleForm(forms.ModelForm):
    """The rule's webhook URL is checked as the API checks a budget's (no loopback, private or metadata address)."""

    webhook_url = forms.CharField(required=False)  # a scheme is never assumed: the check below names the one it refuses

    def clean_webhook_url(self):
        url = self.cleaned_data["webhook_url"]
        try:
            webhook_url_check(url)
        except ValidationFailed as exc:
            raise forms.ValidationError(exc.message) from None
        return url


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    """Saved and deleted through services.alerts (audited, as the admin who did it). Its action, silence and
    acknowledgement are set on the alerts page or through the API, where their role rules apply."""

    form = AlertRuleForm
    list_display = ["name", "model", "prompt", "metric", "comparison", "threshold", "warning_threshold", "window_minutes", "state", "enabled"]
    list_filter = ["state", "metric", "enabled"]
    readonly_fields = [
        "state", "state_since", "last_value", "acknowledged_by", "acknowledged_at", "action", "action_set_by", "action_set_at",
        "silenced_until", "silenced_since",
    ]
    list_select_related = ["model", "prompt"]

    def save_model(self, request, obj, form, change):
        stored = AlertRule.objects.get(pk=obj.pk) if change else None
        alert_rule_save(rule=obj, before=alert_rule_fields(stored) if stored else None,
                        secret_before=stored.webhook_secret if stored else "", actor=request.user)

    def has_delete_permission(self, request, obj=None):
        # A rule with state changes keeps them (the service refuses too): disable it instead.
        return super().has_delete_permission(request, obj) and (obj is None or not obj.events.exists())

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, through the service
        return actions

    def delete_model(self, request, obj):
        alert_rule_delete(rule_id=obj.pk, actor=request.user)


@admin.register(AlertEvent)
class AlertEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "rule", "from_state", "to_state", "value", "silenced", "notification_status", "notification_attempts", "notified_at"]
    list_select_related = ["rule__model"]


@admin.register(Rollup)
class RollupAdmin(ReadOnlyAdmin):
    list_display = ["bucket", "granularity", "model_version", "prompt_version", "requests", "errors", "cost_usd"]
    list_filter = ["granularity"]
    exclude = ["latency_sketch", "ttft_sketch"]
    list_select_related = ["model_version__model", "prompt_version__prompt"]


@admin.register(RollupCursor)
class RollupCursorAdmin(ReadOnlyAdmin):
    list_display = ["name", "last_event_id", "updated_at"]


@admin.register(PerformanceWindow)
class PerformanceWindowAdmin(ReadOnlyAdmin):
    list_display = ["model_version", "window_start", "window_end", "labelled", "accuracy", "f1", "roc_auc"]
    list_select_related = ["model_version__model"]


@admin.register(Price)
class PriceAdmin(ReadOnlyAdmin):
    """Prices are set on /monitoring/prices/, through the API or by import_prices (services.prices: a new entry per
    change of price, its source written by the server, audited); here they are only browsed."""

    list_display = ["pattern", "effective_from", "input_per_token", "output_per_token", "cached_input_per_token", "reasoning_per_token", "source"]
    search_fields = ["pattern"]
    list_filter = ["source"]


@admin.register(Budget)
class BudgetAdmin(ReadOnlyAdmin):
    """Budgets are set on the cost page or through the API (budgets.budget_set checks them)."""

    list_display = ["name", "scope", "period", "amount_usd", "thresholds", "enabled"]
    list_filter = ["period", "scope", "enabled"]


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    list_display = ["at", "budget", "threshold", "spent_usd", "forecast_usd", "notification_status", "notification_attempts", "notified_at"]
    list_select_related = ["budget"]


@admin.register(NotificationAttempt)
class NotificationAttemptAdmin(ReadOnlyAdmin):
    list_display = ["at", "alert_event", "budget_alert", "attempt", "channel", "ok", "error"]
    list_filter = ["channel", "ok"]
    list_select_related = ["alert_event__rule", "budget_alert__budget"]
