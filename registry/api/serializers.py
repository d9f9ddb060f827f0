"""Input and output shapes of the registry API, typed for the OpenAPI schema. Shapes only: the rules live in services.

Stored JSON (an evaluation's figures and details, a gate policy's checks, a dataset schema) is answered as it was
written; its documented shape is what the services write today.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from mlops_site.roles import ROLES
from mlops_site.serializers import JSONNumber, StrictSerializer

from ..models import (
    PROMOTABLE_STAGES,
    AuditEvent,
    DatasetSchema,
    Environment,
    EvalSet,
    Evaluation,
    EvaluationKind,
    EvaluationRow,
    EvidenceOrigin,
    GatePolicy,
    ModelVersion,
    PromotionRequest,
    PromotionStrategy,
    PromptVersion,
)
from ..services.gates import check_problem


class MeOut(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.ChoiceField(choices=ROLES, allow_null=True)


class GateOverrideIn(StrictSerializer):
    """An admin's written reason for releasing despite failed gates: `override_reason`, or `override_gates`,
    the name earlier clients send (the same field; both at once must agree)."""

    override_reason = serializers.CharField(required=False, allow_blank=True, default="", help_text="admins only: why failed gates may be ignored")
    override_gates = serializers.CharField(required=False, allow_blank=True, default="", help_text="the earlier name of override_reason")

    def validate(self, attrs):
        attrs = super().validate(attrs)
        earlier = attrs.pop("override_gates", "")
        if earlier and attrs.get("override_reason") and earlier != attrs["override_reason"]:
            raise serializers.ValidationError({"override_gates": ["Send override_reason only (override_gates is its earlier name)."]})
        attrs["override_reason"] = attrs.get("override_reason") or earlier
        return attrs


# --- input -----------------------------------------------------------------------------


class VersionRegisterIn(StrictSerializer):
    params = serializers.JSONField(required=False, default=dict)
    metrics = serializers.JSONField(required=False, default=dict)
    tags = serializers.JSONField(required=False, default=dict)
    code_commit = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=True)
    data_version = serializers.CharField(required=False, allow_blank=True, default="")
    image_tag = serializers.CharField(required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    artifact_uri = serializers.CharField(required=False, allow_blank=True, default="")


class VersionRegisterMultipartIn(serializers.Serializer):
    artifact = serializers.FileField()
    meta = serializers.CharField(help_text="JSON object with the fields of the JSON body")


class PromotionRequestIn(GateOverrideIn):
    """What every promotion request may add: a canary (a staged rollout into production / prod) and its policy."""

    strategy = serializers.ChoiceField(choices=PromotionStrategy.choices, required=False, default=PromotionStrategy.DIRECT,
                                       help_text="canary: approval starts a staged rollout instead of moving the stage (production / prod only)")
    policy = serializers.CharField(required=False, allow_blank=True, default="", help_text="canary: a rollout policy's name; blank: default")


class PromotionCreateIn(PromotionRequestIn):
    to = serializers.ChoiceField(choices=list(PROMOTABLE_STAGES))
    reason = serializers.CharField()


class PromotionApproveIn(GateOverrideIn):
    comment = serializers.CharField(required=False, allow_blank=True, default="")


class PromotionRejectIn(StrictSerializer):
    comment = serializers.CharField()


class ModelRollbackIn(StrictSerializer):
    stage = serializers.ChoiceField(choices=list(PROMOTABLE_STAGES))
    reason = serializers.CharField()


# --- output ----------------------------------------------------------------------------


class VersionOut(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    created_by = serializers.CharField(source="created_by.username", default=None)
    artifact_url = serializers.SerializerMethodField()
    artifact_name = serializers.SerializerMethodField()
    run_id = serializers.CharField(source="run.run_id", default=None, help_text="The training run that produced it (MLflow clients).")

    class Meta:
        model = ModelVersion
        fields = [
            "model", "version", "stage", "params", "metrics", "tags", "code_commit", "data_version",
            "image_tag", "description", "artifact_uri", "artifact_name", "artifact_url", "artifact_size",
            "artifact_sha256", "run_id", "created_by", "created_at",
        ]

    def get_artifact_url(self, obj) -> str | None:
        if not obj.artifact:
            return obj.artifact_uri or None
        path = reverse("registry-api:version-artifact", args=[obj.model.name, obj.version])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_artifact_name(self, obj) -> str | None:
        return obj.artifact.name.rsplit("/", 1)[-1] if obj.artifact else None


class ModelSummaryOut(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()
    latest_version = serializers.IntegerField(allow_null=True)
    staging_version = serializers.IntegerField(allow_null=True)
    production_version = serializers.IntegerField(allow_null=True)
    pending_promotions = serializers.IntegerField(source="pending_count")


class ModelDetailOut(ModelSummaryOut):
    version_count = serializers.IntegerField(source="latest_version", default=0)
    versions = serializers.SerializerMethodField()

    @extend_schema_field(VersionOut(many=True))
    def get_versions(self, obj) -> list[dict]:
        return VersionOut(self.context["versions"], many=True, context=self.context).data


class PromotionOut(serializers.ModelSerializer):
    """A request for a model version (`model` set) or a prompt version (`prompt` set)."""

    kind = serializers.CharField()
    model = serializers.CharField(source="model.name", default=None)
    prompt = serializers.CharField(source="prompt.name", default=None)
    version = serializers.IntegerField(source="target.version")
    to = serializers.CharField(source="to_stage")
    from_version = serializers.IntegerField(source="replaces.version", default=None)
    requested_by = serializers.CharField(source="requested_by.username")
    decided_by = serializers.CharField(source="decided_by.username", default=None)

    class Meta:
        model = PromotionRequest
        fields = [
            "id", "kind", "model", "prompt", "version", "to", "status", "strategy", "policy", "from_version", "reason",
            "requested_by", "requested_at", "decided_by", "decided_at", "comment",
        ]


class AuditOut(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name")

    class Meta:
        model = AuditEvent
        fields = ["id", "at", "actor", "action", "subject", "version", "from_stage", "to_stage", "reason", "extra"]


# --- prompts ---------------------------------------------------------------------------------


class PromptImportIn(StrictSerializer):
    files = serializers.DictField(child=serializers.CharField(allow_blank=True, trim_whitespace=False), allow_empty=False)


class PromptRenderIn(StrictSerializer):
    variables = serializers.DictField()


class PromptImportArchiveIn(serializers.Serializer):
    archive = serializers.FileField(help_text="the prompts folder as .tar.gz or .zip")


class ImportRequestOut(serializers.Serializer):
    """A promotion config.yaml asks for: opened now (`promotion_id`) or already pending."""

    prompt = serializers.CharField()
    environment = serializers.ChoiceField(choices=Environment.choices)
    version = serializers.IntegerField()
    status = serializers.CharField()
    promotion_id = serializers.IntegerField(required=False)


class PromptImportOut(serializers.Serializer):
    created = serializers.ListField(child=serializers.CharField())
    unchanged = serializers.ListField(child=serializers.CharField())
    requested = ImportRequestOut(many=True)
    ignored = serializers.ListField(child=serializers.CharField())


class PromptRenderOut(serializers.Serializer):
    system = serializers.CharField()
    prompt = serializers.CharField()
    model = serializers.CharField()
    temperature = serializers.FloatField()
    max_tokens = serializers.IntegerField(allow_null=True)


class PromptPromotionIn(PromotionRequestIn):
    to = serializers.ChoiceField(choices=Environment.choices)
    reason = serializers.CharField()


class PromptRollbackIn(StrictSerializer):
    environment = serializers.ChoiceField(choices=Environment.choices)
    reason = serializers.CharField()


class PromptVersionOut(serializers.ModelSerializer):
    """All fields of a version's YAML, plus where it came from."""

    prompt = serializers.CharField(source="prompt.name")
    model = serializers.CharField(source="llm_model")
    eval_set_version = serializers.IntegerField(source="eval_set.version", default=None)
    created_by = serializers.CharField(source="created_by.username", default=None)
    yaml = serializers.CharField(source="source")

    class Meta:
        model = PromptVersion
        fields = [
            "prompt", "version", "file_name", "model", "temperature", "max_tokens", "system", "template", "placeholders",
            "eval_criteria", "description", "tags", "metadata", "sha256", "eval_set_version", "yaml", "created_by", "created_at",
        ]


