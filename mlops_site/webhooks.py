"""Posting a signed webhook safely: what alert notifications (monitoring) and registry webhooks both send.

A webhook URL is a request this server makes on someone's behalf, so it is checked twice: when it is set
(`webhook_url_check`, a 400 naming the field) and right before the post (`webhook_post`), where the host is resolved
once, every address checked, and the connection made to that checked address (a DNS answer that changes in
between cannot swap in another one). Redirects are never followed. A post is signed with `signature` (the
SIGNATURE_HEADER), and a failed one is tried again on one schedule: up to MAX_ATTEMPTS tries with the waits of
RETRY_AFTER between them, each try holding its row for ATTEMPT_LEASE.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings

from .exceptions import ValidationFailed

MAX_ATTEMPTS = 5
RETRY_AFTER = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2))  # after tries 1 to 4
ATTEMPT_LEASE = timedelta(minutes=2)  # a try holds its row this long (a webhook times out after 10 s)
SIGNATURE_HEADER = "X-MLOps-Signature"


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


@dataclass(frozen=True)
class Problem:
    """Why one try failed; `final` when trying again cannot help."""

    text: str
    final: bool = False


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


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the body>`, sent as X-MLOps-Signature (like GitHub's webhooks)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class PostResult:
    """What one post came to: the receiver's HTTP status (None when there was no answer) and the problem, if any."""

    status: int | None
    problem: Problem | None


def webhook_post(url: str, body: bytes, headers: dict) -> PostResult:
    """Post `body` to the checked address of `url` (no redirect followed, 10 s at most)."""
    try:
        target = webhook_target(url)
    except UnsafeTarget as exc:
        return PostResult(None, Problem(f"webhook refused: {exc}", final=True))
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
        return PostResult(None, Problem(f"webhook: {exc}"))
    status = response.status
    if 300 <= status < 400:
        return PostResult(status, Problem(f"webhook answered {status}, a redirect (to {response.headers.get('Location', 'nowhere')}), not followed", final=True))
    if status >= 300:
        return PostResult(status, Problem(f"webhook answered {status}", final=400 <= status < 500 and status not in (408, 429)))
    return PostResult(status, None)
