"""Experiment tables: A/B tests of model or prompt versions on live traffic.

An Experiment tests variants (each a version of its model or prompt, with a share of the traffic)
against the first one, the control. Units (users, sessions...) are bucketed by a hash of the
experiment key and their id (experiments/stats.py), so a unit keeps its variant; its first
assignment is its Exposure, recorded once. Outcomes (conversions, revenue) arrive by unit id and
count for every experiment that exposed the unit before the outcome's time. Analyses are rows a
Celery worker claims and fills with a snapshot of the results; pages read the snapshots.

Canary rollouts: a RolloutPolicy (versioned), a Rollout per approved canary promotion, and its RolloutDecisions.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .canary import Action

KEY_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
key_validator = RegexValidator(KEY_PATTERN, "Use 1 to 100 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit.")


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft"
    RUNNING = "running"
    STOPPED = "stopped"


class Decision(models.TextChoices):
    NONE = "", "none"
    PROMOTED = "promoted"
    DISCARDED = "discarded"
    ITERATE = "iterate"


class MetricKind(models.TextChoices):
    PROPORTION = "proportion"  # a unit converted or not: the share of units
    MEAN = "mean"  # a number per unit: its sum of values (outcomes) or its mean (monitoring events)


class Direction(models.TextChoices):
    INCREASE = "increase"  # higher is better (conversion, revenue, judge score)
    DECREASE = "decrease"  # lower is better (latency, cost)


class GuardrailMetric(models.TextChoices):
    ERROR_RATE = "error_rate"
    LATENCY_P95 = "latency_p95"
    COST_PER_REQUEST = "cost_per_request"
    GUARDRAIL_RATE = "guardrail_rate"


class GuardrailState(models.TextChoices):
    """A guardrail's check of one variant against the control: only a significant degradation vetoes."""

    OK = "ok"  # within the allowed degradation
    WARNING = "warning"  # beyond it by the point estimates, not significantly: shown, no veto
    VIOLATED = "violated"  # significantly beyond it (one-sided, at the experiment's alpha): discard
    NOT_ENOUGH_DATA = "not_enough_data"


class EventMetric(models.TextChoices):
    """Metrics read from the monitoring events of each variant's version (never sent twice as outcomes)."""

    JUDGE_SCORE = "judge_score"
    THUMBS_UP = "thumbs_up"
    LATENCY_MS = "latency_ms"
    COST_USD = "cost_usd"


class SubjectNames:
    """Names of the model or prompt a row is about (it has a `model` and a `prompt` foreign key, one of them set)."""

    @property
    def subject_kind(self) -> str:
        return "model" if self.model_id else "prompt"

    @property
    def subject_name(self) -> str:
        return self.model.name if self.model_id else self.prompt.name

    @property
    def subject(self) -> str:
        """As the audit log names it: `model:<name>` or `prompt:<name>`."""
        return f"{self.subject_kind}:{self.subject_name}"


