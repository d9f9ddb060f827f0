"""The one sender of notifications, shared by alert rules and budgets: a signed webhook and an e-mail.

The webhook's target checks, its signature, the safe post and the retry schedule are mlops_site.webhooks (registry
webhooks send with them too); this module adds what alerts and budgets need: which secret signs a post
(`signing_secret`), the e-mail channel, and the notification's own state.

Delivery (`notification_send`): each channel (webhook, e-mail) is tried until it goes through, up to
MAX_ATTEMPTS tries with the waits of RETRY_AFTER between them; every try is recorded (NotificationAttempt)
and a channel that went through is never sent again. `notified_at` is set only when every channel went
through. A target that can never work (a refused URL, a redirect, a 4xx other than 408 and 429) is not
tried again. A conditional update claims each try, so the task, its retry and the sweep never send twice
at once; a worker that dies mid-try leaves the claim to lapse after ATTEMPT_LEASE."""

from __future__ import annotations

import json
from datetime import datetime

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F, Q
from django.utils import timezone

from mlops_site.webhooks import ATTEMPT_LEASE, MAX_ATTEMPTS, RETRY_AFTER, SIGNATURE_HEADER, Problem, signature, webhook_post

from ..models import AlertEvent, BudgetAlert, NotificationAttempt, NotificationChannel, NotificationStatus


def signing_secret(*, webhook_url: str, own_secret: str) -> str:
    """The secret that signs a post to `webhook_url`: the site's secret only for the site's own URL
    (MLOPS_ALERT_WEBHOOK_URL); a URL someone set is signed with its own secret, never the site's (a copy
    of the site's secret on a rule or budget whose URL changed signs nothing)."""
    if webhook_url and webhook_url == settings.MLOPS_ALERT_WEBHOOK_URL:
        return settings.MLOPS_ALERT_WEBHOOK_SECRET
    if own_secret and own_secret == settings.MLOPS_ALERT_WEBHOOK_SECRET:
        return ""
    return own_secret


def webhook_send(*, webhook_url: str, webhook_secret: str, message: str, payload: dict) -> Problem | None:
    """A Slack-compatible JSON webhook (`text` plus the details), HMAC-signed when a secret is set."""
    body = json.dumps({"text": message, **payload}).encode()
    headers = {"Content-Type": "application/json"}
    if webhook_secret:
        headers[SIGNATURE_HEADER] = signature(webhook_secret, body)
    return webhook_post(webhook_url, body, headers).problem


def email_send(*, recipients: list[str], message: str) -> Problem | None:
    try:
        send_mail(message[:150], message, settings.DEFAULT_FROM_EMAIL, recipients)
    except Exception as exc:  # noqa: BLE001 - a mail server problem is recorded and retried, not raised
        return Problem(f"e-mail: {exc}")
    return None


def notification_due(*, now: datetime | None = None) -> Q:
    """The notifications a sweep should hand to a worker: not delivered, not given up, their next try due."""
    return (Q(notification_status__in=[NotificationStatus.PENDING, NotificationStatus.RETRYING])
            & (Q(next_notification_at__isnull=True) | Q(next_notification_at__lte=now or timezone.now())))


def notification_send(
    record: AlertEvent | BudgetAlert, *, webhook_url: str, webhook_secret: str, emails: str, message: str, payload: dict,
    now: datetime | None = None,
) -> AlertEvent | BudgetAlert:
    """One try of a notification's channels that have not gone through yet (see the module docstring).

    Returns the record as stored afterwards: a second call while a try is running, before the next try is due or
    after delivery sends nothing. `notification_retry_in(record)` then says when to try again, if this call
    tried and failed in a way worth another try."""
    model = type(record)
    now = now or timezone.now()
    claimed = model.objects.filter(notification_due(now=now), pk=record.pk, notification_attempts__lt=MAX_ATTEMPTS).update(notification_attempts=F("notification_attempts") + 1, next_notification_at=now + ATTEMPT_LEASE)
    record.refresh_from_db()
    record.tried_now = bool(claimed)
    if not claimed:
        return record
    owner = {"alert_event": record} if isinstance(record, AlertEvent) else {"budget_alert": record}
    done = set(NotificationAttempt.objects.filter(**owner, ok=True).values_list("channel", flat=True))
    recipients = [e.strip() for e in emails.split(",") if e.strip()]
    sends = []
    if webhook_url and NotificationChannel.WEBHOOK not in done:
        sends.append((NotificationChannel.WEBHOOK,
                      lambda: webhook_send(webhook_url=webhook_url, webhook_secret=webhook_secret, message=message, payload=payload)))
    if recipients and NotificationChannel.EMAIL not in done:
        sends.append((NotificationChannel.EMAIL, lambda: email_send(recipients=recipients, message=message)))
    problems = []
    for channel, send in sends:
        problem = send()
        NotificationAttempt.objects.create(**owner, attempt=record.notification_attempts, channel=channel, at=timezone.now(),
                                           ok=problem is None, error=problem.text if problem else "")
        if problem:
            problems.append(problem)
    attempt = record.notification_attempts
    if not problems:
        fields = {"notification_status": NotificationStatus.DELIVERED, "notified_at": timezone.now(), "next_notification_at": None,
                  "notification_error": ""}
    elif attempt >= MAX_ATTEMPTS or any(p.final for p in problems):
        why = "; ".join(p.text for p in problems)
        fields = {"notification_status": NotificationStatus.FAILED, "next_notification_at": None,
                  "notification_error": why if any(p.final for p in problems) else f"{why} (gave up after {attempt} tries)"}
    else:
        retry_at = now + RETRY_AFTER[attempt - 1]
        fields = {"notification_status": NotificationStatus.RETRYING, "next_notification_at": retry_at,
                  "notification_error": f"{'; '.join(p.text for p in problems)} (try {attempt} of {MAX_ATTEMPTS}; next at {retry_at:%H:%M} UTC)"}
    model.objects.filter(pk=record.pk).update(**fields)
    record.refresh_from_db()
    record.tried_now = True
    return record


def notification_retry_in(record: AlertEvent | BudgetAlert) -> float | None:
    """Seconds until the next try when `notification_send` just tried and planned one (for the task to queue
    itself again); None otherwise, so a call that found nothing due never queues another."""
    if not getattr(record, "tried_now", False) or record.notification_status != NotificationStatus.RETRYING or record.next_notification_at is None:
        return None
    return max(0.0, (record.next_notification_at - timezone.now()).total_seconds())
