"""What every HTML page of every app shares: 404s from selectors, pagination, and the one
"call a service, flash its message, redirect" helper that every button (POST view) goes through.

A service raises `NotFound` for an unknown object and another `DomainError` for a refused
change; on a page the first is a 404 and the second a message above the form, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django.contrib import messages
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme

from .exceptions import DomainError, NotFound

T = TypeVar("T")


def get_or_404(fn: Callable[..., T], **kwargs) -> T:
    """`fn(**kwargs)` (a selector), with its NotFound turned into Django's 404 page."""
    try:
        return fn(**kwargs)
    except NotFound as exc:
        raise Http404(exc.message) from None


def paginate(request: HttpRequest, rows, per_page: int | None = None) -> Page:
    """The page `?page=` asks for (the last one when it is past the end, the first when it is not a number)."""
    return Paginator(rows, per_page or settings.MLOPS_PAGE_SIZE).get_page(request.GET.get("page"))


def querystring(request: HttpRequest, drop: str = "page") -> str:
    """The current query string without `drop`, for links that keep the filters (pagination, sorting)."""
    params = request.GET.copy()
    params.pop(drop, None)
    return params.urlencode()


def redirect_back(request: HttpRequest, fallback: str) -> HttpResponse:
    """Back to the form's `next` field when it points into this site, else to `fallback`."""
    target = request.POST.get("next") or fallback
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = fallback
    return redirect(target)


def call_and_redirect(
    request: HttpRequest,
    action: Callable[[], T],
    *,
    success: str | Callable[[T], str],
    fallback: str,
    then: Callable[[T], str] | None = None,
) -> HttpResponse:
    """Run one service call for a button: on success flash `success` and go to `then(result)` (or back);
    a refused change (DomainError) flashes its message and goes back; an unknown object is a 404."""
    try:
        result = action()
    except NotFound as exc:
        raise Http404(exc.message) from None
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect_back(request, fallback)
    messages.success(request, success(result) if callable(success) else success)
    return redirect(then(result)) if then is not None else redirect_back(request, fallback)
