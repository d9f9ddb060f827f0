"""Operations tables: per-minute and per-hour roll-ups of the event stream, and one row per version for its
whole life, kept incrementally, and model performance per window once labels arrive."""

from datetime import UTC, datetime

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Granularity(models.TextChoices):
    MINUTE = "minute"
    HOUR = "hour"
    LIFETIME = "lifetime"  # one row per version, everything it ever served (bucket LIFETIME_BUCKET): what /metrics reads


LIFETIME_BUCKET = datetime(1970, 1, 1, tzinfo=UTC)


# Rollup's counter columns, in column order: what an UPDATE adds and an INSERT sets. The int ones are
# summed as float64 (exact below 2**53) and written back as ints.
COUNTERS = (
    "requests", "errors", "latency_sum", "ttft_count", "ttft_sum", "token_requests", "input_tokens", "output_tokens", "cached_tokens",
    "reasoning_tokens", "cost_usd", "cost_requests", "pricing_missing", "guardrail_known", "guardrail_triggered", "feedback_up",
    "feedback_down", "judge_count", "judge_sum", "faithfulness_count", "faithfulness_sum", "cache_creation_tokens",
)
FLOAT_COUNTERS = {"latency_sum", "ttft_sum", "cost_usd", "judge_sum", "faithfulness_sum"}


class Rollup(models.Model):
    """The events of one model or prompt version in one minute or hour, or over its whole life: counts, sums and sketches.

    Kept incrementally by `services.rollups_update` (new events are added to their buckets, late
    ones too); pages, alerts, /metrics and the canary controller read these rows, never raw events.
    Latency and time-to-first-token percentiles come from mergeable sketches (monitoring/sketch.py,
    relative error at most 1 %), so an hour's P95 is the merge of its minutes'.
    """

    model_version = models.ForeignKey("registry.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False)
    prompt_version = models.ForeignKey("registry.PromptVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False)
    granularity = models.CharField(max_length=8, choices=Granularity.choices)
    bucket = models.DateTimeField()
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    latency_sum = models.FloatField(default=0)
    latency_sketch = models.BinaryField(default=b"")
    ttft_count = models.PositiveBigIntegerField(default=0)
    ttft_sum = models.FloatField(default=0)
    ttft_sketch = models.BinaryField(default=b"")
    token_requests = models.PositiveBigIntegerField(default=0)  # requests that reported tokens
    input_tokens = models.PositiveBigIntegerField(default=0)
    output_tokens = models.PositiveBigIntegerField(default=0)
    cached_tokens = models.PositiveBigIntegerField(default=0)
    reasoning_tokens = models.PositiveBigIntegerField(default=0)
    cost_usd = models.FloatField(default=0)
    cost_requests = models.PositiveBigIntegerField(default=0)  # requests with a known cost
    pricing_missing = models.PositiveBigIntegerField(default=0)  # requests with tokens but no price
    guardrail_known = models.PositiveBigIntegerField(default=0)
    guardrail_triggered = models.PositiveBigIntegerField(default=0)
    feedback_up = models.PositiveBigIntegerField(default=0)
    feedback_down = models.PositiveBigIntegerField(default=0)
    judge_count = models.PositiveBigIntegerField(default=0)
    judge_sum = models.FloatField(default=0)
    faithfulness_count = models.PositiveBigIntegerField(default=0)
    faithfulness_sum = models.FloatField(default=0)
    # Of the input tokens, those written to a prompt cache. A database default too, so that a worker still running the
    # release before this column (during an upgrade) can insert its rows.
    cache_creation_tokens = models.PositiveBigIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "granularity", "bucket"], condition=Q(model_version__isnull=False), name="monitoring_rollup_mv_unique"),
            models.UniqueConstraint(fields=["prompt_version", "granularity", "bucket"], condition=Q(prompt_version__isnull=False), name="monitoring_rollup_pv_unique"),
            models.CheckConstraint(
                condition=Q(model_version__isnull=False, prompt_version__isnull=True) | Q(model_version__isnull=True, prompt_version__isnull=False),
                name="monitoring_rollup_one_subject",
            ),
        ]
        indexes = [models.Index(fields=["granularity", "bucket"], name="monitoring_rollup_time_idx")]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket:%Y-%m-%d %H:%M} ({self.requests} requests)"


class RollupCursor(models.Model):
    """How far the roll-ups have read the event stream (the last Event id folded in)."""

    name = models.CharField(max_length=50, unique=True)
    last_event_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} at event {self.last_event_id}"


class PerformanceWindow(models.Model):
    """Accuracy, F1 and AUC of a model version over a window of labelled events, beside its baseline
    (the metrics it was registered with). A drop of more than 5 % is concept drift."""

    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="+")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    events = models.PositiveIntegerField(default=0)  # all of the version's events in the window
    labelled = models.PositiveIntegerField(default=0)  # of them, those with a label and a prediction
    # Event time to label time, seconds (None: no label with a known time in the window).
    label_delay_p50_s = models.FloatField(null=True, blank=True)
    label_delay_p95_s = models.FloatField(null=True, blank=True)
    accuracy = models.FloatField(null=True, blank=True)
    f1 = models.FloatField(null=True, blank=True)
    roc_auc = models.FloatField(null=True, blank=True)
    baseline = models.JSONField(default=dict, blank=True)  # {"accuracy": .., "f1": .., "roc_auc": ..} from the version's metrics
    drops = models.JSONField(default=dict, blank=True)  # relative drop per metric, e.g. {"accuracy": 0.08}
    note = models.CharField(max_length=300, blank=True)
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model_version", "window_start", "window_end"], name="monitoring_perf_window_unique")]
        ordering = ["-window_end"]

    def __str__(self) -> str:
        return f"performance of version {self.model_version_id} to {self.window_end:%Y-%m-%d %H:%M}"

    @property
    def labelled_share(self) -> float | None:
        return self.labelled / self.events if self.events else None
