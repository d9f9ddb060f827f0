"""The one sender of notifications, shared by alert rules and budgets: a signed webhook and an e-mail.

A webhook URL is a request this server makes on someone's behalf, so it is checked twice: when it is set
(`webhook_url_check`, a 400 naming the field) and right before the post (`deliver`), where the host is resolved
once, every address checked, and the connection made to that checked address (a DNS answer that changes in
between cannot swap in another one). Redirects are never followed.

Delivery (`notification_send`): each channel (webhook, e-mail) is tried until it goes through, up to
MAX_ATTEMPTS tries with the waits of RETRY_AFTER between them; every try is recorded (NotificationAttempt)
and a channel that went through is never sent again. `notified_at` is set only when every channel went
through. A target that can never work (a refused URL, a redirect, a 4xx other than 408 and 429) is not
tried again. A conditional update claims each try, so the task, its retry and the sweep never send twice
at once; a worker that dies mid-try leaves the claim to lapse after ATTEMPT_LEASE."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F, Q
from django.utils import timezone

from mlops_site.exceptions import ValidationFailed

from ..models import AlertEvent, BudgetAlert, NotificationAttempt, NotificationChannel, NotificationStatus

MAX_ATTEMPTS = 5
RETRY_AFTER = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))  # after tries 1 to 4
ATTEMPT_LEASE = timedelta(minutes=2)  # a try holds its notification this long (a webhook times out after 10 s)


class UnsafeTarget(ValueError):
    """A webhook URL this server will not post to; the message says why."""


@dataclass(frozen=True)
class WebhookTarget:
    """A checked webhook URL: where to connect (`address`, one the host resolved to) and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def _allowed(host: str, port: int) -> bool:
    """Whether an admin allowed this host (any port) or this host:port in MLOPS_WEBHOOK_ALLOWED_HOSTS."""
    allowed = settings.MLOPS_WEBHOOK_ALLOWED_HOSTS
    if isinstance(allowed, str):  # set from the environment's comma-separated form
        allowed = allowed.split(",")
    allowed = {entry.strip().lower() for entry in allowed if entry.strip()}
    shown = f"[{host}]" if ":" in host else host
    return bool({host, shown, f"{shown}:{port}"} & allowed)


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a connection to `address` is refused (None: a public address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind in ("loopback", "link_local", "unspecified", "multicast", "reserved", "private"):  # the narrowest name first
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:  # shared (100.64/10), documentation and other special-purpose ranges
        return "not public"
    return None


def webhook_target(url: str) -> WebhookTarget:
    """Check `url` and resolve its host once: http or https only, and every address the host resolves to
    public unless the host (or host:port) is in MLOPS_WEBHOOK_ALLOWED_HOSTS. Raises UnsafeTarget."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeTarget(f"not a URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget(f"only http and https URLs are sent to, not {parts.scheme or 'a URL without a scheme'}")
    host = (parts.hostname or "").lower()
    if not host:
        raise UnsafeTarget("the URL names no host")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeTarget(f"{host} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    if not addresses:
        raise UnsafeTarget(f"{host} does not resolve")
    if not _allowed(host, port):
        for address in addresses:
            why = _refused(ipaddress.ip_address(address.split("%")[0]))
            if why:
                raise UnsafeTarget(
                    f"{host} resolves to {address}, a {why} address; an administrator can allow the host in MLOPS_WEBHOOK_ALLOWED_HOSTS"
                )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return WebhookTarget(scheme=parts.scheme, host=host, port=port, path=path, address=addresses[0])


def webhook_url_check(url: str, *, field: str = "webhook_url") -> None:
    """Save time: a 400 naming `field` unless `url` is empty or a URL `webhook_target` accepts."""
    if not url:
        return
    try:
        webhook_target(url)
    except UnsafeTarget as exc:
        raise ValidationFailed(f"{field}: {exc}.", fields={field: [str(exc)]}) from None


def signing_secret(*, webhook_url: str, own_secret: str) -> str:
    """The secret that signs a post to `webhook_url`: the site's secret only for the site's own URL
    (MLOPS_ALERT_WEBHOOK_URL); a URL someone set is signed with its own secret, never the site's (a copy
    of the site's secret on a rule or budget whose URL changed signs nothing)."""
    if webhook_url and webhook_url == settings.MLOPS_ALERT_WEBHOOK_URL:
        return settings.MLOPS_ALERT_WEBHOOK_SECRET
    if own_secret and own_secret == settings.MLOPS_ALERT_WEBHOOK_SECRET:
        return ""
    return own_secret


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`, sent as X-MLOps-Signature (like GitHub's webhooks)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Problem:
    """Why one try of one channel failed; `final` when trying again cannot help."""

    text: str
    final: bool = False


def _post(url: str, body: bytes, headers: dict) -> Problem | None:
    """Post `body` to the checked address of `url` (no redirect followed); the problem, or None."""
    try:
        target = webhook_target(url)
    except UnsafeTarget as exc:
        return Problem(f"webhook refused: {exc}", final=True)
    host_header = f"[{target.host}]" if ":" in target.host else target.host
    if target.port != (443 if target.scheme == "https" else 80):
        host_header += f":{target.port}"
    if target.scheme == "https":  # connect to the checked address; the certificate must still name the host
        pool = urllib3.HTTPSConnectionPool(target.address, target.port, server_hostname=target.host, assert_hostname=target.host,
                                           cert_reqs="CERT_REQUIRED", ca_certs=certifi.where())
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port)
    try:
        with pool:
            response = pool.urlopen("POST", target.path, body=body, headers={**headers, "Host": host_header},
                                    redirect=False, retries=False, timeout=urllib3.Timeout(total=10))
    except urllib3.exceptions.HTTPError as exc:
        return Problem(f"webhook: {exc}")
    if 300 <= response.status < 400:
        return Problem(f"webhook answered {response.status}, a redirect (to {response.headers.get('Location', 'nowhere')}), not followed", final=True)
    if response.status >= 300:
        return Problem(f"webhook answered {response.status}", final=400 <= response.status < 500 and response.status not in (408, 429))
    return None


def webhook_send(*, webhook_url: str, webhook_secret: str, message: str, payload: dict) -> Problem | None:
    """A Slack-compatible JSON webhook (`text` plus the details), HMAC-signed when a secret is set."""
    body = json.dumps({"text": message, **payload}).encode()
    headers = {"Content-Type": "application/json"}
    if webhook_secret:
        headers["X-MLOps-Signature"] = signature(webhook_secret, body)
    return _post(webhook_url, body, headers)


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
