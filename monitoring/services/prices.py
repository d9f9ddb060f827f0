"""The price table and the cost of each event: set and import prices, price a batch at ingestion.

The arithmetic and the matching rules live in pricing.py (no Django); this
module writes the Price table and applies the prices to ingested events.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime
from pathlib import Path
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

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
SNAPSHOT_NAME = re.compile(r"^litellm_prices_(\d{4}-\d{2}-\d{2})\.json$")
ALIASES = DATA_DIR / "price_aliases.json"
MAX_PRICE_FILE_BYTES = 16 * 1024 * 1024  # LiteLLM's whole map is about 3.5 MB
# A model's first shipped price also covers the time before it (there is no earlier one to keep), from this day on,
# so stored events of 2025 on find a price; a later change takes effect from its snapshot's date.
DEFAULTS_HISTORY_FROM = date(2025, 1, 1)


class PriceImport(NamedTuple):
    """The patterns an import created, found already there with the same prices, and found there with other prices (not written)."""

    created: list[str]
    unchanged: list[str]
    conflicts: list[str]


class PricesImported(NamedTuple):
    """What an import from a file or the shipped snapshot did: from which day, under which source, and the outcome."""

    effective_from: date
    source: str
    result: PriceImport


def _clean_price(field: str, value, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValidationFailed(f"{field}: a price must be a finite number, 0 or more.", fields={field: ["a finite number >= 0"]})
    return float(value)


def _clean_threshold(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationFailed("long_context_threshold: a whole number of input tokens, 1 or more.", fields={"long_context_threshold": ["a whole number >= 1"]})
    return value


def _clean_prices(entry: pricing.PriceEntry) -> tuple:
    """The entry's prices in PRICE_FIELDS order, each checked (the input and output prices are required);
    long-context prices only with a threshold, and a threshold only with at least one of them."""
    cleaned = tuple(
        _clean_threshold(value) if field == "long_context_threshold"
        else _clean_price(field, value, optional=field not in ("input_per_token", "output_per_token"))
        for field, value in zip(PRICE_FIELDS, entry.prices(), strict=True)
    )
    tier = dict(zip(PRICE_FIELDS, cleaned, strict=True))
    has_tier_price = any(v is not None for f, v in tier.items() if f.startswith("long_context_") and f != "long_context_threshold")
    if has_tier_price != (tier["long_context_threshold"] is not None):
        raise ValidationFailed(
            f"{entry.pattern}: long-context prices need long_context_threshold, and a threshold needs a long-context price.",
            fields={"long_context_threshold": ["given together with the long-context prices"]},
        )
    return cleaned


def _clean_pattern(pattern) -> str:
    pattern = pattern.strip() if isinstance(pattern, str) else ""
    if not pattern or len(pattern) > 200:
        raise ValidationFailed("pattern: an LLM model name or a glob such as gpt-4o-mini*, 1 to 200 characters.", fields={"pattern": ["1 to 200 characters"]})
    return pattern


def price_set(*, pattern: str, input_per_token: float, output_per_token: float, cached_input_per_token: float | None = None,
              reasoning_per_token: float | None = None, cache_creation_per_token: float | None = None,
              long_context_threshold: int | None = None, long_context_input_per_token: float | None = None,
              long_context_output_per_token: float | None = None, long_context_cached_input_per_token: float | None = None,
              long_context_cache_creation_per_token: float | None = None, effective_from: date, actor) -> Price:
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
    prices = dict(zip(PRICE_FIELDS, _clean_prices(pricing.PriceEntry(
        pattern, input_per_token, output_per_token, cached_input_per_token, reasoning_per_token,
        cache_creation_per_token=cache_creation_per_token, long_context_threshold=long_context_threshold,
        long_context_input_per_token=long_context_input_per_token, long_context_output_per_token=long_context_output_per_token,
        long_context_cached_input_per_token=long_context_cached_input_per_token,
        long_context_cache_creation_per_token=long_context_cache_creation_per_token,
    )), strict=True))
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
def prices_import(*, entries: list[pricing.PriceEntry], effective_from: date, actor, source: str,
                  new_patterns_from: date | None = None) -> PriceImport:
    """Add the entries whose prices changed, in force from `effective_from`, in one transaction.

    Per pattern, compared with its price in force on `effective_from` (the latest on or before it):
    the same prices are `unchanged` and nothing is written, so importing a newer snapshot adds a
    row only for the models whose prices changed (and the new ones), and importing the same file
    twice adds nothing. Other prices are `created` from `effective_from`, unless the pattern already
    has another price from that very day: a `conflict`, left as it is (a change needs a later
    date). `new_patterns_from`: a pattern with no price at all yet is in force from that earlier day
    instead (the shipped defaults price the history already stored). `actor` None: an operator's
    management command. `source` says where the prices come from (set by the server, never by the
    caller); one audit event lists the created ones."""
    if actor is not None:
        require_role(actor, EDITOR, "Importing prices")
    history: dict[str, list[tuple]] = {}
    for row in Price.objects.order_by("pattern", "effective_from").values_list("pattern", "effective_from", *PRICE_FIELDS):
        history.setdefault(row[0], []).append(row[1:])
    created, unchanged, conflicts = [], [], []
    new, seen = [], set()
    for entry in entries:
        pattern = _clean_pattern(entry.pattern)
        prices = _clean_prices(entry)
        if pattern in seen:  # a pattern repeated in one import counts once
            continue
        seen.add(pattern)
        rows = history.get(pattern, [])
        in_force = next((row for row in reversed(rows) if row[0] <= effective_from), None)
        if in_force is not None and tuple(in_force[1:]) == prices:
            unchanged.append(pattern)
        elif in_force is not None and in_force[0] == effective_from:
            conflicts.append(pattern)
        else:
            day = new_patterns_from if not rows and new_patterns_from is not None else effective_from
            created.append(pattern)
            new.append(Price(pattern=pattern, effective_from=day, source=source[:50], **dict(zip(PRICE_FIELDS, prices, strict=True))))
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


def bundled_prices(data_dir: Path = DATA_DIR) -> tuple[date, list[pricing.PriceEntry]]:
    """The shipped default prices: the newest LiteLLM snapshot in `data_dir` (litellm_prices_<date>.json, written by
    scripts/refresh_prices.py) and its date, with the names of price_aliases.json priced as the entry each names."""
    snapshots = sorted((m[1], path) for path in data_dir.glob("litellm_prices_*.json") if (m := SNAPSHOT_NAME.match(path.name)))
    if not snapshots:
        raise ValidationFailed(f"No price snapshot in {data_dir}: run scripts/refresh_prices.py.", code="no_snapshot")
    day, path = snapshots[-1]
    data = json.loads(path.read_text())
    aliases_path = data_dir / ALIASES.name
    aliases = json.loads(aliases_path.read_text())["aliases"] if aliases_path.exists() else {}
    for name, alias in aliases.items():
        if name not in data and alias["same_as"] in data:
            data[name] = data[alias["same_as"]]
    return date.fromisoformat(day), pricing.parse_litellm(data)


def prices_import_file(*, data: bytes | dict, effective_from: date | None, actor, filename: str = "") -> PricesImported:
    """Import an uploaded LiteLLM price map (the file's bytes, or the object already parsed from a JSON body), in force
    from `effective_from` (None: today, UTC): only the changed prices are added (prices_import). A file that is not
    such a map is a ValidationFailed naming the problem; source "import <file name>" (or "import by <user>")."""
    require_role(actor, EDITOR, "Importing prices")
    if isinstance(data, bytes):
        try:
            data = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ValidationFailed(f"The price file is not JSON: {exc}.", fields={"file": ["a LiteLLM JSON price map"]}, code="bad_price_file")
    try:
        entries = pricing.parse_litellm(data)
    except pricing.PricingError as exc:
        raise ValidationFailed(f"The price file cannot be read: {exc}.", fields={"file": [str(exc)]}, code="bad_price_file")
    if not entries:
        raise ValidationFailed("The price file has no entry priced per token (input_cost_per_token and output_cost_per_token).",
                               fields={"file": ["no token prices"]}, code="bad_price_file")
    day = effective_from or datetime.now(UTC).date()
    name = Path(filename).name[:40] if filename else ""
    source = f"import {name}" if name else f"import by {actor.username}"
    return PricesImported(day, source, prices_import(entries=entries, effective_from=day, actor=actor, source=source))


def prices_import_defaults(*, actor, data_dir: Path = DATA_DIR) -> PricesImported:
    """Import the shipped snapshot (bundled_prices): changed prices in force from the snapshot's date, the prices of
    models not priced yet from DEFAULTS_HISTORY_FROM. Source "default <date>"."""
    day, entries = bundled_prices(data_dir)
    source = f"default {day:%Y-%m-%d}"
    return PricesImported(day, source, prices_import(entries=entries, effective_from=day, actor=actor, source=source,
                                                     new_patterns_from=min(DEFAULTS_HISTORY_FROM, day)))


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
                out.append((pricing.cost(entry, e.input_tokens, e.output_tokens, e.cached_tokens, e.reasoning_tokens, e.cache_creation_tokens), False))
    return out
