"""Reads of the LLM price table: the list the prices page and the API show, and the whole book ingestion prices events with."""

from __future__ import annotations

from django.db.models import QuerySet

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
