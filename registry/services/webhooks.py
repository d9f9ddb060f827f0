"""Registry webhooks: approvers point a model's or a prompt's events at a URL; each event becomes a signed POST.

Setting one (`webhook_create`, `webhook_update`, `webhook_delete`) is an approver's change, audited (the secret only
as "set" or "changed"); its URL is checked like an alert webhook's (mlops_site.webhooks) when it is set and again
right before each post.

Firing (`webhooks_fire`): the service that makes a change calls it inside its own transaction, so the deliveries
(one WebhookDelivery row per subscribed active webhook) exist exactly when the change does, and the task that sends
them is queued after the commit. A refused change leaves no delivery behind.

Sending (`webhook_delivery_send`): one try, claimed with a conditional UPDATE (the task, its retry and the sweep
never send one delivery twice at once), recorded as a WebhookAttempt; a failure that may change (no answer, a 5xx,
408, 429) is tried again after the waits of RETRY_AFTER, up to MAX_ATTEMPTS tries; one that cannot (a 4xx, a
redirect, a refused URL) fails at once. Every post carries the event (X-MLOps-Event), the delivery's id
(X-MLOps-Delivery: the same on every try, so a receiver can drop a repeat) and, with a secret, the signature.

A webhook of the `github_dispatch` format posts GitHub's repository_dispatch call instead, to
`https://api.github.com/repos/<owner>/<repo>/dispatches` (or a GitHub Enterprise server's `/api/v3/repos/...`):
`{"event_type": "mlops.<event>", "client_payload": {...}}` with its secret (a GitHub token allowed to dispatch) as
the bearer token; GitHub answers 204 and starts the workflows that listen for that event type.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone

from mlops_site.exceptions import Conflict, NotFound, ValidationFailed
from mlops_site.queue import enqueue_on_commit
from mlops_site.roles import APPROVER, require_role
from mlops_site.webhooks import (
    ATTEMPT_LEASE,
    MAX_ATTEMPTS,
    RETRY_AFTER,
    SIGNATURE_HEADER,
    signature,
    webhook_post,
    webhook_url_check,
)

from ..models import (
    SUBSCRIBABLE_EVENTS,
    AuditAction,
    AuditEvent,
    DeliveryStatus,
    Prompt,
    RegisteredModel,
    RegistryWebhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookFormat,
)
from .audit import audit_record

EVENT_HEADER = "X-MLOps-Event"
DELIVERY_HEADER = "X-MLOps-Delivery"
DELIVER_TASK = "registry.tasks.webhook_deliver"
MAX_SECRET = 200
GITHUB_DISPATCH_PATH = re.compile(r"^(/api/v3)?/repos/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/dispatches$")
GITHUB_PAYLOAD_KEYS = ("event", "kind", "name", "version", "stage", "from_stage", "promotion_id", "actor", "url", "delivery_id")


def _format_check(fields: dict, webhook: RegistryWebhook | None = None) -> None:
    """A github_dispatch webhook needs GitHub's dispatches address and a token (its secret)."""
    kind = fields.get("format", webhook.format if webhook else WebhookFormat.GENERIC)
    if kind != WebhookFormat.GITHUB_DISPATCH:
        return
    url = fields.get("url", webhook.url if webhook else "")
    if not GITHUB_DISPATCH_PATH.match(urlsplit(url).path):
        raise ValidationFailed("url: a github_dispatch webhook posts to https://api.github.com/repos/<owner>/<repo>/dispatches.",
                               fields={"url": ["GitHub's repository dispatches address."]})
    if not fields.get("secret", webhook.secret if webhook else ""):
        raise ValidationFailed("secret: a github_dispatch webhook sends its secret as the GitHub token; give one.",
                               fields={"secret": ["A GitHub token allowed to dispatch to the repository."]})