class PromptVersionSummaryOut(PromptVersionOut):
    class Meta(PromptVersionOut.Meta):
        fields = ["version", "file_name", "model", "temperature", "max_tokens", "sha256", "eval_set_version", "created_by", "created_at"]


class PromptSummaryOut(serializers.Serializer):
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    latest_version = serializers.IntegerField(allow_null=True)
    environments = serializers.SerializerMethodField()
    pending_promotions = serializers.IntegerField(source="pending_count")

    def get_environments(self, obj) -> dict[str, int | None]:
        return {env: getattr(obj, f"{env}_version") for env in Environment.values}


class PromptDetailOut(PromptSummaryOut):
    versions = serializers.SerializerMethodField()

    @extend_schema_field(PromptVersionSummaryOut(many=True))
    def get_versions(self, obj) -> list[dict]:
        return PromptVersionSummaryOut(self.context["versions"], many=True).data


class EvalSetOut(serializers.ModelSerializer):
    prompt = serializers.CharField(source="prompt.name")
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = EvalSet
        fields = ["prompt", "version", "sha256", "row_count", "created_by", "created_at"]


class EvalSetPageOut(serializers.Serializer):
    eval_set = EvalSetOut()
    count = serializers.IntegerField(help_text="rows in the eval set")
    page = serializers.IntegerField()
    rows = serializers.SerializerMethodField()

    def get_rows(self, page: dict) -> list[dict[str, Any]]:
        return page["rows"]


