"""The delivery of notifications: every try of every channel, for alert rules' changes of state and budget alerts."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "pending"
    RETRYING = "retrying", "retrying"
    DELIVERED = "delivered", "delivered"
    FAILED = "failed", "failed"  # gave up: the attempts ran out, or the target can never work (a refused URL)


class NotificationChannel(models.TextChoices):
    WEBHOOK = "webhook", "webhook"
    EMAIL = "email", "e-mail"


class NotificationAttempt(models.Model):
    """One try of one channel of one notification: when, whether it went through, and why not."""

    alert_event = models.ForeignKey("monitoring.AlertEvent", null=True, blank=True, on_delete=models.CASCADE, related_name="attempts")
    budget_alert = models.ForeignKey("monitoring.BudgetAlert", null=True, blank=True, on_delete=models.CASCADE, related_name="attempts")
    attempt = models.PositiveSmallIntegerField()
    channel = models.CharField(max_length=8, choices=NotificationChannel.choices)
    at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(alert_event__isnull=False, budget_alert__isnull=True) | models.Q(alert_event__isnull=True, budget_alert__isnull=False),
                name="monitoring_attempt_one_notification",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} attempt {self.attempt}: {'ok' if self.ok else self.error}"