def _clean(*, url: str | None, events, secret: str | None, format: str | None = None) -> dict:
    """The fields given, checked: a URL this site will post to, a non-empty list of known events, a secret that fits,
    a known format."""
    fields = {}
    if format is not None:
        if format not in WebhookFormat.values:
            raise ValidationFailed(f"format: one of {', '.join(WebhookFormat.values)}.", fields={"format": [f"One of {', '.join(WebhookFormat.values)}."]})
        fields["format"] = format
    if url is not None:
        url = (url or "").strip()
        if not url:
            raise ValidationFailed("url: give the address to post to.", fields={"url": ["This field may not be blank."]})
        if len(url) > 1000:
            raise ValidationFailed("url: at most 1000 characters.", fields={"url": ["At most 1000 characters."]})
        webhook_url_check(url, field="url")
        fields["url"] = url
    if events is not None:
        if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
            raise ValidationFailed("events: a list of one or more event names.", fields={"events": [f"Some of: {', '.join(SUBSCRIBABLE_EVENTS)}."]})
        unknown = sorted(set(events) - set(SUBSCRIBABLE_EVENTS))
        if unknown:
            raise ValidationFailed(f"events: unknown {', '.join(unknown)}; use some of {', '.join(SUBSCRIBABLE_EVENTS)}.",
                                   fields={"events": [f"Unknown: {', '.join(unknown)}."]})
        fields["events"] = [e for e in SUBSCRIBABLE_EVENTS if e in events]  # one order, no repeats
    if secret is not None:
        if not isinstance(secret, str) or len(secret) > MAX_SECRET:
            raise ValidationFailed(f"secret: at most {MAX_SECRET} characters.", fields={"secret": [f"At most {MAX_SECRET} characters."]})
        fields["secret"] = secret
    return fields


def _shown(webhook: RegistryWebhook) -> dict:
    """What the audit log keeps of a webhook: never its secret."""
    return {"webhook_id": webhook.pk, "url": webhook.url, "events": webhook.events, "format": webhook.format, "active": webhook.active,
            "secret": "set" if webhook.secret else "none"}


def webhook_create(
    *, url: str, events: list[str], actor, model_name: str | None = None, prompt_name: str | None = None, secret: str = "", active: bool = True,
    format: str = WebhookFormat.GENERIC,
) -> RegistryWebhook:
    """A webhook of one model (`model_name`) or one prompt (`prompt_name`), for approvers. 400 for a URL inside the
    network (unless MLOPS_WEBHOOK_ALLOWED_HOSTS allows it), an unknown event or none; 404 for an unknown subject."""
    require_role(actor, APPROVER, "Setting a webhook")
    if (model_name is None) == (prompt_name is None):
        raise ValidationFailed("A webhook belongs to one model or one prompt.")
    fields = _clean(url=url, events=events, secret=secret or "", format=format or WebhookFormat.GENERIC)
    _format_check(fields)
    with transaction.atomic():
        if model_name is not None:
            subject = {"model": _subject_get(RegisteredModel, model_name)}
        else:
            subject = {"prompt": _subject_get(Prompt, prompt_name)}
        webhook = RegistryWebhook.objects.create(**subject, **fields, active=bool(active), created_by=actor)
        audit_record(actor=actor, action=AuditAction.WEBHOOK_SET, subject=webhook.subject, reason="webhook created", extra=_shown(webhook))
    return webhook


def _subject_get(model_class, name: str):
    try:
        return model_class.objects.get(name=name)
    except model_class.DoesNotExist:
        raise NotFound(f"No {'model' if model_class is RegisteredModel else 'prompt'} {name}.") from None


