"""HTML page of the price table: every LLM token price, and a form for editors to add one."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from mlops_site.exceptions import DomainError

from . import selectors, services

PAGE_SIZE = 100
PER_MILLION = 1_000_000
FORM_FIELDS = ("pattern", "input", "output", "cached", "reasoning", "effective_from")


def _per_token(raw: str, *, required: bool = False):
    """The form asks for USD per 1M tokens (how providers list them); the table keeps USD per token.
    Text that is not a number (or a required price left empty) goes to the service as it is, so its message is the one shown."""
    raw = raw.strip()
    if not raw and not required:
        return None
    try:
        return float(raw) / PER_MILLION
    except ValueError:
        return raw


def _day(raw: str):
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        return raw


def _per_million(value: float | None) -> str:
    return "" if value is None else f"{value * PER_MILLION:.6g}"


def price_list(request: HttpRequest) -> HttpResponse:
    """GET: the prices, per 1M tokens (`?q=` searches the pattern). POST: add one through services.price_set."""
    form = {"effective_from": timezone.now().date().isoformat()}
    status = 200
    if request.method == "POST":
        form = {name: request.POST.get(name, "") for name in FORM_FIELDS}
        try:
            price = services.price_set(
                pattern=form["pattern"], input_per_token=_per_token(form["input"], required=True),
                output_per_token=_per_token(form["output"], required=True),
                cached_input_per_token=_per_token(form["cached"]), reasoning_per_token=_per_token(form["reasoning"]),
                effective_from=_day(form["effective_from"]), actor=request.user, source=request.user.username,
            )
        except DomainError as exc:
            # Shown on the page itself (not after a redirect) so the form keeps what was typed.
            messages.error(request, exc.message)
            status = exc.status
        else:
            messages.success(request, f"Price of {price.pattern} from {price.effective_from:%Y-%m-%d} added.")
            return redirect("monitoring:prices")
    search = request.GET.get("q", "").strip()
    page = Paginator(selectors.price_list(search=search), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [
        {
            "price": p, "input": _per_million(p.input_per_token), "output": _per_million(p.output_per_token),
            "cached": _per_million(p.cached_input_per_token), "reasoning": _per_million(p.reasoning_per_token),
        }
        for p in page
    ]
    context = {"page": page, "rows": rows, "search": search, "qs": urlencode({"q": search}) if search else "", "form": form}
    return render(request, "monitoring/prices.html", context, status=status)