# --- quality gates -----------------------------------------------------------------------------------------------------


class EvaluationUploadIn(serializers.Serializer):
    file = serializers.FileField()
    kind = serializers.ChoiceField(choices=[EvaluationKind.MODEL, EvaluationKind.DATA])
    options = serializers.CharField(required=False, help_text="JSON object: label_column, prediction_column, score_column, "
                                                              "group_column, positive_label, data_version")


class PromptEvaluationIn(serializers.Serializer):
    """For the schema: the service validates the options."""

    provider = serializers.ChoiceField(choices=["replay", "openai"], required=False)
    responses = serializers.DictField(required=False, help_text="replay: the recorded response of each eval set row")
    timeout_s = serializers.FloatField(required=False, help_text="openai: the per-call timeout in seconds, above 0 and at most the "
                                       "server's MLOPS_LLM_TIMEOUT_S (a larger value is refused with 400)")


class RowCheckOut(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    status = serializers.CharField()
    value = serializers.JSONField(allow_null=True)
    detail = serializers.CharField(allow_blank=True)


class EvaluationRowOut(serializers.ModelSerializer):
    """One eval set row's result in a prompt evaluation."""

    checks = serializers.SerializerMethodField()

    class Meta:
        model = EvaluationRow
        fields = ["index", "input", "output", "expected", "checks", "latency_ms", "cost_usd", "error"]

    @extend_schema_field(RowCheckOut(many=True))
    def get_checks(self, row: EvaluationRow) -> list[dict[str, Any]]:
        return row.checks


class EvaluationOut(serializers.ModelSerializer):
    """An evaluation of a model version (`model` set) or a prompt version (`prompt` set)."""

    model = serializers.CharField(source="model_version.model.name", default=None)
    prompt = serializers.CharField(source="prompt_version.prompt.name", default=None)
    version = serializers.SerializerMethodField()
    requested_by = serializers.CharField(source="requested_by.username", default=None,
                                         help_text="who asked for it (the authenticated caller): the evidence's producer")
    options = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()
    details = serializers.SerializerMethodField()

    class Meta:
        model = Evaluation
        fields = ["id", "kind", "status", "model", "prompt", "version", "source", "input_sha256", "options", "requested_by", "origin",
                  "requested_at", "started_at", "finished_at", "attempts", "error", "metrics", "details"]

    def get_version(self, evaluation: Evaluation) -> int:
        return (evaluation.model_version or evaluation.prompt_version).version

    def get_options(self, evaluation: Evaluation) -> dict[str, Any]:
        return evaluation.options

    def get_metrics(self, evaluation: Evaluation) -> dict[str, float | None]:
        """The gate figures, e.g. {"accuracy": 0.93, "demographic_parity_difference": 0.04}."""
        return evaluation.metrics

    def get_details(self, evaluation: Evaluation) -> dict[str, Any]:
        """Confusion matrix, per-group table, violations, per-criterion summary: what the kind computes."""
        return evaluation.details


class EvaluationDetailOut(EvaluationOut):
    """With (prompt evaluations) the first 200 per-row results."""

    ROW_LIMIT = 200

    rows = serializers.SerializerMethodField()

    class Meta(EvaluationOut.Meta):
        fields = [*EvaluationOut.Meta.fields, "rows"]

    @extend_schema_field(EvaluationRowOut(many=True))
    def get_rows(self, evaluation: Evaluation) -> list[dict]:
        return EvaluationRowOut(evaluation.rows.all()[: self.ROW_LIMIT], many=True).data


class PassedOverOut(serializers.Serializer):
    """A newer evaluation that has the check's figure but does not count as evidence, and why."""

    evaluation_id = serializers.IntegerField()
    value = JSONNumber()
    produced_by = serializers.CharField(source="producer", allow_blank=True)
    origin = serializers.ChoiceField(choices=EvidenceOrigin.choices)
    reason = serializers.CharField()


class GateCheckOut(serializers.Serializer):
    """One check of the gate card, with the evaluation its value came from."""

    check = serializers.CharField()
    op = serializers.ChoiceField(choices=[">", ">=", "<", "<="])
    threshold = JSONNumber()
    status = serializers.ChoiceField(choices=["passed", "failed", "not_run"])
    value = JSONNumber(allow_null=True)
    evaluation_id = serializers.IntegerField(allow_null=True)
    kind = serializers.CharField(allow_blank=True, help_text="the evaluation kind the value came from")
    ran_at = serializers.DateTimeField(allow_null=True)
    source = serializers.CharField(allow_blank=True, help_text="what that evaluation ran on")
    produced_by = serializers.CharField(source="producer", allow_blank=True, help_text="who produced that evaluation (blank: unknown)")
    origin = serializers.ChoiceField(choices=EvidenceOrigin.choices, allow_blank=True, help_text="how that evaluation was produced")
    problem = serializers.SerializerMethodField()
    passed_over = PassedOverOut(many=True)

    def get_problem(self, outcome) -> str:
        """Why the check did not pass, worded as on the gate card and in a 409 (blank when it passed)."""
        return check_problem(outcome) if outcome.status != "passed" else ""


class GateStatusOut(serializers.Serializer):
    """A version's gate card (services.gates.GateStatus), judged for a promotion requested by `requester`."""

    policy = serializers.SerializerMethodField()
    enforced = serializers.BooleanField()
    evidence_from_other_identity = serializers.SerializerMethodField()
    requester = serializers.CharField(allow_blank=True, help_text="whose promotion the checks were judged for (the caller, or ?requester=)")
    passed = serializers.SerializerMethodField()
    checks = GateCheckOut(many=True)

    def get_evidence_from_other_identity(self, state) -> bool:
        """Whether the policy refuses evidence produced by the promotion's requester."""
        return bool(state.policy and state.policy.evidence_from_other_identity)

    def get_policy(self, state) -> bool:
        """Whether the model or prompt has a gate policy."""
        return state.policy is not None

    def get_passed(self, state) -> bool | None:
        """null without a policy."""
        return state.passed if state.policy else None


class GateCheckSpec(serializers.Serializer):
    check = serializers.CharField()
    op = serializers.ChoiceField(choices=[">", ">=", "<", "<="])
    threshold = JSONNumber()


class GatePolicyIn(serializers.Serializer):
    """For the schema: the service validates the checks (each bad one named by index)."""

    checks = serializers.JSONField(help_text='a list of {"check", "op", "threshold"}, or "default" for the defaults')
    enforced = serializers.BooleanField(required=False, help_text="default true; false shows the gate card without refusing promotions")
    evidence_from_other_identity = serializers.BooleanField(
        required=False, help_text="true: evidence produced by a promotion's requester does not count for it (e.g. only a CI token's "
                                  "runs); left out: unchanged (false for a new policy)")


class GatePolicyOut(serializers.ModelSerializer):
    """The gate policy of a model or prompt; before one is set, an empty one (`exists` false, no checks, not enforced)."""

    checks = serializers.SerializerMethodField()
    exists = serializers.SerializerMethodField()
    updated_at = serializers.SerializerMethodField()
    updated_by = serializers.CharField(source="updated_by.username", default=None)

    class Meta:
        model = GatePolicy
        fields = ["checks", "enforced", "evidence_from_other_identity", "exists", "updated_at", "updated_by"]

    @extend_schema_field(GateCheckSpec(many=True))
    def get_checks(self, policy: GatePolicy) -> list[dict[str, Any]]:
        return policy.checks

    def get_exists(self, policy: GatePolicy) -> bool:
        return policy.pk is not None

    def get_updated_at(self, policy: GatePolicy) -> datetime | None:
        return policy.updated_at if policy.pk is not None else None


class DatasetSchemaSpec(serializers.Serializer):
    columns = serializers.ListField(child=serializers.DictField(), help_text='{"name", "type", ...} per column')
    allow_extra_columns = serializers.BooleanField(required=False)


class DatasetSchemaReferenceIn(serializers.Serializer):
    file = serializers.FileField(help_text="CSV, JSON lines or Parquet to infer the schema from")


class DatasetSchemaOut(serializers.ModelSerializer):
    schema = serializers.SerializerMethodField()

    class Meta:
        model = DatasetSchema
        fields = ["schema", "source", "updated_at"]

    @extend_schema_field(DatasetSchemaSpec)
    def get_schema(self, row: DatasetSchema) -> dict[str, Any]:
        return row.schema
