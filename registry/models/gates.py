"""Quality gates: what a release must pass (policies), the evidence (evaluations), and dataset schemas.

An Evaluation is one run of one kind over one version: model metrics and fairness from uploaded
predictions and labels, data validation of a file against the model's schema, a prompt
version over its eval set, or an A/B test's result recorded from outside (done at once). Its `metrics` are the gate figures; a GatePolicy compares them with
thresholds, and a promotion of a version whose gates failed or never ran is refused. Each evaluation records who
produced it (`requested_by`) and how (`origin`), so a gate can refuse evidence typed in by hand or supplied by the
promotion's own requester.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class GatePolicy(models.Model):
    """The checks that gate a model's or a prompt's promotions: `[{"check": "accuracy", "op": ">=", "threshold": 0.92}, ...]`."""

    model = models.OneToOneField("registry.RegisteredModel", null=True, blank=True, on_delete=models.CASCADE, related_name="gate_policy")
    prompt = models.OneToOneField("registry.Prompt", null=True, blank=True, on_delete=models.CASCADE, related_name="gate_policy")
    checks = models.JSONField(default=list)
    enforced = models.BooleanField(default=True, help_text="off: the gate card is shown but promotions are not refused")
    evidence_from_other_identity = models.BooleanField(
        default=False, help_text="on: evidence produced by the promotion's requester does not count (e.g. only a CI token's runs)"
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(model__isnull=False, prompt__isnull=True) | Q(model__isnull=True, prompt__isnull=False),
                                   name="registry_gatepolicy_one_subject"),
        ]

    def __str__(self) -> str:
        return f"gate policy of {'model' if self.model_id else 'prompt'} {self.model_id or self.prompt_id}"


class EvaluationKind(models.TextChoices):
    MODEL = "model", "model metrics and fairness"
    DATA = "data", "data validation"
    PROMPT = "prompt", "prompt evaluation"
    # Recorded, not computed here: an A/B test's result on live traffic, attached by the experiment's decision.
    EXPERIMENT = "experiment", "A/B test result"


class EvidenceOrigin(models.TextChoices):
    """How an evaluation's figures were produced. Set by the service from what was run, never taken from a request field."""

    UPLOADED_FILE = "uploaded_file", "computed from an uploaded file"
    PROVIDER_RUN = "provider_run", "prompt run against the LLM provider"
    RECORDED_REPLAY = "recorded_replay", "replay of the outputs recorded in the eval set"
    # The outputs were typed in with the request: shown, never evidence for a gate.
    TYPED_REPLAY = "typed_replay", "replay of responses typed in with the request"
    EXPERIMENT = "experiment", "A/B test on live traffic"
    UNKNOWN = "unknown", "unknown"


class EvaluationStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Evaluation(models.Model):
    """One evaluation run of a model version or a prompt version; a worker claims it with a conditional UPDATE."""

    model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="evaluations")
    prompt_version = models.ForeignKey("registry.PromptVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="evaluations")
    kind = models.CharField(max_length=16, choices=EvaluationKind.choices)
    status = models.CharField(max_length=8, choices=EvaluationStatus.choices, default=EvaluationStatus.PENDING)
    # The authenticated user (or token owner) who asked for the run or recorded the result: the evidence's producer.
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    origin = models.CharField(max_length=16, choices=EvidenceOrigin.choices, default=EvidenceOrigin.UNKNOWN,
                              help_text="how the figures were produced; a typed-in replay never counts for a gate")
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    source = models.CharField(max_length=300, blank=True, help_text="what was evaluated: file name, eval set version, data version")
    input_sha256 = models.CharField(max_length=64, blank=True)
    data = models.BinaryField(blank=True, default=b"")  # the uploaded file (predictions, data) or recorded responses
    options = models.JSONField(default=dict, blank=True)  # column names, positive label, provider...
    metrics = models.JSONField(default=dict, blank=True)  # the gate figures: {"accuracy": 0.93, "demographic_parity_difference": 0.04}
    details = models.JSONField(default=dict, blank=True)  # confusion matrix, per-group table, violations, per-criterion summary

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            models.Index(fields=["model_version", "kind", "-finished_at"], name="registry_eval_mv_idx"),
            models.Index(fields=["prompt_version", "kind", "-finished_at"], name="registry_eval_pv_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(model_version__isnull=False, prompt_version__isnull=True) | Q(model_version__isnull=True, prompt_version__isnull=False),
                name="registry_evaluation_one_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} evaluation {self.pk} ({self.status})"


class EvaluationRow(models.Model):
    """One eval-set row of a prompt evaluation: the output and each criterion's result."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="rows")
    index = models.PositiveIntegerField()
    input = models.JSONField(default=dict, blank=True)
    output = models.TextField(blank=True)
    expected = models.TextField(blank=True)
    checks = models.JSONField(default=list, blank=True)  # [{"name", "type", "status", "value", "detail"}]
    latency_ms = models.FloatField(null=True, blank=True)
    cost_usd = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["evaluation_id", "index"]
        constraints = [models.UniqueConstraint(fields=["evaluation", "index"], name="registry_evalrow_unique")]

    def __str__(self) -> str:
        return f"row {self.index} of evaluation {self.evaluation_id}"


class DatasetSchema(models.Model):
    """The data-validation schema of a model (the format of registry/validation/schema.py): validates evaluation data and guards monitoring events."""

    model = models.OneToOneField("registry.RegisteredModel", on_delete=models.CASCADE, related_name="dataset_schema")
    schema = models.JSONField(default=dict)
    source = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    def __str__(self) -> str:
        return f"dataset schema of model {self.model_id}"
