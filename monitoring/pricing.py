"""LLM token prices: reading LiteLLM's price table, finding the price in force, the cost of a request. No Django.

Cost per request (docs/metrics.md, "Cost"), with cached tokens counted
inside the input tokens and reasoning tokens inside the output tokens, as
OpenAI's and Anthropic's usage report them:

    cost = (input - cached) x input price + cached x cached-input price
         + (output - reasoning) x output price + reasoning x reasoning price

A missing cached-input price is the input price, a missing reasoning price the
output price. Prices are USD per token.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase

GLOB_CHARS = "*?["
# LiteLLM's field names (model_prices_and_context_window.json).
LITELLM_INPUT, LITELLM_OUTPUT = "input_cost_per_token", "output_cost_per_token"
LITELLM_CACHED, LITELLM_REASONING = "cache_read_input_token_cost", "output_cost_per_reasoning_token"


class PricingError(ValueError):
    """A price table that cannot be read (the message names the entry and field)."""


@dataclass(frozen=True)
class PriceEntry:
    """USD per token for LLM model names matching `pattern` (an exact name or a glob), from `effective_from` on."""

    pattern: str
    input_per_token: float
    output_per_token: float
    cached_input_per_token: float | None = None  # None: the input price
    reasoning_per_token: float | None = None  # None: the output price
    effective_from: date = date.min

    @property
    def is_glob(self) -> bool:
        return any(c in self.pattern for c in GLOB_CHARS)


def _price(name: str, field: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise PricingError(f"{name}: {field} must be a finite number >= 0, got {value!r}")
    return float(value)


def parse_litellm(data: dict) -> list[PriceEntry]:
    """The token prices of a LiteLLM `model_prices_and_context_window.json` (keys are model names).

    Every entry with both `input_cost_per_token` and `output_cost_per_token` is
    kept, whatever its `mode` (an embedding model has token prices too); entries
    priced otherwise (per image, per second), `sample_spec` and anything that is
    not an object are skipped. `cache_read_input_token_cost` and
    `output_cost_per_reasoning_token` become the cached and reasoning prices.
    The entries carry no date: the importer says from when they are in force.
    """
    if not isinstance(data, dict):
        raise PricingError("a LiteLLM price table is a JSON object of model name to its prices")
    entries = []
    for name, spec in data.items():
        if name == "sample_spec" or not isinstance(spec, dict) or spec.get(LITELLM_INPUT) is None or spec.get(LITELLM_OUTPUT) is None:
            continue
        name = name.strip()
        if not name or len(name) > 200:
            raise PricingError(f"{name[:50]!r}: a model name must have 1 to 200 characters")
        optional = {field: spec.get(field) for field in (LITELLM_CACHED, LITELLM_REASONING)}
        entries.append(
            PriceEntry(
                pattern=name,
                input_per_token=_price(name, LITELLM_INPUT, spec[LITELLM_INPUT]),
                output_per_token=_price(name, LITELLM_OUTPUT, spec[LITELLM_OUTPUT]),
                cached_input_per_token=None if optional[LITELLM_CACHED] is None else _price(name, LITELLM_CACHED, optional[LITELLM_CACHED]),
                reasoning_per_token=None if optional[LITELLM_REASONING] is None else _price(name, LITELLM_REASONING, optional[LITELLM_REASONING]),
            )
        )
    return entries


def cost(entry: PriceEntry, input_tokens: int | None, output_tokens: int | None, cached_tokens: int | None = None,
         reasoning_tokens: int | None = None) -> float:
    """USD of one request: (input - cached) x p_in + cached x p_cached + (output - reasoning) x p_out + reasoning x p_reasoning.

    p_cached defaults to p_in and p_reasoning to p_out; a token count left out is 0.
    """
    input_tokens, output_tokens = input_tokens or 0, output_tokens or 0
    cached, reasoning = cached_tokens or 0, reasoning_tokens or 0
    p_cached = entry.input_per_token if entry.cached_input_per_token is None else entry.cached_input_per_token
    p_reasoning = entry.output_per_token if entry.reasoning_per_token is None else entry.reasoning_per_token
    return (
        (input_tokens - cached) * entry.input_per_token + cached * p_cached
        + (output_tokens - reasoning) * entry.output_per_token + reasoning * p_reasoning
    )


class PriceBook:
    """All price entries, indexed once, answering "which price applies to this LLM on this day".

    Build one per request or job and throw it away: its match cache is not shared
    between processes, and a price added later is seen by the next book.
    """

    def __init__(self, entries: list[PriceEntry]):
        by_pattern: dict[str, list[PriceEntry]] = {}
        for entry in entries:
            by_pattern.setdefault(entry.pattern, []).append(entry)
        # Per pattern, its entries by date with the dates alone beside them for bisect.
        self._history = {p: sorted(found, key=lambda e: e.effective_from) for p, found in by_pattern.items()}
        self._dates = {p: [e.effective_from for e in found] for p, found in self._history.items()}
        # The most specific glob first: the longest literal text before its first wildcard
        # ("gpt-4o-mini*" before "gpt-4o*"), then the longer pattern, then by name so the order never depends on input order.
        globs = [p for p in self._history if any(c in p for c in GLOB_CHARS)]
        self._globs = sorted(globs, key=lambda p: (-_literal_prefix_length(p), -len(p), p))
        self._cache: dict[tuple[str, date], PriceEntry | None] = {}

    def __len__(self) -> int:
        return sum(len(found) for found in self._history.values())

    def _in_force(self, pattern: str, at: date) -> PriceEntry | None:
        k = bisect.bisect_right(self._dates[pattern], at)
        return self._history[pattern][k - 1] if k else None

    def match(self, llm_model: str, at: date) -> PriceEntry | None:
        """The price of `llm_model` in force on day `at` (the entry with the latest effective_from <= at).

        The exact name first; then the glob patterns, most specific first (longest
        literal prefix); the first that has a price in force on that day wins.
        Cached per (llm_model, day): a batch repeats the same few models.
        """
        key = (llm_model, at)
        if key in self._cache:
            return self._cache[key]
        found = self._in_force(llm_model, at) if llm_model in self._history else None
        if found is None:
            for pattern in self._globs:
                if fnmatchcase(llm_model, pattern):
                    found = self._in_force(pattern, at)
                    if found is not None:
                        break
        self._cache[key] = found
        return found


def _literal_prefix_length(pattern: str) -> int:
    return min((pattern.index(c) for c in GLOB_CHARS if c in pattern), default=len(pattern))