class Experiment(SubjectNames, models.Model):
    """One A/B test of a model's or a prompt's versions: the design, its state and its decision."""

    key = models.CharField(max_length=100, unique=True, validators=[key_validator])
    hypothesis = models.TextField()
    model = models.ForeignKey("registry.RegisteredModel", null=True, blank=True, on_delete=models.PROTECT, related_name="experiments")
    prompt = models.ForeignKey("registry.Prompt", null=True, blank=True, on_delete=models.PROTECT, related_name="experiments")
    status = models.CharField(max_length=16, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT)
    # The primary metric decides; secondary metrics are reported; guardrails may veto.
    primary_metric_name = models.CharField(max_length=100)
    primary_metric_kind = models.CharField(max_length=16, choices=MetricKind.choices)
    primary_metric_direction = models.CharField(max_length=16, choices=Direction.choices, default=Direction.INCREASE)
    secondary_metrics = models.JSONField(default=list, blank=True)  # [{"name", "kind", "direction"}]
    guardrails = models.JSONField(default=list, blank=True)  # [{"metric", "max_degradation", "relative"}]
    alpha = models.FloatField(default=0.05)
    power = models.FloatField(default=0.8)
    mde = models.FloatField(help_text="the smallest effect worth detecting, absolute: 0.02 = two points of a rate; metric units for a mean")
    baseline_rate = models.FloatField(null=True, blank=True, help_text="the control's expected rate (proportions)")
    baseline_std = models.FloatField(null=True, blank=True, help_text="the metric's standard deviation per unit (means)")
    sample_size_per_arm = models.PositiveIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    stop_reason = models.TextField(blank=True)
    decision = models.CharField(max_length=16, choices=Decision.choices, default=Decision.NONE, blank=True)
    decision_variant = models.CharField(max_length=50, blank=True)
    decision_reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    # The promotion request "Promote B" opened (an approver decides it in the registry).
    promotion = models.ForeignKey("registry.PromotionRequest", null=True, blank=True, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(model__isnull=False, prompt__isnull=True) | Q(model__isnull=True, prompt__isnull=False),
                                   name="experiments_experiment_one_subject"),
            models.CheckConstraint(condition=Q(status__in=ExperimentStatus.values), name="experiments_experiment_status_valid"),
            models.CheckConstraint(condition=Q(alpha__gt=0, alpha__lt=1, power__gt=0, power__lt=1), name="experiments_experiment_alpha_power"),
            models.CheckConstraint(condition=~Q(mde=0), name="experiments_experiment_mde_nonzero"),
        ]
        indexes = [models.Index(fields=["status", "-created_at"], name="experiments_status_idx")]

    def __str__(self) -> str:
        return self.key

    def days_running(self, now=None) -> float | None:
        """Days from the start to the stop (or to now while running); None before the start."""
        if self.started_at is None:
            return None
        end = self.stopped_at or now or timezone.now()
        return max(0.0, (end - self.started_at).total_seconds() / 86400)


class Variant(models.Model):
    """One arm: a version of the experiment's model or prompt, its traffic weight and its bucket range.

    The first (position 0) is the control. Buckets [bucket_start, bucket_end) are contiguous in
    position order (stats.bucket_ranges), fixed at creation: a unit never changes variant.
    """

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=50)
    weight = models.DecimalField(max_digits=5, decimal_places=2, help_text="percent of the traffic")
    model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    prompt_version = models.ForeignKey("registry.PromptVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    bucket_start = models.PositiveIntegerField()
    bucket_end = models.PositiveIntegerField()

    class Meta:
        ordering = ["experiment_id", "position"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "name"], name="experiments_variant_name_unique"),
            models.UniqueConstraint(fields=["experiment", "position"], name="experiments_variant_position_unique"),
            models.CheckConstraint(
                condition=Q(model_version__isnull=False, prompt_version__isnull=True) | Q(model_version__isnull=True, prompt_version__isnull=False),
                name="experiments_variant_one_version",
            ),
            models.CheckConstraint(condition=Q(bucket_start__lte=models.F("bucket_end"), bucket_end__lte=10_000), name="experiments_variant_buckets"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment_id}:{self.name}"

    @property
    def version(self):
        """The ModelVersion or PromptVersion this arm serves."""
        return self.model_version if self.model_version_id else self.prompt_version

    @property
    def is_control(self) -> bool:
        return self.position == 0


class Exposure(models.Model):
    """A unit's first assignment in an experiment: once per unit, never updated. 10M rows per experiment
    must stay cheap, so the row is narrow and its indexes are exactly what assignment and analysis read."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+", db_index=False)
    unit_id = models.CharField(max_length=200)
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="+", db_index=False)
    bucket = models.PositiveSmallIntegerField()
    exposed_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Assignment inserts with ON CONFLICT (experiment, unit_id) DO NOTHING: a unit is exposed once.
            models.UniqueConstraint(fields=["experiment", "unit_id"], name="experiments_exposure_once"),
        ]
        indexes = [
            # The analysis joins each outcome (and event) to its unit's exposure: with the variant and the time
            # in the index, that join never reads the table (SQLite has no INCLUDE, so they are key columns).
            models.Index(fields=["experiment", "unit_id", "variant", "exposed_at"], name="experiments_exposure_join_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.unit_id} in {self.experiment_id}"


class ExposureCount(models.Model):
    """Units exposed per variant and UTC day, kept by assignment in the same transaction as the exposures
    (from the rows the INSERT really stored). The analysis reads these few rows instead of counting
    10 million exposures each time; `exposure_counts_rebuild` recounts them from the exposures."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="+")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    units = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["variant", "day"], name="experiments_exposurecount_unique")]

    def __str__(self) -> str:
        return f"{self.units} units of variant {self.variant_id} on {self.day}"


