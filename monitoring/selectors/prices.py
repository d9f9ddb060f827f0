"""Reads of the LLM price table: the list the prices page and the API show, and the whole book ingestion prices events with."""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import QuerySet
from django.utils import timezone

from .. import pricing
from ..models import Price

PRICE_FIELDS = pricing.PRICE_FIELDS


def price_list(*, search: str = "") -> QuerySet[Price]:
    """Prices by pattern, newest first within a pattern; `search` matches the pattern."""
    prices = Price.objects.all()
    return prices.filter(pattern__icontains=search) if search else prices


def price_book() -> pricing.PriceBook:
    """Every price, read in one query, ready to match."""
    rows = Price.objects.values_list("pattern", "effective_from", *PRICE_FIELDS)
    return pricing.PriceBook([pricing.PriceEntry(pattern=p, effective_from=d, **dict(zip(PRICE_FIELDS, rest, strict=True))) for p, d, *rest in rows])


def llm_call_pricing() -> Callable[[str, int, int], float | None]:
    """The price of one LLM call today (UTC), (model, input tokens, output tokens) -> USD, None without a price: what an
    evaluation's calls (the prompt's and the judge's) cost, with the table events are priced with (read once, here)."""
    book, today = price_book(), timezone.now().date()

    def price(llm_model: str, input_tokens: int, output_tokens: int) -> float | None:
        entry = book.match(llm_model, today)
        return None if entry is None else pricing.cost(entry, input_tokens, output_tokens)

    return price
