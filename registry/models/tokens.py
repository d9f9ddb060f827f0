"""API tokens: only a digest of each key is stored, so neither the database nor the admin can give one back."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class ApiToken(models.Model):
    """One API key of a user. The key is shown once, when it is made; the table keeps its SHA-256 and a short prefix.

    A plain (unsalted) SHA-256 is enough: the keys are 256 random bits, so there is nothing to guess or to look up
    in a table, and it lets a request find its token by one indexed equality on the digest (no key comparison in
    Python, so nothing to time). `prefix` names the key in lists ("mlops_Ab3dE…") and is no secret.
    A token stops working when revoked or past `expires_at`; rows stay, so the owner's list shows what happened.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    key_sha256 = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Updated at most once a minute (a conditional UPDATE), not on every request.
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="registry_apitoken_user_idx")]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="registry_apitoken_named"),
            models.CheckConstraint(
                condition=Q(expires_at__isnull=True) | Q(expires_at__gt=models.F("created_at")),
                name="registry_apitoken_expires_after_created",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"

    def state(self, now=None) -> str:
        """active, revoked or expired."""
        now = now or timezone.now()
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"