class Outcome(models.Model):
    """A business outcome of a unit (a conversion, revenue...). Not tied to an experiment: it counts for
    every experiment that exposed its unit at or before its timestamp."""

    outcome_id = models.CharField(max_length=100, null=True, blank=True, unique=True)  # idempotency key, optional
    unit_id = models.CharField(max_length=200)
    metric = models.CharField(max_length=100)
    value = models.FloatField()
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The analysis reads a metric's outcomes in unit order; the value in the index spares the table.
            models.Index(fields=["metric", "unit_id", "timestamp", "value"], name="experiments_outcome_unit_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.metric}={self.value} of {self.unit_id}"


class AnalysisStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Recommendation(models.TextChoices):
    PROMOTE = "promote"
    KEEP_RUNNING = "keep_running"
    ITERATE = "iterate"
    DISCARD = "discard"
    INVESTIGATE = "investigate"  # sample ratio mismatch: the results cannot be trusted


class Analysis(models.Model):
    """One analysis run of an experiment: a row a worker claims with a conditional UPDATE, then the results
    snapshot (`results`) and the summary columns the list page reads."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="analyses")
    status = models.CharField(max_length=16, choices=AnalysisStatus.choices, default=AnalysisStatus.PENDING)
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    results = models.JSONField(default=dict, blank=True)
    units_total = models.BigIntegerField(default=0)
    leading_variant = models.CharField(max_length=50, blank=True)
    recommendation = models.CharField(max_length=16, choices=Recommendation.choices, blank=True)
    significant = models.BooleanField(null=True, blank=True)
    srm_flagged = models.BooleanField(default=False)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            models.Index(fields=["experiment", "status", "-finished_at"], name="experiments_analysis_done_idx"),
            models.Index(fields=["status", "requested_at"], name="experiments_analysis_wait_idx"),
        ]

    def __str__(self) -> str:
        return f"analysis {self.pk} of {self.experiment_id} ({self.status})"


# --- canary rollouts -----------------------------------------------------------------------------------------------------


class RolloutStatus(models.TextChoices):
    RUNNING = "running"
    PAUSED = "paused"  # holds its share; only a person (Resume, Advance, Roll back) or a rollback trigger moves it
    ROLLED_BACK = "rolled_back"
    COMPLETED = "completed"


ACTIVE_ROLLOUT = (RolloutStatus.RUNNING, RolloutStatus.PAUSED)
POLICY_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
policy_name_validator = RegexValidator(POLICY_NAME_PATTERN, "Use 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit.")


class RolloutPolicy(models.Model):
    """One version of a named rollout policy: ordered stages and triggers (experiments/canary.py reads them).

    Never edited: a change is a new version of the name; a rollout keeps the version it started with. The policy
    "default" (version 1 = the product's defaults) is created on first use.
    """

    name = models.CharField(max_length=100, validators=[policy_name_validator])
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True)  # what this version changes, and why
    stages = models.JSONField()  # [{"name", "traffic_percent", "min_minutes", "max_minutes", "gate": {"name", "threshold"} | null, "manual"}]
    triggers = models.JSONField()  # [{"metric", "threshold", "relative", "action"}]
    business_metric = models.CharField(max_length=100, default="conversion")  # the outcome metric of business_metric_not_worse
    gate_min_requests = models.PositiveIntegerField(default=100)  # per side, behind a gate's figures
    trigger_min_requests = models.PositiveIntegerField(default=20)  # behind a trigger's figures
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="experiments_rolloutpolicy_version_unique"),
            models.CheckConstraint(condition=Q(version__gte=1, gate_min_requests__gte=1, trigger_min_requests__gte=1),
                                   name="experiments_rolloutpolicy_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class Rollout(SubjectNames, models.Model):
    """A canary of one version of a model (into production) or a prompt (into prod), started by its approved promotion.

    Units are routed by stats.bucket(salt, unit id): the candidate serves the lowest `traffic_percent` % of buckets,
    the baseline (the stage's holder when the rollout started) the rest. The controller moves `stage_index` through
    the policy's stages; the promotion completes (the stage moves) or is rolled back through the registry.
    """

    promotion = models.OneToOneField("registry.PromotionRequest", on_delete=models.PROTECT, related_name="rollout")
    model = models.ForeignKey("registry.RegisteredModel", null=True, blank=True, on_delete=models.PROTECT, related_name="rollouts")
    prompt = models.ForeignKey("registry.Prompt", null=True, blank=True, on_delete=models.PROTECT, related_name="rollouts")
    candidate_model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    candidate_prompt_version = models.ForeignKey("registry.PromptVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # The holder of the stage when the rollout started; None if the stage was empty (every comparison then lacks data).
    baseline_model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    baseline_prompt_version = models.ForeignKey("registry.PromptVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    policy = models.ForeignKey(RolloutPolicy, on_delete=models.PROTECT, related_name="rollouts")
    status = models.CharField(max_length=16, choices=RolloutStatus.choices, default=RolloutStatus.RUNNING)
    stage_index = models.PositiveSmallIntegerField(default=0)
    stage_started_at = models.DateTimeField()
    traffic_percent = models.DecimalField(max_digits=5, decimal_places=2, help_text="the candidate's share now (0 after a rollback)")
    salt = models.CharField(max_length=50)
    paused_reason = models.TextField(blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_tick_at = models.DateTimeField(null=True, blank=True)
    last_numbers = models.JSONField(default=dict, blank=True)  # the latest evaluation (canary.Evaluation.as_dict and its window)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(model__isnull=False, prompt__isnull=True, candidate_model_version__isnull=False, candidate_prompt_version__isnull=True,
                            baseline_prompt_version__isnull=True)
                | Q(model__isnull=True, prompt__isnull=False, candidate_model_version__isnull=True, candidate_prompt_version__isnull=False,
                    baseline_model_version__isnull=True),
                name="experiments_rollout_one_subject",
            ),
            models.CheckConstraint(condition=Q(status__in=RolloutStatus.values), name="experiments_rollout_status_valid"),
            models.CheckConstraint(condition=Q(traffic_percent__gte=0, traffic_percent__lte=100), name="experiments_rollout_traffic_percent"),
            # One rollout at a time per model and per prompt.
            models.UniqueConstraint(fields=["model"], condition=Q(status__in=["running", "paused"]), name="experiments_one_active_rollout_per_model"),
            models.UniqueConstraint(fields=["prompt"], condition=Q(status__in=["running", "paused"]), name="experiments_one_active_rollout_per_prompt"),
        ]
        indexes = [models.Index(fields=["status", "-started_at"], name="experiments_rollout_status_idx")]

    def __str__(self) -> str:
        return f"rollout {self.pk} of {self.subject} v{self.candidate.version}"

    @property
    def candidate(self):
        """The ModelVersion or PromptVersion rolled out."""
        return self.candidate_model_version if self.model_id else self.candidate_prompt_version

    @property
    def baseline(self):
        """The ModelVersion or PromptVersion it is compared with (the stage's holder at the start), or None."""
        return self.baseline_model_version if self.model_id else self.baseline_prompt_version

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_ROLLOUT


class RolloutDecision(models.Model):
    """One decision of a rollout, by the controller (actor None) or a person, with the numbers it read. Holds are
    stored only when their reason changes, not every minute."""

    rollout = models.ForeignKey(Rollout, on_delete=models.CASCADE, related_name="decisions")
    seq = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    action = models.CharField(max_length=16, choices=[(a.value, a.value) for a in Action])
    from_stage = models.PositiveSmallIntegerField(null=True, blank=True)
    to_stage = models.PositiveSmallIntegerField(null=True, blank=True)
    traffic_percent = models.DecimalField(max_digits=5, decimal_places=2, help_text="the candidate's share after the decision")
    numbers = models.JSONField(default=dict, blank=True)
    reason = models.TextField()
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["rollout_id", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["rollout", "seq"], name="experiments_rolloutdecision_seq_unique"),
            models.CheckConstraint(condition=Q(action__in=[a.value for a in Action]), name="experiments_rolloutdecision_action_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.rollout_id}#{self.seq} {self.action}"
