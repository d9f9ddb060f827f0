"""Monitoring tables: the served-request stream, columnar feature batches, references and drift reports.

Request-level fields go to one narrow, indexed row per event. Feature values
are NOT one row per value: each ingested batch stores one array per column in
a blob (see columnar.py), so a drift job over a million rows reads a few blobs.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .notifications import NotificationAttempt, NotificationChannel, NotificationStatus


class Event(models.Model):
    """One served request of a model version (or a prompt version)."""

    event_id = models.CharField(max_length=100, unique=True)
    # No index of their own: the (version, timestamp) indexes below lead with them, and each index
    # costs time on every one of the 20,000 rows a second that ingestion writes.
    model_version = models.ForeignKey(
        "registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    prompt_version = models.ForeignKey(
        "registry.PromptVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    timestamp = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    latency_ms = models.FloatField()
    error = models.BooleanField(default=False)
    unit_id = models.CharField(max_length=200, blank=True)
    prediction = models.JSONField(null=True, blank=True)
    label = models.JSONField(null=True, blank=True)
    labelled_at = models.DateTimeField(null=True, blank=True)  # when the label was (last) stored: the label delay is from timestamp to this
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cached_tokens = models.PositiveIntegerField(null=True, blank=True)  # of the input tokens, read from a cache
    reasoning_tokens = models.PositiveIntegerField(null=True, blank=True)  # of the output tokens, spent reasoning
    cache_creation_tokens = models.PositiveIntegerField(null=True, blank=True)  # of the input tokens, written to a cache
    llm_model = models.CharField(max_length=200, blank=True)  # the LLM that served it (prices are looked up by it)
    cost_usd = models.FloatField(null=True, blank=True)
    pricing_missing = models.BooleanField(default=False)  # tokens but no price in force: cost is NULL, never 0
    ttft_ms = models.FloatField(null=True, blank=True)
    guardrail_triggered = models.BooleanField(null=True, blank=True)
    feedback = models.SmallIntegerField(null=True, blank=True)
    judge_score = models.FloatField(null=True, blank=True)
    faithfulness = models.FloatField(null=True, blank=True)
    # Mirrored to this version in a canary's shadow stage, its answer served to nobody: a rollout's checks read it,
    # the roll-ups (and so the operations, cost and budget figures) do not.
    shadow = models.BooleanField(default=False)
    batch = models.ForeignKey("FeatureBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        indexes = [
            # Partial: an event belongs to a model OR a prompt version, and a NULL entry in the
            # other index would be written for nothing. `version_id = x` implies NOT NULL, so
            # SQLite and PostgreSQL both use them for the per-version window queries.
            models.Index(fields=["model_version", "timestamp"], name="monitoring_event_mv_ts_idx", condition=Q(model_version__isnull=False)),
            models.Index(fields=["prompt_version", "timestamp"], name="monitoring_event_pv_ts_idx", condition=Q(prompt_version__isnull=False)),
            # The quality page's lowest judge scores: read in score order, stopping at 20 (judged events only).
            models.Index(fields=["prompt_version", "judge_score"], name="monitoring_event_judge_idx", condition=Q(judge_score__isnull=False)),
            # Label drift reads the labels that arrived in a window (labels sent after their events).
            models.Index(fields=["model_version", "labelled_at"], name="monitoring_event_labelled_idx", condition=Q(labelled_at__isnull=False)),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(model_version__isnull=False, prompt_version__isnull=True) | Q(model_version__isnull=True, prompt_version__isnull=False),
                name="monitoring_event_one_subject",
            ),
            models.CheckConstraint(condition=Q(latency_ms__gte=0), name="monitoring_event_latency_positive"),
            models.CheckConstraint(condition=Q(feedback__isnull=True) | Q(feedback__in=[-1, 1]), name="monitoring_event_feedback_sign"),
        ]

    def __str__(self) -> str:
        return self.event_id


class FeatureBatch(models.Model):
    """The feature values (and predictions) of one ingested batch of one model version, column by column.

    `data` is a columnar blob (columnar.py): `__ts__` (epoch seconds), `__prediction__` when
    given, and one array per feature (float64 for numbers, str for categories;
    NaN / empty string where an event left the feature out).
    """

    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField(default=timezone.now)
    first_ts = models.DateTimeField()
    last_ts = models.DateTimeField()
    rows = models.PositiveIntegerField()
    columns = models.JSONField(default=dict)  # {name: "numeric" | "categorical"}
    data = models.BinaryField()

    class Meta:
        indexes = [models.Index(fields=["model_version", "first_ts", "last_ts"], name="monitoring_batch_window_idx")]

    def __str__(self) -> str:
        return f"batch {self.pk} of version {self.model_version_id} ({self.rows} rows)"


class FeatureNames(models.Model):
    """The distinct feature names ever stored for a model version (the union of its FeatureBatch columns),
    kept so ingestion can hold a version to MLOPS_MAX_FEATURES without reading every batch."""

    model_version = models.OneToOneField("registry.ModelVersion", on_delete=models.CASCADE, primary_key=True, related_name="+")
    names = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"{len(self.names)} feature names of version {self.model_version_id}"


class ReferenceSource(models.TextChoices):
    UPLOAD = "upload"
    WINDOW = "window"


class Reference(models.Model):
    """The distribution a model version is compared with, prepared once when it is set.

    `profile` is a columnar blob (columnar.py) with, per numeric column, the sorted finite
    values; per categorical column, the categories and their counts; and the
    missing share of each column (in `columns`).
    """

    model_version = models.OneToOneField("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=16, choices=ReferenceSource.choices)
    description = models.CharField(max_length=300, blank=True)
    rows = models.PositiveIntegerField()
    columns = models.JSONField(default=dict)  # {name: {"kind": ..., "missing": share, "n": count}}
    profile = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"reference of version {self.model_version_id} ({self.rows} rows)"


class ReportStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class DriftReport(models.Model):
    """One drift report of a model version over a time window. Pages read these rows; nothing is computed on request."""

    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=ReportStatus.choices, default=ReportStatus.PENDING)
    requested_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0)
    drifted_columns = models.PositiveIntegerField(default=0)
    max_psi = models.FloatField(null=True, blank=True)
    results = models.JSONField(default=list, blank=True)  # one dict per column (drift.ColumnDrift)
    # Upstream drift: the window checked against the model's dataset schema (registry/validation/), when it has one.
    schema_check = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-window_end", "-id"]
        indexes = [models.Index(fields=["model_version", "-window_end"], name="monitoring_report_mv_idx")]

    def __str__(self) -> str:
        return f"drift of version {self.model_version_id} {self.window_start:%Y-%m-%d %H:%M} to {self.window_end:%H:%M} ({self.status})"


class AlertState(models.TextChoices):
    OK = "ok"
    WARNING = "warning"
    ALERT = "alert"


class AlertMetric(models.TextChoices):
    FEATURE_PSI = "feature_psi", "largest feature PSI"
    PREDICTION_PSI = "prediction_psi", "prediction PSI"
    SCHEMA_VIOLATIONS = "schema_violations", "schema violations (new, missing or invalid columns)"
    DRIFTED_FEATURES = "drifted_features", "number of drifted features"
    NULL_SHARE_INCREASE = "null_share_increase", "largest rise of a feature's missing share over the reference"
    LABEL_PSI = "label_psi", "label PSI"
    # Operations (from the roll-ups over the rule's window) and performance (labelled windows).
    ACCURACY_DROP = "accuracy_drop", "relative drop of accuracy from the baseline"
    F1_DROP = "f1_drop", "relative drop of F1 from the baseline"
    AUC_DROP = "auc_drop", "relative drop of ROC AUC from the baseline"
    LATENCY_P95 = "latency_p95_ms", "latency P95 (ms)"
    THROUGHPUT_SHARE = "throughput_share", "throughput as a share of capacity (parameter: requests/s)"
    ERROR_RATE = "error_rate", "error rate"
    JUDGE_SCORE = "judge_score_avg", "average judge score"
    FAITHFULNESS = "faithfulness_avg", "average faithfulness"
    GUARDRAIL_RATE = "guardrail_rate", "guardrail trigger rate"
    TOKENS_RATIO = "tokens_ratio", "tokens per request / expected (parameter: expected tokens)"
    THUMBS_UP_SHARE = "thumbs_up_share", "thumbs-up share of feedback"
    TTFT_P95 = "ttft_p95_ms", "time to first token P95 (ms)"


class Comparison(models.TextChoices):
    GT = ">", "above"
    GE = ">=", "at or above"
    LT = "<", "below"
    LE = "<=", "at or below"


class AlertAction(models.TextChoices):
    """What a rule does by itself when it enters the alert state, besides notifying."""

    NONE = "none", "notify only"
    ROLLBACK_PRODUCTION = "rollback_production", "roll production back"


class ActionStatus(models.TextChoices):
    """What became of a rule's action at one change of state (blank: no action was due)."""

    NONE = "", "no action"
    DONE = "done", "done"
    REFUSED = "refused", "refused"


