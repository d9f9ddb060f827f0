"""The price table and the cost of each event: set and import prices, price a batch at ingestion.

The arithmetic and the matching rules live in pricing.py (no Django); this
module writes the Price table and applies the prices to ingested events.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import NamedTuple

from django.db import IntegrityError, transaction

from mlops_site.exceptions import Conflict, ValidationFailed
from mlops_site.roles import EDITOR, require_role
from registry.models import AuditAction
from registry.services import audit_record

from .. import pricing
from ..events import CleanEvent
from ..models import Price
from ..selectors.prices import PRICE_FIELDS, price_book


class PriceImport(NamedTuple):
    """The patterns an import created, found already there with the same prices, and found there with other prices (not written)."""

    created: list[str]
    unchanged: list[str]
    conflicts: list[str]


def _clean_price(field: str, value, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValidationFailed(f"{field}: a price must be a finite number, 0 or more.", fields={field: ["a finite number >= 0"]})
    return float(value)


def _clean_pattern(pattern) -> str:
    pattern = pattern.strip() if isinstance(pattern, str) else ""
    if not pattern or len(pattern) > 200:
        raise ValidationFailed("pattern: an LLM model name or a glob such as gpt-4o-mini*, 1 to 200 characters.", fields={"pattern": ["1 to 200 characters"]})
    return pattern


def price_set(*, pattern: str, input_per_token: float, output_per_token: float, cached_input_per_token: float | None = None,
              reasoning_per_token: float | None = None, effective_from: date, actor) -> Price:
    """Add the price of an LLM model name (or a glob of names) in force from `effective_from` on.

    Prices are never edited in place: a change is a new entry with a later date,
    so events keep the cost of the price that was in force when they happened.
    The same pattern and date twice is a conflict (409), not a silent overwrite.
    The entry's source is written here ("manual by <user>"), never taken from the caller;
    the audit event has the price before (the entry in force the day before) and after.
    """
    require_role(actor, EDITOR, "Setting a price")
    pattern = _clean_pattern(pattern)
    if isinstance(effective_from, datetime):  # a day, not an instant: prices change at midnight UTC
        effective_from = effective_from.astimezone(UTC).date() if effective_from.tzinfo else effective_from.date()
    if not isinstance(effective_from, date):
        raise ValidationFailed("effective_from: a date (YYYY-MM-DD).", fields={"effective_from": ["a date"]})
    prices = {
        "input_per_token": _clean_price("input_per_token", input_per_token, optional=False),
        "output_per_token": _clean_price("output_per_token", output_per_token, optional=False),
        "cached_input_per_token": _clean_price("cached_input_per_token", cached_input_per_token, optional=True),
        "reasoning_per_token": _clean_price("reasoning_per_token", reasoning_per_token, optional=True),
    }
    if Price.objects.filter(pattern=pattern, effective_from=effective_from).exists():
        raise _duplicate(pattern, effective_from)
    previous = Price.objects.filter(pattern=pattern, effective_from__lt=effective_from).order_by("-effective_from").first()
    try:
        with transaction.atomic():
            price = Price.objects.create(pattern=pattern, effective_from=effective_from, source=f"manual by {actor.username}"[:50], **prices)
            audit_record(
                actor=actor, action=AuditAction.PRICE_SET, subject=f"price:{pattern}",
                reason=f"in force from {effective_from:%Y-%m-%d}",
                extra={"before": _price_fields(previous), "after": _price_fields(price)},
            )
            return price
    except IntegrityError:  # the same entry added by someone else a moment ago
        raise _duplicate(pattern, effective_from)


def _price_fields(price: Price | None) -> dict | None:
    if price is None:
        return None
    return {"effective_from": price.effective_from.isoformat(), **{field: getattr(price, field) for field in PRICE_FIELDS}, "source": price.source}


def _duplicate(pattern: str, effective_from: date) -> Conflict:
    return Conflict(
        f"{pattern} already has a price from {effective_from:%Y-%m-%d}. Prices are not overwritten: add one with a later date.",
        code="duplicate_price", extra={"pattern": pattern, "effective_from": effective_from.isoformat()},
    )


@transaction.atomic
def prices_import(*, entries: list[pricing.PriceEntry], effective_from: date, actor, source: str) -> PriceImport:
    """Add each entry as in force from `effective_from`, in one transaction. Idempotent: an entry already
    there with the same prices is `unchanged`; one there with other prices is a `conflict` and left as it is
    (a price change needs a later date). `actor` None: an operator's management command. `source` says where the
    prices come from (set by the server: the command names the file); one audit event lists the created ones."""
    if actor is not None:
        require_role(actor, EDITOR, "Importing prices")
    existing = {
        row[0]: row[1:] for row in Price.objects.filter(effective_from=effective_from).values_list("pattern", *PRICE_FIELDS)
    }
    created, unchanged, conflicts = [], [], []
    new = []
    for entry in entries:
        pattern = _clean_pattern(entry.pattern)
        prices = (
            _clean_price("input_per_token", entry.input_per_token, optional=False),
            _clean_price("output_per_token", entry.output_per_token, optional=False),
            _clean_price("cached_input_per_token", entry.cached_input_per_token, optional=True),
            _clean_price("reasoning_per_token", entry.reasoning_per_token, optional=True),
        )
        if pattern in existing:
            (unchanged if existing[pattern] == prices else conflicts).append(pattern)
            continue
        existing[pattern] = prices  # a pattern repeated in one import counts once
        created.append(pattern)
        new.append(Price(pattern=pattern, effective_from=effective_from, source=source[:50], **dict(zip(PRICE_FIELDS, prices, strict=True))))
    try:
        Price.objects.bulk_create(new, batch_size=500)
    except IntegrityError:  # another import or a person added one of these a moment ago; nothing was written
        raise Conflict("Prices were added while importing; run the import again.", code="duplicate_price")
    if created:
        audit_record(
            actor=actor, action=AuditAction.PRICES_IMPORTED, subject="prices", reason=f"{source}, in force from {effective_from:%Y-%m-%d}",
            extra={"created": len(created), "unchanged": len(unchanged), "conflicts": len(conflicts), "patterns": created[:100]},
        )
    return PriceImport(created=created, unchanged=unchanged, conflicts=conflicts)


def event_costs(events: list[CleanEvent], book: pricing.PriceBook | None = None, *,
                prompt_llms: dict[tuple[str, str, int], str] | None = None) -> list[tuple[float | None, bool]]:
    """(cost_usd, pricing_missing) of each event, in order.

    The cost a client sent wins. Otherwise an event with tokens is priced with the
    price of its `llm_model` in force on its day (UTC); with tokens but no such
    price it has no cost and is flagged pricing missing (a cost of 0 would hide
    spend from budgets); without tokens there is nothing to price. A prompt event
    that names no llm_model runs its prompt version's: `prompt_llms` maps
    ("prompt", name, version) to it. `book` None: read the prices (one query)
    only if some event needs them, so a batch without tokens costs no query.
    """
    out: list[tuple[float | None, bool]] = []
    for e in events:
        if e.cost_usd is not None:
            out.append((e.cost_usd, False))
        elif e.input_tokens is None and e.output_tokens is None:
            out.append((None, False))
        else:
            if book is None:
                book = price_book()
            llm_model = e.llm_model or (prompt_llms.get((e.kind, e.name, e.version), "") if prompt_llms and e.kind == "prompt" else "")
            # Timestamps arrive in UTC nearly always; astimezone only for the others.
            ts = e.timestamp
            entry = book.match(llm_model, ts.date() if ts.tzinfo is UTC else ts.astimezone(UTC).date()) if llm_model else None
            if entry is None:
                out.append((None, True))
            else:
                out.append((pricing.cost(entry, e.input_tokens, e.output_tokens, e.cached_tokens, e.reasoning_tokens), False))
    return out
