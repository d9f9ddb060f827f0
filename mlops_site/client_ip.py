"""The address a request comes from, as the login lockout (django-axes) counts it.

Without a proxy it is REMOTE_ADDR, and X-Forwarded-For is never read: a client writes that header itself, so a password
guesser could name a fresh address for every try. Behind reverse proxies that each append the address they received
the request from (nginx's `$proxy_add_x_forwarded_for`, the usual load balancers), MLOPS_PROXY_COUNT says how many
there are: the address is then the MLOPS_PROXY_COUNT-th entry from the right of X-Forwarded-For, the one the outermost
of our proxies saw, and whatever a client wrote in front of it is ignored. Some load balancers write the port too
(`203.0.113.5:41234`, `[2001:db8::1]:41234`): it is dropped. A header with fewer entries than that, or an entry that is
not an IP address, means the request did not come through our proxies as configured: REMOTE_ADDR then (the proxy's own
address: those requests share one lockout count, the safe side).
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR")
    proxies = settings.MLOPS_PROXY_COUNT
    if not proxies:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(hops) < proxies:
        return remote
    try:
        return str(ipaddress.ip_address(_without_port(hops[-proxies])))
    except ValueError:
        return remote


def _without_port(hop: str) -> str:
    """`[v6]:port` -> v6, `v4:port` -> v4 (the port all digits); anything else as it is, for ip_address to judge (a
    bare IPv6 address has several colons)."""
    if hop.startswith("["):
        address, bracket, rest = hop[1:].partition("]")
        return address if bracket and (rest == "" or (rest.startswith(":") and rest[1:].isdigit())) else hop
    address, colon, port = hop.partition(":")
    return address if colon and ":" not in port and port.isdigit() else hop
