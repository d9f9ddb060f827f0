"""Input and output shapes of the registry API. Shapes only: the rules live in services."""

from django.urls import reverse
from rest_framework import serializers

from mlops_site.serializers import StrictSerializer

from .models import PROMOTABLE_STAGES, AuditEvent, Environment, EvalSet, ModelVersion, PromotionRequest, PromptVersion


class GateOverrideInput(StrictSerializer):
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


class VersionRegisterInput(StrictSerializer):
    params = serializers.JSONField(required=False, default=dict)
    metrics = serializers.JSONField(required=False, default=dict)
    tags = serializers.JSONField(required=False, default=dict)
    code_commit = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=True)
    data_version = serializers.CharField(required=False, allow_blank=True, default="")
    image_tag = serializers.CharField(required=False, allow_blank=True, default="")
    description = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    artifact_uri = serializers.CharField(required=False, allow_blank=True, default="")


class PromotionCreateInput(GateOverrideInput):
    to = serializers.ChoiceField(choices=list(PROMOTABLE_STAGES))
    reason = serializers.CharField()


class DecisionInput(GateOverrideInput):
    comment = serializers.CharField(required=False, allow_blank=True, default="")


class RejectInput(StrictSerializer):
    comment = serializers.CharField()


class RollbackInput(StrictSerializer):
    stage = serializers.ChoiceField(choices=list(PROMOTABLE_STAGES))
    reason = serializers.CharField()


# --- output ----------------------------------------------------------------------------


class VersionOutput(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name")
    created_by = serializers.CharField(source="created_by.username", default=None)
    artifact_url = serializers.SerializerMethodField()
    artifact_name = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "model", "version", "stage", "params", "metrics", "tags", "code_commit", "data_version",
            "image_tag", "description", "artifact_uri", "artifact_name", "artifact_url", "artifact_size",
            "artifact_sha256", "created_by", "created_at",
        ]

    def get_artifact_url(self, obj) -> str | None:
        if not obj.artifact:
            return obj.artifact_uri or None
        path = reverse("registry-api:version-artifact", args=[obj.model.name, obj.version])
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path

    def get_artifact_name(self, obj) -> str | None:
        return obj.artifact.name.rsplit("/", 1)[-1] if obj.artifact else None


class ModelSummaryOutput(serializers.Serializer):
    name = serializers.CharField()
    description = serializers.CharField()
    created_at = serializers.DateTimeField()
    latest_version = serializers.IntegerField(allow_null=True)
    staging_version = serializers.IntegerField(allow_null=True)
    production_version = serializers.IntegerField(allow_null=True)
    pending_promotions = serializers.IntegerField(source="pending_count")


class ModelDetailOutput(ModelSummaryOutput):
    version_count = serializers.IntegerField(source="latest_version", default=0)
    versions = serializers.SerializerMethodField()

    def get_versions(self, obj) -> list[dict]:
        return VersionOutput(self.context["versions"], many=True, context=self.context).data


class PromotionOutput(serializers.ModelSerializer):
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
            "id", "kind", "model", "prompt", "version", "to", "status", "from_version", "reason",
            "requested_by", "requested_at", "decided_by", "decided_at", "comment",
        ]


class AuditOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name")

    class Meta:
        model = AuditEvent
        fields = ["id", "at", "actor", "action", "subject", "version", "from_stage", "to_stage", "reason", "extra"]


# --- prompts ---------------------------------------------------------------------------------


class PromptImportInput(StrictSerializer):
    files = serializers.DictField(child=serializers.CharField(allow_blank=True, trim_whitespace=False), allow_empty=False)


class RenderInput(StrictSerializer):
    variables = serializers.DictField()


class PromptPromotionInput(GateOverrideInput):
    to = serializers.ChoiceField(choices=Environment.values)
    reason = serializers.CharField()


class PromptRollbackInput(StrictSerializer):
    environment = serializers.ChoiceField(choices=Environment.values)
    reason = serializers.CharField()


class PromptVersionOutput(serializers.ModelSerializer):
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


class PromptVersionSummaryOutput(PromptVersionOutput):
    class Meta(PromptVersionOutput.Meta):
        fields = ["version", "file_name", "model", "temperature", "max_tokens", "sha256", "eval_set_version", "created_by", "created_at"]


class PromptSummaryOutput(serializers.Serializer):
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    latest_version = serializers.IntegerField(allow_null=True)
    environments = serializers.SerializerMethodField()
    pending_promotions = serializers.IntegerField(source="pending_count")

    def get_environments(self, obj) -> dict[str, int | None]:
        return {env: getattr(obj, f"{env}_version") for env in Environment.values}


class PromptDetailOutput(PromptSummaryOutput):
    versions = serializers.SerializerMethodField()

    def get_versions(self, obj) -> list[dict]:
        return PromptVersionSummaryOutput(self.context["versions"], many=True).data


class EvalSetOutput(serializers.ModelSerializer):
    prompt = serializers.CharField(source="prompt.name")
    created_by = serializers.CharField(source="created_by.username", default=None)

    class Meta:
        model = EvalSet
        fields = ["prompt", "version", "sha256", "row_count", "created_by", "created_at"]