def _webhook_get(webhook_id) -> RegistryWebhook:
    try:
        return RegistryWebhook.objects.select_related("model", "prompt").select_for_update(of=("self",)).get(pk=webhook_id)
    except (RegistryWebhook.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No webhook {webhook_id}.") from None


def webhook_update(
    *, webhook_id: int, actor, url: str | None = None, events: list[str] | None = None, secret: str | None = None, active: bool | None = None,
    format: str | None = None,
) -> RegistryWebhook:
    """Change what is given (None: keep it) of a webhook, for approvers; audited with what changed (a new secret
    as "changed", a removed one as "removed")."""
    require_role(actor, APPROVER, "Changing a webhook")
    fields = _clean(url=url, events=events, secret=secret, format=format)
    if active is not None:
        fields["active"] = bool(active)
    with transaction.atomic():
        webhook = _webhook_get(webhook_id)
        _format_check(fields, webhook)
        changed = {name: value for name, value in fields.items() if getattr(webhook, name) != value}
        if not changed:
            return webhook
        for name, value in changed.items():
            setattr(webhook, name, value)
        webhook.save(update_fields=list(changed))
        shown = {name: value for name, value in changed.items() if name != "secret"}
        if "secret" in changed:
            shown["secret"] = "changed" if changed["secret"] else "removed"
        audit_record(actor=actor, action=AuditAction.WEBHOOK_SET, subject=webhook.subject, reason="webhook changed",
                     extra={"webhook_id": webhook.pk, "changed": shown})
    return webhook


def webhook_delete(*, webhook_id: int, actor) -> RegistryWebhook:
    """Delete a webhook and its delivery history, for approvers; audited with what it was."""
    require_role(actor, APPROVER, "Deleting a webhook")
    with transaction.atomic():
        webhook = _webhook_get(webhook_id)
        audit_record(actor=actor, action=AuditAction.WEBHOOK_DELETED, subject=webhook.subject, reason="webhook deleted", extra=_shown(webhook))
        webhook.delete()
    return webhook


def webhook_ping(*, webhook_id: int, actor) -> WebhookDelivery:
    """Queue a test delivery (event `ping`) to an active webhook, for approvers: the receiver gets a signed post
    shaped like every other, and the delivery shows on the page like the others."""
    require_role(actor, APPROVER, "Testing a webhook")
    with transaction.atomic():
        webhook = _webhook_get(webhook_id)
        if not webhook.active:
            raise Conflict("This webhook is paused: resume it before testing it.", code="webhook_inactive")
        kind, name = webhook.subject.split(":", 1)
        payload = _payload(WebhookEvent.PING, kind=kind, name=name, version=None, stage="", from_stage="", promotion_id=None,
                           actor=actor.username, at=timezone.now(), reason="a test from the webhook's page")
        delivery = WebhookDelivery.objects.create(webhook=webhook, event=WebhookEvent.PING, payload=payload)
        enqueue_on_commit(DELIVER_TASK, delivery.pk)
    return delivery


# --- firing ------------------------------------------------------------------------------------------------------


def _page_url(kind: str, name: str, version: int | None) -> str:
    if version is None:
        path = reverse("registry:model-detail" if kind == "model" else "registry:prompt-detail", args=[name])
    else:
        path = reverse("registry:version-detail" if kind == "model" else "registry:prompt-version-detail", args=[name, version])
    return settings.MLOPS_SITE_URL.rstrip("/") + path


def _payload(event: str, *, kind: str, name: str, version: int | None, stage: str, from_stage: str, promotion_id: int | None,
             actor: str, at: datetime, reason: str, details: dict | None = None) -> dict:
    return {
        "event": event,
        "subject": {"kind": kind, "name": name},
        "version": version,
        "stage": stage,
        "from_stage": from_stage,
        "promotion_id": promotion_id,
        "actor": actor,
        "at": at.isoformat(),
        "reason": reason,
        "url": _page_url(kind, name, version),
        **({"details": details} if details else {}),
    }


def webhooks_fire(audit: AuditEvent, *events: str) -> list[WebhookDelivery]:
    """A delivery of each of `events` to every active webhook of the audited change's subject that subscribed to it,
    its body made from the audit event (`audit`: subject, version, stage, actor, promotion id). Called inside the
    change's transaction; the deliveries are sent after the commit."""
    return webhook_event_fire(*events, subject=audit.subject, version=audit.version, stage=audit.to_stage, from_stage=audit.from_stage,
                              promotion_id=audit.extra.get("promotion_id"), actor_name=audit.actor_name, at=audit.at, reason=audit.reason)


def webhook_event_fire(
    *events: str, subject: str, version: int | None, actor_name: str, at: datetime, stage: str = "", from_stage: str = "",
    promotion_id: int | None = None, reason: str = "", details: dict | None = None,
) -> list[WebhookDelivery]:
    """`webhooks_fire` for a change that writes no audit event (an evaluation that failed its gates): the same
    deliveries from the same fields, given one by one. `subject` is "model:<name>" or "prompt:<name>"."""
    kind, name = subject.split(":", 1)
    if kind not in ("model", "prompt"):
        return []
    hooks = list(RegistryWebhook.objects.filter(**{f"{kind}__name": name}, active=True))
    deliveries = []
    for event in events:
        payload = _payload(event, kind=kind, name=name, version=version, stage=stage, from_stage=from_stage, promotion_id=promotion_id,
                           actor=actor_name, at=at, reason=reason, details=details)
        deliveries += [WebhookDelivery(webhook=hook, event=event, payload=payload) for hook in hooks if event in hook.events]
    if deliveries:
        deliveries = WebhookDelivery.objects.bulk_create(deliveries)
        for delivery in deliveries:
            enqueue_on_commit(DELIVER_TASK, delivery.pk)
    return deliveries


# --- sending -----------------------------------------------------------------------------------------------------


def delivery_due(*, now: datetime | None = None) -> Q:
    """Deliveries a sweep should hand to a worker: pending, and their next try (if one was planned) due."""
    return Q(status=DeliveryStatus.PENDING) & (Q(next_try_at__isnull=True) | Q(next_try_at__lte=now or timezone.now()))


def webhook_body(delivery: WebhookDelivery) -> bytes:
    """The exact bytes posted (and signed): the stored payload with the delivery's id; for a github_dispatch webhook,
    GitHub's repository_dispatch body (its client_payload holds at most ten keys, as GitHub allows)."""
    body = {**delivery.payload, "delivery_id": delivery.pk}
    if delivery.webhook.format == WebhookFormat.GITHUB_DISPATCH:
        flat = {**body, "kind": body["subject"]["kind"], "name": body["subject"]["name"]}
        body = {"event_type": f"mlops.{delivery.event}", "client_payload": {k: flat.get(k) for k in GITHUB_PAYLOAD_KEYS}}
    return json.dumps(body, separators=(",", ":")).encode()


def webhook_headers(delivery: WebhookDelivery, body: bytes) -> dict:
    """Our event and delivery headers, and the signature (generic, with a secret) or GitHub's token and media type."""
    webhook = delivery.webhook
    headers = {"Content-Type": "application/json", "User-Agent": "mlops-webhooks", EVENT_HEADER: delivery.event, DELIVERY_HEADER: str(delivery.pk)}
    if webhook.format == WebhookFormat.GITHUB_DISPATCH:
        headers.update({"Authorization": f"Bearer {webhook.secret}", "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"})
    elif webhook.secret:
        headers[SIGNATURE_HEADER] = signature(webhook.secret, body)
    return headers


def webhook_delivery_send(*, delivery_id: int, now: datetime | None = None) -> WebhookDelivery | None:
    """One try of a delivery (see the module docstring). Returns the delivery as stored afterwards, with `tried_now`
    set when this call tried; None for an unknown id (its webhook was deleted)."""
    now = now or timezone.now()
    claimed = WebhookDelivery.objects.filter(delivery_due(now=now), pk=delivery_id, attempts__lt=MAX_ATTEMPTS).update(
        attempts=F("attempts") + 1, next_try_at=now + ATTEMPT_LEASE)
    delivery = WebhookDelivery.objects.select_related("webhook").filter(pk=delivery_id).first()
    if delivery is None:
        return None
    delivery.tried_now = bool(claimed)
    if not claimed:
        return delivery
    webhook = delivery.webhook
    if not webhook.active:
        WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED, next_try_at=None,
                                                                last_error="not sent: the webhook was paused")
        delivery.refresh_from_db()
        delivery.tried_now = True
        return delivery
    body = webhook_body(delivery)
    headers = webhook_headers(delivery, body)
    started = time.monotonic()
    result = webhook_post(webhook.url, body, headers)
    duration_ms = round((time.monotonic() - started) * 1000)
    problem = result.problem
    WebhookAttempt.objects.create(delivery=delivery, attempt=delivery.attempts, at=timezone.now(), status_code=result.status,
                                  error=problem.text if problem else "", duration_ms=duration_ms)
    attempt = delivery.attempts
    if problem is None:
        fields = {"status": DeliveryStatus.DELIVERED, "delivered_at": timezone.now(), "next_try_at": None, "last_error": ""}
    elif problem.final or attempt >= MAX_ATTEMPTS:
        fields = {"status": DeliveryStatus.FAILED, "next_try_at": None,
                  "last_error": problem.text if problem.final else f"{problem.text} (gave up after {attempt} tries)"}
    else:
        retry_at = now + RETRY_AFTER[attempt - 1]
        fields = {"next_try_at": retry_at, "last_error": f"{problem.text} (try {attempt} of {MAX_ATTEMPTS}; next at {retry_at:%H:%M} UTC)"}
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**fields)
    delivery.refresh_from_db()
    delivery.tried_now = True
    return delivery


def webhook_retry_in(delivery: WebhookDelivery | None) -> float | None:
    """Seconds until the next try when `webhook_delivery_send` just tried and planned one (for the task to queue
    itself again); None otherwise, so a call that found nothing due never queues another."""
    if delivery is None or not getattr(delivery, "tried_now", False) or delivery.status != DeliveryStatus.PENDING or delivery.next_try_at is None:
        return None
    return max(0.0, (delivery.next_try_at - timezone.now()).total_seconds())


def webhook_deliveries_sweep(*, now: datetime | None = None, batch: int = 500) -> int:
    """Beat: queue the deliveries that are due (a retry whose task was lost with the broker, a delivery whose first
    task never reached it). Those created in the last minute are left to the task their change queued."""
    now = now or timezone.now()
    ids = list(WebhookDelivery.objects.filter(delivery_due(now=now), created_at__lt=now - RETRY_AFTER[0])
               .order_by("next_try_at", "id").values_list("pk", flat=True)[:batch])
    for delivery_id in ids:
        enqueue_on_commit(DELIVER_TASK, delivery_id)
    return len(ids)
