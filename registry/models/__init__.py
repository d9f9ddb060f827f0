"""Registry tables: models, their versions, promotion requests, stage history and the audit log."""

import os
import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
name_validator = RegexValidator(
    NAME_PATTERN, "Use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit."
)


class Stage(models.TextChoices):
    CANDIDATE = "candidate"
    STAGING = "staging"
    PRODUCTION = "production"
    ARCHIVED = "archived"


# Stages a promotion can target; each holds at most one version per model.
PROMOTABLE_STAGES = (Stage.STAGING, Stage.PRODUCTION)


class RegisteredModel(models.Model):
    """A named model; its versions are created by registering, never edited."""

    name = models.CharField(max_length=128, unique=True, validators=[name_validator])
    description = models.TextField(blank=True)
    tags = models.JSONField(default=dict, blank=True)  # set by MLflow clients (registered model tags)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


def artifact_path(instance: "ModelVersion", filename: str) -> str:
    """A fresh folder per upload, so a file can be stored before its version number is known."""
    return f"artifacts/{instance.model.name}/{uuid.uuid4().hex}/{os.path.basename(filename) or 'artifact'}"


class ModelVersion(models.Model):
    """One registered version with everything needed to reproduce it.

    Immutable once registered: only `stage` changes, and only through the
    promotion and rollback services.
    """

    model = models.ForeignKey(RegisteredModel, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    stage = models.CharField(max_length=16, choices=Stage.choices, default=Stage.CANDIDATE)
    params = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=dict, blank=True)
    code_commit = models.CharField(max_length=64, blank=True)
    data_version = models.CharField(max_length=255, blank=True)
    image_tag = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    artifact = models.FileField(upload_to=artifact_path, max_length=500, blank=True)
    artifact_uri = models.CharField(max_length=1000, blank=True)
    artifact_size = models.BigIntegerField(null=True, blank=True)
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    # Lineage when the version was registered by an MLflow client: the run that logged it and its model folder.
    run = models.ForeignKey("registry.Run", null=True, blank=True, on_delete=models.PROTECT, related_name="model_versions")
    logged_model = models.ForeignKey("registry.LoggedModel", null=True, blank=True, on_delete=models.PROTECT, related_name="model_versions")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["model", "version"], name="registry_version_unique"),
            # The invariant the whole approval flow rests on: a partial unique index,
            # so two concurrent approvals cannot both put a version in production.
            models.UniqueConstraint(
                fields=["model", "stage"],
                condition=Q(stage__in=["staging", "production"]),
                name="registry_one_version_per_stage",
            ),
            models.CheckConstraint(condition=Q(version__gte=1), name="registry_version_positive"),
            models.CheckConstraint(condition=Q(stage__in=Stage.values), name="registry_stage_valid"),
        ]
        indexes = [models.Index(fields=["model", "stage"], name="registry_version_stage_idx")]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"

    @property
    def artifact_location(self) -> str:
        return self.artifact.name if self.artifact else self.artifact_uri


class Environment(models.TextChoices):
    """Where a prompt version runs. Unlike a model's stages, one version may run in several at once."""

    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


