"""Django admin for every registry table.

Versions and the audit log are read-only here: versions are immutable once
registered and the audit log is append-only. Stage changes go through the
services (the pages and the API), never through an admin form.
"""

from django import forms
from django.contrib import admin

from mlops_site.exceptions import DomainError

from .models import (
    ApiToken,
    AuditEvent,
    DatasetSchema,
    EvalSet,
    Evaluation,
    EvaluationRow,
    GatePolicy,
    LoggedModel,
    ModelAlias,
    ModelVersion,
    PromotionRequest,
    Prompt,
    PromptDeployment,
    PromptVersion,
    ProtectedAlias,
    RegisteredModel,
    RegistryWebhook,
    Run,
    RunGroup,
    RunMetric,
    RunParam,
    RunTag,
    StageChange,
    WebhookAttempt,
    WebhookDelivery,
)
from .services.gates import clean_checks, gate_policy_delete, gate_policy_set
from .services.mlflow_registry import protected_alias_clean, protected_alias_delete, protected_alias_set
from .services.tokens import api_token_revoke


class ReadOnlyAdmin(admin.ModelAdmin):
    """Browse and search only: every change goes through the services."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ReadOnlyAdmin):
    # Models are created by registering their first version; the description
    # changes through services.model_describe, which writes an audit event.
    list_display = ["name", "created_at", "created_by"]
    search_fields = ["name", "description"]


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["model", "version", "stage", "created_by", "created_at", "artifact_sha256"]
    list_filter = ["stage"]
    search_fields = ["model__name", "code_commit", "data_version", "image_tag"]
    list_select_related = ["model", "created_by"]


@admin.register(PromotionRequest)
class PromotionRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "subject", "to_stage", "status", "requested_by", "requested_at", "decided_by", "decided_at"]
    list_filter = ["status", "to_stage"]
    list_select_related = ["model", "version", "prompt", "prompt_version", "requested_by", "decided_by"]


@admin.register(StageChange)
class StageChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "model", "prompt", "stage", "kind", "actor"]
    list_filter = ["stage", "kind"]
    list_select_related = ["model", "prompt", "actor"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_name", "action", "subject", "version", "from_stage", "to_stage", "reason"]
    list_filter = ["action"]
    search_fields = ["subject", "actor_name", "reason"]


@admin.register(Prompt)
class PromptAdmin(ReadOnlyAdmin):
    list_display = ["name", "created_at", "created_by"]
    search_fields = ["name"]


@admin.register(PromptVersion)
class PromptVersionAdmin(ReadOnlyAdmin):
    list_display = ["prompt", "version", "llm_model", "temperature", "max_tokens", "created_by", "created_at"]
    search_fields = ["prompt__name", "llm_model"]
    list_select_related = ["prompt", "created_by"]


@admin.register(EvalSet)
class EvalSetAdmin(ReadOnlyAdmin):
    list_display = ["prompt", "version", "row_count", "sha256", "created_at"]
    list_select_related = ["prompt"]
    exclude = ["content"]


@admin.register(PromptDeployment)
class PromptDeploymentAdmin(ReadOnlyAdmin):
    list_display = ["prompt", "environment", "version", "updated_at"]
    list_filter = ["environment"]
    list_select_related = ["prompt", "version"]


class GatePolicyForm(forms.ModelForm):
    """The checks are validated by the gate service's own rules before the admin saves them."""

    class Meta:
        model = GatePolicy
        fields = ["model", "prompt", "checks", "enforced", "evidence_from_other_identity"]

    def clean(self):
        data = super().clean()
        if bool(data.get("model")) == bool(data.get("prompt")):
            raise forms.ValidationError("Choose a model or a prompt, not both.")
        try:
            data["checks"] = clean_checks(data.get("checks"))
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None
        return data


@admin.register(GatePolicy)
class GatePolicyAdmin(admin.ModelAdmin):
    """Saved and deleted through services.gates (gate_policy_set, gate_policy_delete), so the change is audited like one from the page."""

    form = GatePolicyForm
    list_display = ["__str__", "model", "prompt", "enforced", "evidence_from_other_identity", "updated_at", "updated_by"]
    list_select_related = ["model", "prompt", "updated_by"]

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        saved = gate_policy_set(model=data.get("model"), prompt=data.get("prompt"), checks=data["checks"], enforced=data["enforced"],
                                evidence_from_other_identity=data["evidence_from_other_identity"], actor=request.user)
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        gate_policy_delete(policy_id=obj.pk, actor=request.user)

    def delete_queryset(self, request, queryset):
        for pk in queryset.values_list("pk", flat=True):
            gate_policy_delete(policy_id=pk, actor=request.user)


