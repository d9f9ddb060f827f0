"""Cost tables: the price of LLM tokens over time, and spend budgets with their alerts."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from .notifications import NotificationStatus


class Price(models.Model):
    """USD per token for LLM model names matching `pattern` (an exact name, or a glob such as
    `gpt-4o-mini*`), in force from `effective_from` until a later entry for the same pattern."""

    pattern = models.CharField(max_length=200)
    input_per_token = models.FloatField()
    output_per_token = models.FloatField()
    cached_input_per_token = models.FloatField(null=True, blank=True, help_text="empty: cached input tokens cost the input price")
    reasoning_per_token = models.FloatField(null=True, blank=True, help_text="empty: reasoning tokens cost the output price")
    cache_creation_per_token = models.FloatField(null=True, blank=True, help_text="empty: tokens written to a cache cost the input price")
    # Long context (LiteLLM's *_above_200k_tokens): above this many input tokens in one request, the long-context prices apply.
    long_context_threshold = models.PositiveIntegerField(null=True, blank=True, help_text="empty: one price whatever the length")
    long_context_input_per_token = models.FloatField(null=True, blank=True)
    long_context_output_per_token = models.FloatField(null=True, blank=True)
    long_context_cached_input_per_token = models.FloatField(null=True, blank=True)
    long_context_cache_creation_per_token = models.FloatField(null=True, blank=True)
    effective_from = models.DateField()
    source = models.CharField(max_length=50, blank=True, help_text="default, litellm, or who entered it")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["pattern", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["pattern", "effective_from"], name="monitoring_price_unique"),
            models.CheckConstraint(condition=models.Q(input_per_token__gte=0, output_per_token__gte=0), name="monitoring_price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.pattern} from {self.effective_from}"


class BudgetScope(models.TextChoices):
    ALL = "all", "all spend"
    MODEL = "model", "one model"
    PROMPT = "prompt", "one prompt"
    TEAM = "team", "a team (a list of models and prompts)"


class BudgetPeriod(models.TextChoices):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


class Budget(models.Model):
    """A spend limit per day, week or month (UTC) for all spend, one model, one prompt or a team.
    Alerts fire at each share in `thresholds` (e.g. 0.8 and 1.0), each once per period."""

    name = models.CharField(max_length=200, unique=True)
    scope = models.CharField(max_length=8, choices=BudgetScope.choices, default=BudgetScope.ALL)
    members = models.JSONField(default=list, blank=True, help_text='["prompt:summarize", "model:fraud-detector"]')
    period = models.CharField(max_length=8, choices=BudgetPeriod.choices, default=BudgetPeriod.DAY)
    amount_usd = models.FloatField()
    thresholds = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    webhook_url = models.URLField(blank=True)
    webhook_secret = models.CharField(max_length=200, blank=True)
    emails = models.CharField(max_length=1000, blank=True, help_text="comma-separated")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=models.Q(amount_usd__gt=0), name="monitoring_budget_positive")]

    def __str__(self) -> str:
        return f"{self.name} ({self.amount_usd} USD per {self.period})"


class BudgetAlert(models.Model):
    """A budget's spend crossed one of its shares in one period: recorded (and notified) once."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()
    threshold = models.FloatField()
    spent_usd = models.FloatField()
    forecast_usd = models.FloatField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)
    message = models.TextField()
    # Delivery (monitoring/services/notifications.py): notified_at is when it went through (never set on a failure);
    # a failed try is retried with backoff up to MAX_ATTEMPTS times, each try recorded as a NotificationAttempt.
    notified_at = models.DateTimeField(null=True, blank=True)
    notification_error = models.TextField(blank=True)
    notification_status = models.CharField(max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    notification_attempts = models.PositiveSmallIntegerField(default=0)
    next_notification_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [models.UniqueConstraint(fields=["budget", "period_start", "threshold"], name="monitoring_budget_alert_once")]

    def __str__(self) -> str:
        return f"{self.budget_id} at {self.threshold:.0%} of the period from {self.period_start:%Y-%m-%d}"
