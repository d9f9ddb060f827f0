"""LLM token prices: reading LiteLLM's price table, finding the price in force, the cost of a request. No Django.

Cost per request (docs/metrics.md, "Cost"), with cached (cache-read) and cache-creation
tokens counted inside the input tokens and reasoning tokens inside the output tokens, as
OpenAI's and Anthropic's usage report them (LiteLLM counts them the same way):

    cost = (input - cached - cache_creation) x input price + cached x cached-input price
         + cache_creation x cache-creation price
         + (output - reasoning) x output price + reasoning x reasoning price

A missing cached-input or cache-creation price is the input price, a missing reasoning
price the output price. Long context: when the request's input tokens (all of them,
cached included) are above the entry's threshold (200k for most models LiteLLM prices
that way), each of the four input and output prices is its long-context price where the
entry has one, as LiteLLM's `_get_token_base_cost` does. Prices are USD per token.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass
from datetime import date
from fnmatch import fnmatchcase

GLOB_CHARS = "*?["
# LiteLLM's field names (model_prices_and_context_window.json).
LITELLM_INPUT, LITELLM_OUTPUT = "input_cost_per_token", "output_cost_per_token"
LITELLM_CACHED, LITELLM_REASONING = "cache_read_input_token_cost", "output_cost_per_reasoning_token"
LITELLM_CACHE_CREATION = "cache_creation_input_token_cost"
# The four prices that have a long-context tier, e.g. input_cost_per_token_above_200k_tokens.
TIERED = (LITELLM_INPUT, LITELLM_OUTPUT, LITELLM_CACHED, LITELLM_CACHE_CREATION)
_TIER_KEY = re.compile(rf"^({'|'.join(TIERED)})_above_(\d+)(k?)_tokens$")
# LiteLLM bills the long-context tier from the threshold itself (>=) for these providers, above it (>) for the others.
INCLUSIVE_THRESHOLD_PROVIDERS = frozenset({"xai"})
# What a trimmed snapshot keeps of each entry (scripts/refresh_prices.py): the prices read here, and the provider
# (which decides whether a threshold is inclusive).
SNAPSHOT_FIELDS = (LITELLM_INPUT, LITELLM_OUTPUT, LITELLM_CACHED, LITELLM_CACHE_CREATION, LITELLM_REASONING, "litellm_provider")
# LiteLLM's provider prefixes (its keys are "<provider>/<model>"), and a client's model names often carry one too.
PROVIDER_PREFIXES = ("openai", "azure", "azure_ai", "anthropic", "bedrock", "vertex_ai", "vertex_ai_beta", "gemini", "mistral",
                     "groq", "together_ai", "fireworks_ai", "deepseek", "xai", "openrouter", "cohere", "perplexity")


class PricingError(ValueError):
    """A price table that cannot be read (the message names the entry and field)."""


@dataclass(frozen=True)
class PriceEntry:
    """USD per token for LLM model names matching `pattern` (an exact name or a glob), from `effective_from` on.

    `long_context_threshold`: above that many input tokens in one request, the `long_context_*` prices
    apply (each None: that price has no long-context tier)."""

    pattern: str
    input_per_token: float
    output_per_token: float
    cached_input_per_token: float | None = None  # None: the input price
    reasoning_per_token: float | None = None  # None: the output price
    effective_from: date = date.min
    cache_creation_per_token: float | None = None  # None: the input price
    long_context_threshold: int | None = None
    long_context_input_per_token: float | None = None
    long_context_output_per_token: float | None = None
    long_context_cached_input_per_token: float | None = None
    long_context_cache_creation_per_token: float | None = None

    @property
    def is_glob(self) -> bool:
        return any(c in self.pattern for c in GLOB_CHARS)

    def prices(self) -> tuple:
        """Every price and the threshold, without the pattern and date: two entries with equal prices() price alike."""
        return tuple(getattr(self, name) for name in PRICE_FIELDS)


# The names of PriceEntry's prices, in prices() order (the Price model has the same fields).
PRICE_FIELDS = (
    "input_per_token", "output_per_token", "cached_input_per_token", "reasoning_per_token", "cache_creation_per_token",
    "long_context_threshold", "long_context_input_per_token", "long_context_output_per_token",
    "long_context_cached_input_per_token", "long_context_cache_creation_per_token",
)


def _price(name: str, field: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise PricingError(f"{name}: {field} must be a finite number >= 0, got {value!r}")
    return float(value)


def _optional(name: str, spec: dict, field: str) -> float | None:
    return None if spec.get(field) is None else _price(name, field, spec[field])


def _long_context(name: str, spec: dict) -> dict:
    """The entry's long-context tier: its lowest threshold and the four prices there.

    A handful of LiteLLM entries have two thresholds (e.g. 128k and 256k); one tier is kept,
    the lowest, so a request between them is priced as LiteLLM does and one above both is not."""
    tiers: dict[int, dict[str, float]] = {}
    for key, value in spec.items():
        m = _TIER_KEY.match(key)
        if m and value is not None:
            threshold = int(m[2]) * (1000 if m[3] else 1)
            tiers.setdefault(threshold, {})[m[1]] = _price(name, key, value)
    if not tiers:
        return {}
    threshold = min(tiers)
    tier = tiers[threshold]
    if spec.get("litellm_provider") in INCLUSIVE_THRESHOLD_PROVIDERS:
        threshold -= 1  # tokens are whole: ">= N" is "> N - 1"
    return {
        "long_context_threshold": threshold,
        "long_context_input_per_token": tier.get(LITELLM_INPUT),
        "long_context_output_per_token": tier.get(LITELLM_OUTPUT),
        "long_context_cached_input_per_token": tier.get(LITELLM_CACHED),
        "long_context_cache_creation_per_token": tier.get(LITELLM_CACHE_CREATION),
    }


def _priced_per_token(spec) -> bool:
    return isinstance(spec, dict) and spec.get(LITELLM_INPUT) is not None and spec.get(LITELLM_OUTPUT) is not None


def parse_litellm(data: dict) -> list[PriceEntry]:
    """The token prices of a LiteLLM `model_prices_and_context_window.json` (keys are model names).

    Every entry with both `input_cost_per_token` and `output_cost_per_token` is
    kept, whatever its `mode` (an embedding model has token prices too); entries
    priced otherwise (per image, per second), `sample_spec` and anything that is
    not an object are skipped. `cache_read_input_token_cost`,
    `cache_creation_input_token_cost` and `output_cost_per_reasoning_token` become the
    cached, cache-creation and reasoning prices; `<price>_above_<N>k_tokens` the long-context tier.
    The entries carry no date: the importer says from when they are in force.
    """
    if not isinstance(data, dict):
        raise PricingError("a LiteLLM price table is a JSON object of model name to its prices")
    entries = []
    for name, spec in data.items():
        if name == "sample_spec" or not _priced_per_token(spec):
            continue
        name = name.strip()
        if not name or len(name) > 200:
            raise PricingError(f"{name[:50]!r}: a model name must have 1 to 200 characters")
        entries.append(
            PriceEntry(
                pattern=name,
                input_per_token=_price(name, LITELLM_INPUT, spec[LITELLM_INPUT]),
                output_per_token=_price(name, LITELLM_OUTPUT, spec[LITELLM_OUTPUT]),
                cached_input_per_token=_optional(name, spec, LITELLM_CACHED),
                reasoning_per_token=_optional(name, spec, LITELLM_REASONING),
                cache_creation_per_token=_optional(name, spec, LITELLM_CACHE_CREATION),
                **_long_context(name, spec),
            )
        )
    return entries


def snapshot_trim(data: dict) -> dict:
    """LiteLLM's map cut to what parse_litellm reads: the entries priced per token, each with SNAPSHOT_FIELDS and its
    long-context prices only (the file shipped in monitoring/data stays a few hundred kB instead of over a MB)."""
    if not isinstance(data, dict):
        raise PricingError("a LiteLLM price table is a JSON object of model name to its prices")
    return {
        name: {k: v for k, v in spec.items() if v is not None and (k in SNAPSHOT_FIELDS or _TIER_KEY.match(k))}
        for name, spec in data.items()
        if name != "sample_spec" and _priced_per_token(spec)
    }


def cost(entry: PriceEntry, input_tokens: int | None, output_tokens: int | None, cached_tokens: int | None = None,
         reasoning_tokens: int | None = None, cache_creation_tokens: int | None = None) -> float:
    """USD of one request: (input - cached - cache_creation) x p_in + cached x p_cached + cache_creation x p_creation
    + (output - reasoning) x p_out + reasoning x p_reasoning.

    p_cached and p_creation default to p_in, p_reasoning to p_out; a token count left out is 0. Above the entry's
    long-context threshold (input tokens > threshold), p_in, p_out, p_cached and p_creation are the long-context
    prices the entry has (a missing long-context cached or creation price: the short-context one, else the
    long-context input price; a missing reasoning price: the long-context output price), as LiteLLM prices them.
    """
    input_tokens, output_tokens = input_tokens or 0, output_tokens or 0
    cached, reasoning, creation = cached_tokens or 0, reasoning_tokens or 0, cache_creation_tokens or 0
    p_in, p_out = entry.input_per_token, entry.output_per_token
    p_cached, p_creation = entry.cached_input_per_token, entry.cache_creation_per_token
    if entry.long_context_threshold is not None and input_tokens > entry.long_context_threshold:
        p_in = _first(entry.long_context_input_per_token, p_in)
        p_out = _first(entry.long_context_output_per_token, p_out)
        p_cached = _first(entry.long_context_cached_input_per_token, p_cached)
        p_creation = _first(entry.long_context_cache_creation_per_token, p_creation)
    p_cached, p_creation = _first(p_cached, p_in), _first(p_creation, p_in)
    p_reasoning = _first(entry.reasoning_per_token, p_out)
    return (
        (input_tokens - cached - creation) * p_in + cached * p_cached + creation * p_creation
        + (output_tokens - reasoning) * p_out + reasoning * p_reasoning
    )


def _first(value: float | None, otherwise: float | None) -> float | None:
    return otherwise if value is None else value


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

        Names tried in order: the name as given, then without its provider prefix(es)
        (`gemini/gemini-2.5-pro`, then `gemini-2.5-pro`; `bedrock/anthropic.claude-...`, then
        `anthropic.claude-...`; only the prefixes in PROVIDER_PREFIXES are taken off). First every
        name exactly, then the glob patterns, most specific first (longest literal prefix), on each
        name in the same order: an exact entry always wins over a glob. The first with a price in
        force on that day wins. Cached per (llm_model, day): a batch repeats the same few models.
        """
        key = (llm_model, at)
        if key in self._cache:
            return self._cache[key]
        names = unprefixed_names(llm_model)
        found = None
        for name in names:
            if name in self._history:
                found = self._in_force(name, at)
                if found is not None:
                    break
        if found is None:
            found = next((e for name in names for p in self._globs if fnmatchcase(name, p) and (e := self._in_force(p, at))), None)
        self._cache[key] = found
        return found


def unprefixed_names(llm_model: str) -> list[str]:
    """`llm_model`, then the same name with each leading provider prefix taken off in turn
    ("vertex_ai/gemini-2.5-pro" -> ["vertex_ai/gemini-2.5-pro", "gemini-2.5-pro"])."""
    names = [llm_model]
    while "/" in names[-1] and names[-1].split("/", 1)[0].lower() in PROVIDER_PREFIXES:
        names.append(names[-1].split("/", 1)[1])
    return names


def _literal_prefix_length(pattern: str) -> int:
    return min((pattern.index(c) for c in GLOB_CHARS if c in pattern), default=len(pattern))
