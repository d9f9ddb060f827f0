"""API tokens: create (the key is returned once), revoke, and find the user a key belongs to.

A key is `mlops_` and 43 URL-safe characters (256 random bits); only its SHA-256 is stored (models.ApiToken).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from mlops_site.exceptions import NotFound, ValidationFailed
from mlops_site.roles import ADMIN, has_role

from ..models import ApiToken, AuditAction
from .audit import audit_record

KEY_PREFIX = "mlops_"
PREFIX_LENGTH = len(KEY_PREFIX) + 6  # what lists show; 36 bits of the key, the other 220 stay secret
# last_used_at is written when it is older than this, so a busy token costs one UPDATE a minute, not one per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenRefused(Exception):
    """A key that does not authenticate; `code` says why (invalid_token, token_revoked, token_expired, user_inactive)."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.message, self.code = message, code


@dataclass(frozen=True)
class NewToken:
    """A token just made, with its key: the one time the site holds the key (it stores only the digest)."""

    token: ApiToken
    key: str


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_token_create(
    *, user, name: str, expires_at: datetime | None = None, now: datetime | None = None, audit: bool = True
) -> NewToken:
    """A new token of `user` (for that user only: nobody makes a key for someone else). The key is in the answer, and
    nowhere else ever again. Audited (prefix, name, expiry; never the key), except a tool's rotation (`api_token_replace`)."""
    now = now or timezone.now()
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed(
            "A token needs a name of 1 to 100 characters (what it is for: ci, grafana...).", fields={"name": ["1 to 100 characters."]}
        )
    if expires_at is not None and expires_at <= now:
        raise ValidationFailed("A token's expiry must be in the future.", fields={"expires_at": ["Must be in the future."]})
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user, name=name, prefix=key[:PREFIX_LENGTH], key_sha256=key_digest(key), created_at=now, expires_at=expires_at
        )
        if audit:
            audit_record(actor=user, action=AuditAction.TOKEN_CREATED, subject=f"user:{user.username}", reason=name,
                         extra={"token": token.pk, "prefix": token.prefix, "expires_at": expires_at.isoformat() if expires_at else None})
    return NewToken(token=token, key=key)


def api_token_revoke(*, actor, token_id: int, now: datetime | None = None) -> ApiToken:
    """Revoke one token: its owner may, and an admin may revoke anyone's (a leaked key). Revoking twice is a no-op."""
    token = ApiToken.objects.filter(pk=token_id).first()
    # Someone else's token is "not found", not "forbidden": ids of other users' tokens are nobody's business.
    if token is None or (token.user_id != actor.pk and not has_role(actor, ADMIN)):
        raise NotFound(f"No token {token_id} of yours.")
    if token.revoked_at is None:
        with transaction.atomic():
            token.revoked_at = now or timezone.now()
            token.save(update_fields=["revoked_at"])
            audit_record(actor=actor, action=AuditAction.TOKEN_REVOKED, subject=f"user:{token.user.username}", reason=token.name,
                         extra={"token": token.pk, "prefix": token.prefix})
    return token


@transaction.atomic
def api_token_replace(*, user, name: str) -> NewToken:
    """Revoke the user's active tokens called `name` and make a fresh one: a tool's own token (create_api_user, the
    traffic simulator) is rotated rather than piled up."""
    now = timezone.now()
    ApiToken.objects.filter(user=user, name=name, revoked_at__isnull=True).update(revoked_at=now)
    return api_token_create(user=user, name=name, now=now, audit=False)


def api_token_authenticate(key: str, *, now: datetime | None = None) -> ApiToken:
    """The token `key` opens, with its user; TokenRefused when none, or when it is revoked, expired or its user inactive.
    Found by the digest (an indexed equality), so the time taken says nothing about how close a guess was."""
    now = now or timezone.now()
    token = ApiToken.objects.select_related("user").filter(key_sha256=key_digest(key)).first()
    if token is None:
        raise TokenRefused("Invalid token.", "invalid_token")
    state = token.state(now)
    if state == "revoked":
        raise TokenRefused("This token has been revoked.", "token_revoked")
    if state == "expired":
        raise TokenRefused("This token has expired.", "token_expired")
    if not token.user.is_active:
        raise TokenRefused("This token's user is inactive.", "user_inactive")
    if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