@admin.register(Evaluation)
class EvaluationAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "model_version", "prompt_version", "status", "source", "requested_by", "origin", "requested_at", "finished_at"]
    list_filter = ["kind", "status", "origin"]
    exclude = ["data"]
    list_select_related = ["model_version__model", "prompt_version__prompt", "requested_by"]


@admin.register(EvaluationRow)
class EvaluationRowAdmin(ReadOnlyAdmin):
    list_display = ["evaluation", "index", "latency_ms", "cost_usd", "error"]


@admin.register(DatasetSchema)
class DatasetSchemaAdmin(ReadOnlyAdmin):
    list_display = ["model", "source", "updated_at", "updated_by"]
    list_select_related = ["model", "updated_by"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Which tokens exist and whose: never a key (none is stored) nor its digest. An admin cannot make a token for
    someone else here; revoking a leaked one is the one action (the same service as the owner's button)."""

    list_display = ["prefix", "name", "user", "created_at", "expires_at", "revoked_at", "last_used_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__username", "name", "prefix"]
    list_select_related = ["user"]
    fields = ["prefix", "name", "user", "created_at", "expires_at", "revoked_at", "last_used_at"]
    actions = ["revoke"]

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        for token in queryset:
            api_token_revoke(actor=request.user, token_id=token.pk)
        self.message_user(request, f"Revoked {queryset.count()} token(s).")

    def has_view_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(RegistryWebhook)
class RegistryWebhookAdmin(ReadOnlyAdmin):
    """Which webhooks exist, never their secrets. Approvers set them on the model's or prompt's page (audited)."""

    list_display = ["id", "model", "prompt", "url", "active", "created_by", "created_at"]
    list_select_related = ["model", "prompt", "created_by"]
    fields = ["model", "prompt", "url", "events", "active", "created_by", "created_at"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["id", "webhook", "event", "status", "attempts", "next_try_at", "created_at", "delivered_at"]
    list_filter = ["status", "event"]
    list_select_related = ["webhook__model", "webhook__prompt"]


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(ReadOnlyAdmin):
    list_display = ["delivery", "attempt", "at", "status_code", "error", "duration_ms"]


@admin.register(RunGroup)
class RunGroupAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "lifecycle_stage", "created_by", "created_at"]
    search_fields = ["name"]


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ["run_id", "name", "group", "status", "user", "start_time"]
    list_filter = ["status"]
    list_select_related = ["group", "user"]
    search_fields = ["run_id", "name"]


@admin.register(RunParam)
class RunParamAdmin(ReadOnlyAdmin):
    list_display = ["run", "key", "value"]
    list_select_related = ["run"]


@admin.register(RunTag)
class RunTagAdmin(ReadOnlyAdmin):
    list_display = ["run", "key", "value"]
    list_select_related = ["run"]


@admin.register(RunMetric)
class RunMetricAdmin(ReadOnlyAdmin):
    list_display = ["run", "key", "step", "timestamp", "value", "is_nan"]
    list_select_related = ["run"]


@admin.register(LoggedModel)
class LoggedModelAdmin(ReadOnlyAdmin):
    list_display = ["model_id", "name", "group", "run", "status"]
    list_select_related = ["group", "run"]


@admin.register(ModelAlias)
class ModelAliasAdmin(ReadOnlyAdmin):
    """Set by MLflow clients (registered-models/alias), audited there."""

    list_display = ["model", "alias", "version", "set_by", "set_at"]
    list_select_related = ["model", "version", "set_by"]


class ProtectedAliasForm(forms.ModelForm):
    class Meta:
        model = ProtectedAlias
        fields = ["alias", "stage"]

    def clean_alias(self):
        try:
            return protected_alias_clean(self.cleaned_data.get("alias"))
        except DomainError as exc:
            raise forms.ValidationError(exc.message) from None


@admin.register(ProtectedAlias)
class ProtectedAliasAdmin(admin.ModelAdmin):
    """Aliases that always name a stage's holder (e.g. champion -> production): moving one from an MLflow client is a
    promotion request. Saved and deleted through the services, audited; `production` and `staging` always are."""

    form = ProtectedAliasForm
    list_display = ["alias", "stage", "created_by", "created_at"]

    def has_change_permission(self, request, obj=None):
        return request.user.is_superuser

    has_add_permission = has_delete_permission = lambda self, request, obj=None: request.user.is_superuser

    def save_model(self, request, obj, form, change):
        saved = protected_alias_set(alias=form.cleaned_data["alias"], stage=form.cleaned_data["stage"], actor=request.user)
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        protected_alias_delete(alias_id=obj.pk, actor=request.user)

    def delete_queryset(self, request, queryset):
        for pk in queryset.values_list("pk", flat=True):
            protected_alias_delete(alias_id=pk, actor=request.user)
