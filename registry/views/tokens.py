"""The signed-in user's API tokens: list, create (the key is on the answer page once, never again), revoke."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from mlops_site.exceptions import DomainError
from mlops_site.pages import call_and_redirect

from .. import selectors
from ..services.tokens import api_token_create, api_token_revoke

EXPIRY_CHOICES = [("", "never"), ("7", "in 7 days"), ("30", "in 30 days"), ("90", "in 90 days"), ("365", "in a year")]


@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    # The new key is rendered into this one answer (not flashed: a message would keep it in the session), so a
    # reload or a later visit shows the token's prefix only.
    new_key, status = None, 200
    if request.method == "POST":
        now, days = timezone.now(), request.POST.get("expires_in_days", "")
        expires_at = now + timedelta(days=int(days)) if days in dict(EXPIRY_CHOICES) and days else None
        try:
            new_key = api_token_create(user=request.user, name=request.POST.get("name", ""), expires_at=expires_at, now=now).key
            status = 201
        except DomainError as exc:
            messages.error(request, exc.message)
            status = 400
    now = timezone.now()
    tokens = [(token, token.state(now)) for token in selectors.api_token_list(user=request.user)]
    context = {"tokens": tokens, "new_key": new_key, "expiry_choices": EXPIRY_CHOICES}
    response = render(request, "registry/token_list.html", context, status=status)
    if new_key:
        response["Cache-Control"] = "no-store"  # the page with the key stays out of every cache
    return response


@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    fallback = reverse("registry:token-list")
    return call_and_redirect(
        request,
        lambda: api_token_revoke(actor=request.user, token_id=token_id),
        success=lambda token: f"Token {token.prefix}… ({token.name}) revoked.",
        fallback=fallback,
        then=lambda _: fallback,
    )
