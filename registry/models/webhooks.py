"""Registry webhooks: where a model's or a prompt's changes are posted (signed), and every delivery with its tries."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class WebhookEvent(models.TextChoices):
    """What a webhook can subscribe to. `ping` is the test a person sends from the page; no change fires it."""

    VERSION_REGISTERED = "version_registered"
    PROMOTION_REQUESTED = "promotion_requested"
    PROMOTION_APPROVED = "promotion_approved"
    PROMOTION_REJECTED = "promotion_rejected"
    PROMOTION_COMPLETED = "promotion_completed"  # a canary's rollout completed: the stage moved
    ROLLED_BACK = "rolled_back"
    GATES_FAILED = "gates_failed"
    ENVIRONMENT_MOVED = "environment_moved"  # prompts: an environment runs another version
    PING = "ping"


class WebhookFormat(models.TextChoices):
    """How a delivery is posted. `generic`: our JSON, signed with the secret (HMAC). `github_dispatch`: GitHub's
    repository_dispatch call (`{"event_type", "client_payload"}`, the secret sent as the bearer token), so an approval
    starts a GitHub Actions workflow with no receiver in between."""

    GENERIC = "generic"
    GITHUB_DISPATCH = "github_dispatch"


# The events a webhook may subscribe to (all but the test ping).
SUBSCRIBABLE_EVENTS = [e for e in WebhookEvent.values if e != WebhookEvent.PING]


class RegistryWebhook(models.Model):
    """A URL that receives a signed POST for each chosen event of one model or one prompt. Set by approvers.

    `secret` signs the body (HMAC-SHA256); it is written, never read back through the API or the pages.
    """

    model = models.ForeignKey("registry.RegisteredModel", null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks")
    prompt = models.ForeignKey("registry.Prompt", null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks")
    url = models.CharField(max_length=1000)
    secret = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list)
    format = models.CharField(max_length=20, choices=WebhookFormat.choices, default=WebhookFormat.GENERIC)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(model__isnull=False, prompt__isnull=True) | Q(model__isnull=True, prompt__isnull=False),
                name="registry_webhook_one_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"webhook #{self.pk} of {self.subject}"

    @property
    def subject(self) -> str:
        return f"model:{self.model.name}" if self.model_id else f"prompt:{self.prompt.name}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"  # not sent yet, or a try failed and another is planned (`next_try_at`)
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up: the tries ran out, or the answer can never change (a 4xx, a refused URL)


class WebhookDelivery(models.Model):
    """One event to post to one webhook: its body (`payload`), where it stands, and (WebhookAttempt) each try."""

    webhook = models.ForeignKey(RegistryWebhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32, choices=WebhookEvent.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_try_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["webhook", "-created_at"], name="registry_delivery_hook_idx"),
            models.Index(fields=["status", "next_try_at"], name="registry_delivery_due_idx"),
        ]

    def __str__(self) -> str:
        return f"delivery #{self.pk} {self.event} ({self.status})"


class WebhookAttempt(models.Model):
    """One try of one delivery: when, the receiver's HTTP status (none when it did not answer), the error, how long."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="tries")
    attempt = models.PositiveSmallIntegerField()
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField()

    class Meta:
        ordering = ["delivery_id", "attempt", "id"]

    def __str__(self) -> str:
        return f"try {self.attempt} of delivery #{self.delivery_id}: {self.status_code or self.error}"