class AlertRule(models.Model):
    """A metric of a model's drift reports against a threshold (and an optional warning threshold).

    The state moves between ok, warning and alert; each move is an AlertEvent and
    one notification (webhook and e-mail), never one per evaluation. `action`
    (approvers; off by default) may roll the model's production (a prompt's prod)
    back when the rule enters the alert state (services/alerts.py).
    """

    name = models.CharField(max_length=200)
    model = models.ForeignKey("registry.RegisteredModel", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    prompt = models.ForeignKey("registry.Prompt", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    metric = models.CharField(max_length=32, choices=AlertMetric.choices)
    window_minutes = models.PositiveIntegerField(default=60, help_text="operations metrics: the window the value is computed over")
    parameter = models.FloatField(null=True, blank=True, help_text="capacity in requests/s, or expected tokens per request")
    comparison = models.CharField(max_length=2, choices=Comparison.choices, default=Comparison.GT)
    threshold = models.FloatField()
    warning_threshold = models.FloatField(null=True, blank=True)
    enabled = models.BooleanField(default=True)
    action = models.CharField(max_length=32, choices=AlertAction.choices, default=AlertAction.NONE)
    action_set_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action_set_at = models.DateTimeField(null=True, blank=True)
    webhook_url = models.URLField(blank=True)
    webhook_secret = models.CharField(max_length=200, blank=True)
    emails = models.CharField(max_length=1000, blank=True, help_text="comma-separated")
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.OK)
    state_since = models.DateTimeField(default=timezone.now)
    last_value = models.FloatField(null=True, blank=True)
    silenced_until = models.DateTimeField(null=True, blank=True)
    # When the running silence began: a silence renewed before it ends continues it, and the
    # approver rule for long silences looks at the whole (services/alerts.py: alert_silence).
    silenced_since = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["model", "metric", "name"], name="monitoring_alertrule_unique"),
            models.UniqueConstraint(fields=["prompt", "metric", "name"], name="monitoring_alertrule_prompt_unique"),
            models.CheckConstraint(condition=Q(model__isnull=False) | Q(prompt__isnull=False), name="monitoring_alertrule_subject"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (model {self.model_id})" if self.model_id else f"{self.name} (prompt {self.prompt_id})"


class AlertEvent(models.Model):
    """One change of an alert rule's state, with the value that caused it and whether the notification went out."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    from_state = models.CharField(max_length=16, choices=AlertState.choices)
    to_state = models.CharField(max_length=16, choices=AlertState.choices)
    value = models.FloatField(null=True, blank=True)
    message = models.TextField()
    report = models.ForeignKey(DriftReport, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    silenced = models.BooleanField(default=False)
    # Delivery (monitoring/services/notifications.py): notified_at is when it went through (never set on a failure);
    # a failed try is retried with backoff up to MAX_ATTEMPTS times, each try recorded as a NotificationAttempt.
    notified_at = models.DateTimeField(null=True, blank=True)
    notification_error = models.TextField(blank=True)
    notification_status = models.CharField(max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    notification_attempts = models.PositiveSmallIntegerField(default=0)
    next_notification_at = models.DateTimeField(null=True, blank=True)
    # The rule's action at this change (entering the alert state): done or refused, and what happened in words.
    action_status = models.CharField(max_length=16, choices=ActionStatus.choices, default=ActionStatus.NONE, blank=True)
    action_detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.rule.name}: {self.from_state} -> {self.to_state}"


from .costs import Budget, BudgetAlert, BudgetPeriod, BudgetScope, Price  # noqa: E402
from .operations import LIFETIME_BUCKET, Granularity, PerformanceWindow, Rollup, RollupCursor  # noqa: E402

__all__ = [
    "ActionStatus", "AlertAction", "AlertEvent", "AlertMetric", "AlertRule", "AlertState", "Budget", "BudgetAlert", "BudgetPeriod", "BudgetScope", "Comparison",
    "DriftReport", "Event", "FeatureBatch", "FeatureNames", "Granularity", "LIFETIME_BUCKET", "NotificationAttempt", "NotificationChannel", "NotificationStatus",
    "PerformanceWindow", "Price", "Reference", "ReferenceSource",
    "ReportStatus", "Rollup", "RollupCursor",
]