class Prompt(models.Model):
    """A named prompt; its versions come from `<name>/vN.yaml` files and are never edited."""

    name = models.CharField(max_length=128, unique=True, validators=[name_validator])
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class EvalSet(models.Model):
    """One immutable version of a prompt's `eval_set.jsonl`, kept byte for byte."""

    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="eval_sets")
    version = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    row_count = models.PositiveIntegerField()
    content = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["prompt_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "version"], name="registry_evalset_version_unique"),
            models.UniqueConstraint(fields=["prompt", "sha256"], name="registry_evalset_content_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.prompt.name} eval set v{self.version}"


class PromptVersion(models.Model):
    """One version file of a prompt: its settings, system text, template and evaluation criteria.

    `source` is the file exactly as imported (export writes it back byte for byte);
    the other fields are what the schema validated from it.
    """

    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField()
    file_name = models.CharField(max_length=40)  # "v2.yaml" (or .yml), as in the folder
    llm_model = models.CharField(max_length=200)  # the YAML's `model`
    temperature = models.FloatField()
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    system = models.TextField(blank=True)
    template = models.TextField()
    placeholders = models.JSONField(default=list)
    eval_criteria = models.JSONField(default=list)
    description = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    source = models.TextField()
    sha256 = models.CharField(max_length=64)
    # The eval set version this prompt version is evaluated with (the folder's at import time).
    eval_set = models.ForeignKey(EvalSet, null=True, blank=True, on_delete=models.PROTECT, related_name="prompt_versions")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["prompt_id", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "version"], name="registry_promptversion_unique"),
            models.CheckConstraint(condition=Q(version__gte=1), name="registry_promptversion_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.prompt.name} v{self.version}"


class PromptDeployment(models.Model):
    """Which version an environment of a prompt runs now. Moved only by approved promotions and rollbacks."""

    prompt = models.ForeignKey(Prompt, on_delete=models.PROTECT, related_name="deployments")
    environment = models.CharField(max_length=16, choices=Environment.choices)
    version = models.ForeignKey(PromptVersion, on_delete=models.PROTECT, related_name="deployments")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["prompt_id", "environment"]
        constraints = [
            models.UniqueConstraint(fields=["prompt", "environment"], name="registry_one_version_per_environment"),
            models.CheckConstraint(condition=Q(environment__in=Environment.values), name="registry_environment_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.prompt.name} {self.environment}: v{self.version.version}"


# Stages and environments a promotion can target: models use the first two, prompts the last three.
TARGET_STAGES = ["staging", "production", "dev", "prod"]
_MODEL_SUBJECT = Q(model__isnull=False, version__isnull=False, prompt__isnull=True, prompt_version__isnull=True)
_PROMPT_SUBJECT = Q(model__isnull=True, version__isnull=True, prompt__isnull=False, prompt_version__isnull=False)


class PromotionStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"  # the target stage changed before a decision
    EXPIRED = "expired"
    ROLLING_OUT = "rolling_out"  # a canary approved: its version is being rolled out; the stage has not moved yet
    ROLLED_BACK = "rolled_back"  # a canary stopped before it completed: the stage never moved


class PromotionStrategy(models.TextChoices):
    DIRECT = "direct"  # approval moves the stage at once
    CANARY = "canary"  # approval starts a staged rollout (experiments); its completion moves the stage


# Where a canary may roll out to: a model's production, a prompt's prod.
CANARY_STAGES = {"model": "production", "prompt": "prod"}


class PromotionRequest(models.Model):
    """A request to move a model version into a stage, or a prompt version into an environment.

    One table and one set of services serve both: exactly one of (model, version)
    and (prompt, prompt_version) is set. A second person with the approver role
    decides it. An approved canary (`strategy`, into a model's production or a prompt's prod) does not move the
    stage: it is `rolling_out` while experiments rolls its version out, then `approved` when the rollout completes
    (the stage moves then) or `rolled_back` (it never moved).
    """

    # The version's model, kept here too so "pending requests of a model" is one index lookup.
    model = models.ForeignKey(RegisteredModel, null=True, blank=True, on_delete=models.PROTECT, related_name="promotions")
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="promotions")
    prompt = models.ForeignKey(Prompt, null=True, blank=True, on_delete=models.PROTECT, related_name="promotions")
    prompt_version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="promotions")
    to_stage = models.CharField(max_length=16, choices=[(s, s) for s in TARGET_STAGES])
    # The version that held `to_stage` when the request was made: approving after
    # the stage has changed would replace a version the requester never saw.
    from_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    from_prompt_version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=16, choices=PromotionStatus.choices, default=PromotionStatus.PENDING)
    strategy = models.CharField(max_length=16, choices=PromotionStrategy.choices, default=PromotionStrategy.DIRECT)
    # A canary's rollout policy, by name (its newest version when the rollout starts); blank: the default policy.
    policy = models.CharField(max_length=100, blank=True)
    reason = models.TextField(blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["version", "to_stage"],
                condition=Q(status="pending"),
                name="registry_one_pending_request",
            ),
            models.UniqueConstraint(
                fields=["prompt_version", "to_stage"],
                condition=Q(status="pending"),
                name="registry_one_pending_prompt_request",
            ),
            models.CheckConstraint(
                condition=(_MODEL_SUBJECT & Q(to_stage__in=["staging", "production"])) | (_PROMPT_SUBJECT & Q(to_stage__in=Environment.values)),
                name="registry_promotion_subject_and_target",
            ),
            models.CheckConstraint(
                condition=Q(strategy=PromotionStrategy.DIRECT, policy="")
                | Q(strategy=PromotionStrategy.CANARY, to_stage__in=list(CANARY_STAGES.values())),
                name="registry_promotion_canary_target",
            ),
            # One rollout at a time per model and per prompt: the controller compares one candidate with production.
            models.UniqueConstraint(fields=["model"], condition=Q(status="rolling_out"), name="registry_one_rollout_per_model"),
            models.UniqueConstraint(fields=["prompt"], condition=Q(status="rolling_out"), name="registry_one_rollout_per_prompt"),
        ]
        indexes = [
            models.Index(fields=["status", "-requested_at"], name="registry_promo_status_idx"),
            models.Index(fields=["model", "status"], name="registry_promo_model_idx"),
            models.Index(fields=["prompt", "status"], name="registry_promo_prompt_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.subject} v{self.target.version} -> {self.to_stage} ({self.status})"

    @property
    def kind(self) -> str:
        return "model" if self.version_id else "prompt"

    @property
    def target(self):
        """The version to move (a ModelVersion or a PromptVersion)."""
        return self.version if self.version_id else self.prompt_version

    @property
    def replaces(self):
        return self.from_version if self.version_id else self.from_prompt_version

    @property
    def subject_name(self) -> str:
        return self.model.name if self.model_id else self.prompt.name

    @property
    def subject(self) -> str:
        return f"{self.kind}:{self.subject_name}"


class StageChangeKind(models.TextChoices):
    PROMOTION = "promotion"
    ROLLBACK = "rollback"


class StageChange(models.Model):
    """Each time a stage (or a prompt environment) gets a new holder; rollback replays this history."""

    model = models.ForeignKey(RegisteredModel, null=True, blank=True, on_delete=models.PROTECT, related_name="stage_changes")
    prompt = models.ForeignKey(Prompt, null=True, blank=True, on_delete=models.PROTECT, related_name="stage_changes")
    stage = models.CharField(max_length=16, choices=[(s, s) for s in TARGET_STAGES])
    version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    previous_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    prompt_version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    previous_prompt_version = models.ForeignKey(PromptVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(max_length=16, choices=StageChangeKind.choices)
    promotion = models.ForeignKey(PromotionRequest, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["model", "stage", "id"], name="registry_stagechange_idx"),
            models.Index(fields=["prompt", "stage", "id"], name="registry_stagechg_prompt_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(model__isnull=False, version__isnull=False, prompt__isnull=True, prompt_version__isnull=True)
                | Q(model__isnull=True, version__isnull=True, prompt__isnull=False, prompt_version__isnull=False),
                name="registry_stagechange_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_id or self.prompt_id} {self.stage}: -> {self.version_id or self.prompt_version_id} ({self.kind})"

    @property
    def target(self):
        return self.version if self.version_id else self.prompt_version

    @property
    def previous(self):
        return self.previous_version if self.version_id else self.previous_prompt_version


class AuditAction(models.TextChoices):
    REGISTERED = "registered"
    PROMOTION_REQUESTED = "promotion_requested"
    PROMOTION_APPROVED = "promotion_approved"
    PROMOTION_REJECTED = "promotion_rejected"
    PROMOTION_EXPIRED = "promotion_expired"
    PROMOTION_SUPERSEDED = "promotion_superseded"
    PROMOTION_COMPLETED = "promotion_completed"  # a canary's rollout completed: the stage moved
    ROLLED_BACK = "rolled_back"
    MODEL_UPDATED = "model_updated"
    PROMPT_IMPORTED = "prompt_imported"
    EVAL_SET_IMPORTED = "eval_set_imported"
    GATE_POLICY_SET = "gate_policy_set"
    GATE_OVERRIDDEN = "gate_overridden"
    SCHEMA_SET = "schema_set"
    EVALUATION_REQUESTED = "evaluation_requested"
    EVALUATION_RECORDED = "evaluation_recorded"
    EXPERIMENT_CREATED = "experiment_created"
    EXPERIMENT_STARTED = "experiment_started"
    EXPERIMENT_STOPPED = "experiment_stopped"
    EXPERIMENT_DECIDED = "experiment_decided"
    ROLLOUT_STARTED = "rollout_started"
    ROLLOUT_ADVANCED = "rollout_advanced"
    ROLLOUT_PAUSED = "rollout_paused"
    ROLLOUT_RESUMED = "rollout_resumed"
    ROLLOUT_ROLLED_BACK = "rollout_rolled_back"
    ROLLOUT_POLICY_SET = "rollout_policy_set"
    GATE_POLICY_DELETED = "gate_policy_deleted"
    PRICE_SET = "price_set"
    PRICES_IMPORTED = "prices_imported"
    BUDGET_SET = "budget_set"
    ALERT_ACKNOWLEDGED = "alert_acknowledged"
    ALERT_SILENCED = "alert_silenced"
    ALERT_ACTION_SET = "alert_action_set"
    ALERT_RULE_CHANGED = "alert_rule_changed"  # through the admin, the only place rules are edited
    ALERT_RULE_DELETED = "alert_rule_deleted"
    REFERENCE_SET = "reference_set"
    LABELS_OVERWRITTEN = "labels_overwritten"
    TOKEN_CREATED = "token_created"  # on the tokens page or API (a tool rotating its own token is not audited)
    TOKEN_REVOKED = "token_revoked"
    MODEL_CREATED = "model_created"  # an MLflow client's registered-models/create, before any version
    ALIAS_SET = "alias_set"
    ALIAS_DELETED = "alias_deleted"
    ALIAS_PROTECTED = "alias_protected"  # by an admin: the alias names a stage's holder from now on
    ALIAS_UNPROTECTED = "alias_unprotected"
    WEBHOOK_SET = "webhook_set"  # created or changed; a secret appears only as "set" or "changed"
    WEBHOOK_DELETED = "webhook_deleted"


class AuditEvent(models.Model):
    """Append-only: one row per change, never updated nor deleted (database triggers refuse UPDATE and DELETE)."""

    at = models.DateTimeField(default=timezone.now)
    # No database constraint and no cascade: deleting a user must not touch the log
    # (SET_NULL would be an UPDATE, which the trigger refuses). actor_name keeps the name.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    # Kept as text too, so the log still names a user who was later deleted.
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    subject = models.CharField(max_length=200)  # "model:fraud-detector", later "prompt:summarize"
    version = models.PositiveIntegerField(null=True, blank=True)
    from_stage = models.CharField(max_length=16, blank=True)
    to_stage = models.CharField(max_length=16, blank=True)
    reason = models.TextField(blank=True)
    extra = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["subject", "-at"], name="registry_audit_subject_idx"),
            models.Index(fields=["-at"], name="registry_audit_at_idx"),
            models.Index(fields=["action", "-at"], name="registry_audit_action_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.subject}"


from .gates import (  # noqa: E402
    DatasetSchema,
    Evaluation,
    EvaluationKind,
    EvaluationRow,
    EvaluationStatus,
    EvidenceOrigin,
    GatePolicy,
)
from .runs import (  # noqa: E402
    LoggedModel,
    LoggedModelStatus,
    ModelAlias,
    ProtectedAlias,
    Run,
    RunGroup,
    RunMetric,
    RunParam,
    RunStatus,
    RunTag,
)
from .tokens import ApiToken  # noqa: E402
from .webhooks import (  # noqa: E402
    SUBSCRIBABLE_EVENTS,
    DeliveryStatus,
    RegistryWebhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookFormat,
)

__all__ = [
    "ApiToken", "AuditAction", "AuditEvent", "DatasetSchema", "Environment", "EvalSet", "Evaluation", "EvaluationKind", "EvaluationRow",
    "EvaluationStatus", "EvidenceOrigin", "GatePolicy", "LoggedModel", "LoggedModelStatus", "ModelAlias", "ModelVersion", "ProtectedAlias", "Prompt", "PromptDeployment", "PromptVersion", "PromotionRequest",
    "PromotionStatus", "PromotionStrategy", "RegisteredModel", "Run", "RunGroup", "RunMetric", "RunParam", "RunStatus", "RunTag", "Stage",
    "StageChange", "StageChangeKind",
    "DeliveryStatus", "RegistryWebhook", "SUBSCRIBABLE_EVENTS", "WebhookAttempt", "WebhookDelivery", "WebhookEvent", "WebhookFormat",
]
