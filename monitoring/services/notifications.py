"""The one sender of notifications, shared by alert rules and budgets: a signed webhook and an e-mail."""

from __future__ import annotations

import hashlib
import hmac
import json

import requests
from django.conf import settings
from django.core.mail import send_mail


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`, sent as X-MLOps-Signature (like GitHub's webhooks)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(*, webhook_url: str, webhook_secret: str, emails: str, message: str, payload: dict) -> list[str]:
    """Send one notification: a Slack-compatible JSON webhook (`text` plus the details, HMAC-signed
    when a secret is set) and an e-mail. Returns the problems (recorded by the caller, never raised)."""
    errors = []
    if webhook_url:
        body = json.dumps({"text": message, **payload}).encode()
        headers = {"Content-Type": "application/json"}
        if webhook_secret:
            headers["X-MLOps-Signature"] = signature(webhook_secret, body)
        try:
            response = requests.post(webhook_url, data=body, headers=headers, timeout=10)
            if response.status_code >= 300:
                errors.append(f"webhook answered {response.status_code}")
        except requests.RequestException as exc:
            errors.append(f"webhook: {exc}")
    recipients = [e.strip() for e in emails.split(",") if e.strip()]
    if recipients:
        try:
            send_mail(message[:150], message, settings.DEFAULT_FROM_EMAIL, recipients)
        except Exception as exc:  # noqa: BLE001 - a mail server problem is recorded, not raised
            errors.append(f"e-mail: {exc}")
    return errors
