"""The numerical core of cost: LiteLLM's format, which price applies, the cost of a request (hand-computed values)."""

import json
import re
import zipfile
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from monitoring.pricing import SNAPSHOT_FIELDS, TIERED, PriceBook, PriceEntry, PricingError, cost, parse_litellm
from monitoring.services.prices import bundled_prices
from scripts import refresh_prices

M = 1_000_000
SNAPSHOT = max((Path(__file__).resolve().parents[2] / "monitoring" / "data").glob("litellm_prices_*.json"))

# A few entries as they look in LiteLLM's model_prices_and_context_window.json.
LITELLM = {
    "sample_spec": {"max_tokens": "LEGACY", "input_cost_per_token": 0.0, "output_cost_per_token": 0.0, "mode": "one of: chat, embedding"},
    "gpt-4o": {
        "max_tokens": 16384, "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05, "cache_read_input_token_cost": 1.25e-06,
        "litellm_provider": "openai", "mode": "chat", "supports_vision": True,
    },
    "o3-mini": {
        "input_cost_per_token": 1.1e-06, "output_cost_per_token": 4.4e-06, "output_cost_per_reasoning_token": 4.4e-06,
        "litellm_provider": "openai", "mode": "chat",
    },
    "text-embedding-3-small": {"input_cost_per_token": 2e-08, "output_cost_per_token": 0.0, "litellm_provider": "openai", "mode": "embedding"},
    "dall-e-3": {"output_cost_per_image": 0.04, "litellm_provider": "openai", "mode": "image_generation"},
    "whisper-1": {"input_cost_per_second": 0.0001, "output_cost_per_second": 0.0001, "mode": "audio_transcription"},
    "half-priced": {"input_cost_per_token": 1e-06, "mode": "chat"},
}


def test_parse_litellm_keeps_entries_with_both_token_prices():
    entries = {e.pattern: e for e in parse_litellm(LITELLM)}

    assert set(entries) == {"gpt-4o", "o3-mini", "text-embedding-3-small"}
    assert entries["gpt-4o"] == PriceEntry("gpt-4o", 2.5e-06, 1e-05, cached_input_per_token=1.25e-06, reasoning_per_token=None)
    assert entries["o3-mini"].reasoning_per_token == 4.4e-06 and entries["o3-mini"].cached_input_per_token is None
    assert entries["text-embedding-3-small"].output_per_token == 0.0


@pytest.mark.parametrize("bad", [-1e-06, "0.1", float("nan"), True])
def test_parse_litellm_refuses_a_bad_price_naming_the_entry(bad):
    with pytest.raises(PricingError, match="gpt-x: input_cost_per_token"):
        parse_litellm({"gpt-x": {"input_cost_per_token": bad, "output_cost_per_token": 1e-06}})


def test_parse_litellm_refuses_what_is_not_a_table():
    with pytest.raises(PricingError):
        parse_litellm(["gpt-4o"])


def test_the_shipped_snapshot_has_the_list_prices():
    data = json.loads(SNAPSHOT.read_text())

    entries = {e.pattern: e for e in parse_litellm(data)}

    # Anthropic's and OpenAI's published list prices, USD per 1M tokens.
    assert (entries["claude-opus-4-5"].input_per_token, entries["claude-opus-4-5"].output_per_token) == (5e-06, 2.5e-05)
    assert entries["claude-opus-4-5"].cache_creation_per_token * M == pytest.approx(6.25)
    assert entries["claude-opus-4-5"].cached_input_per_token * M == pytest.approx(0.5)
    assert (entries["gpt-4o-mini"].input_per_token * M, entries["gpt-4o-mini"].output_per_token * M) == pytest.approx((0.15, 0.6))
    gemini = entries["gemini-2.5-pro"]
    assert (gemini.long_context_threshold, gemini.long_context_input_per_token * M, gemini.long_context_output_per_token * M) == (
        200_000, pytest.approx(2.5), pytest.approx(15))


def test_the_snapshot_keeps_only_token_prices_and_the_fields_read():
    data = json.loads(SNAPSHOT.read_text())

    fields = {field for spec in data.values() for field in spec}

    assert "sample_spec" not in data and len(data) > 3000
    assert all(spec["input_cost_per_token"] is not None and spec["output_cost_per_token"] is not None for spec in data.values())
    assert all(re.fullmatch(rf"({'|'.join(TIERED)})_above_[0-9]+k?_tokens", f) for f in fields - set(SNAPSHOT_FIELDS))
    assert not {"max_tokens", "supports_vision", "mode", "output_cost_per_image"} & fields


def test_no_glob_in_the_defaults_overrides_a_more_specific_entry():
    day, entries = bundled_prices()
    book = PriceBook([replace(e, effective_from=day) for e in entries])

    wrong = [e.pattern for e in entries if book.match(e.pattern, day).pattern != e.pattern]

    assert wrong == []
    # the hand-typed glob "claude-opus-4*" priced Opus 4.5 at Opus 4's 15 / 75 USD per 1M tokens
    assert book.match("claude-opus-4-5-20251101", day).input_per_token == 5e-06
    assert book.match("claude-opus-4-20250514", day).input_per_token == 1.5e-05  # an alias: the Bedrock entry's price


def test_cost_of_cached_and_reasoning_tokens_by_hand():
    # 1,000 input of which 200 cached, 500 output of which 100 reasoning; per 1M tokens:
    # input 2, cached 0.5, output 8, reasoning 12 -> (800 x 2 + 200 x 0.5 + 400 x 8 + 100 x 12) / 1M = 6,100 / 1M.
    entry = PriceEntry("m", 2 / M, 8 / M, cached_input_per_token=0.5 / M, reasoning_per_token=12 / M)

    assert cost(entry, 1000, 500, 200, 100) == pytest.approx(0.0061, rel=1e-12)


def test_cost_without_cached_and_reasoning_prices_uses_input_and_output_prices():
    # (1,000 x 2 + 500 x 8) / 1M: the cached and reasoning tokens cost what the others cost.
    entry = PriceEntry("m", 2 / M, 8 / M)

    assert cost(entry, 1000, 500, 200, 100) == pytest.approx(0.006, rel=1e-12)
    assert cost(entry, 1000, 500) == pytest.approx(0.006, rel=1e-12)
    assert cost(entry, None, 500) == pytest.approx(0.004, rel=1e-12)


def test_cost_of_cache_creation_tokens_by_hand():
    # 10,000 input: 2,000 read from the cache, 3,000 written to it; 1,000 output. Per 1M tokens: input 5,
    # cache read 0.5, cache write 6.25, output 25 -> 5,000 x 5 + 2,000 x 0.5 + 3,000 x 6.25 + 1,000 x 25 = 69,750 / 1M.
    entry = PriceEntry("m", 5 / M, 25 / M, cached_input_per_token=0.5 / M, cache_creation_per_token=6.25 / M)

    assert cost(entry, 10_000, 1000, cached_tokens=2000, cache_creation_tokens=3000) == pytest.approx(0.06975, rel=1e-12)
    # without a cache-write price the written tokens cost the input price: 5,000 x 5 + 1,000 + 3,000 x 5 + 25,000 = 66,000 / 1M
    assert cost(replace(entry, cache_creation_per_token=None), 10_000, 1000, 2000, None, 3000) == pytest.approx(0.066, rel=1e-12)


def test_cost_above_the_long_context_threshold_prices_every_token_at_the_long_context_prices():
    # gemini-2.5-pro's list prices per 1M tokens: input 1.25 / 2.50 above 200k, output 10 / 15, cache read 0.125 / 0.25.
    entry = PriceEntry("gemini-2.5-pro", 1.25 / M, 10 / M, cached_input_per_token=0.125 / M, long_context_threshold=200_000,
                       long_context_input_per_token=2.5 / M, long_context_output_per_token=15 / M, long_context_cached_input_per_token=0.25 / M)

    at_threshold = cost(entry, 200_000, 1000, cached_tokens=50_000)
    above = cost(entry, 200_001, 1000, cached_tokens=50_000)

    assert at_threshold == pytest.approx((150_000 * 1.25 + 50_000 * 0.125 + 1000 * 10) / M, rel=1e-12)
    assert above == pytest.approx((150_001 * 2.5 + 50_000 * 0.25 + 1000 * 15) / M, rel=1e-12)


def test_an_inclusive_threshold_provider_bills_the_long_context_from_the_threshold_itself():
    data = {"grok-x": {"input_cost_per_token": 2e-06, "output_cost_per_token": 1e-05, "input_cost_per_token_above_128k_tokens": 4e-06,
                       "litellm_provider": "xai"}}

    (entry,) = parse_litellm(data)

    assert cost(entry, 128_000, 0) == pytest.approx(128_000 * 4e-06, rel=1e-12)
    assert cost(entry, 127_999, 0) == pytest.approx(127_999 * 2e-06, rel=1e-12)


@pytest.mark.parametrize(("name", "expected"), [
    ("gemini/gemini-2.5-pro", "gemini/gemini-2.5-pro"),  # the exact prefixed entry when there is one
    ("vertex_ai/gemini-2.5-pro", "gemini-2.5-pro"),  # else the name without its prefix
    ("bedrock/anthropic.claude-x-v1:0", "anthropic.claude-x-v1:0"),
    ("azure/openai/gpt-4o", "gpt-4o"),  # every known prefix comes off
    ("openai/gpt-4o-2024-08-06", "gpt-4o*"),  # no exact name with or without the prefix: the globs, on each name
    ("meta-llama/gpt-4o", None),  # not a provider prefix: left on
])
def test_match_resolves_provider_prefixed_names(name, expected):
    day = date(2025, 3, 1)
    book = PriceBook([
        PriceEntry(pattern, 1 / M, 1 / M, effective_from=date(2025, 1, 1))
        for pattern in ("gemini/gemini-2.5-pro", "gemini-2.5-pro", "anthropic.claude-x-v1:0", "gpt-4o", "gpt-4o*", "openai/gpt-4o-2024*x")
    ])

    found = book.match(name, day)

    assert (found.pattern if found else None) == expected


def test_an_exact_unprefixed_name_wins_over_a_glob_on_the_prefixed_name():
    day = date(2025, 3, 1)
    book = PriceBook([PriceEntry("openai/*", 9 / M, 9 / M), PriceEntry("gpt-4o", 2.5 / M, 10 / M)])

    assert book.match("openai/gpt-4o", day).pattern == "gpt-4o"


def test_match_exact_name_before_globs_and_the_longest_literal_prefix_first():
    day = date(2025, 3, 1)
    book = PriceBook([
        PriceEntry("gpt-4o*", 2.5 / M, 10 / M, effective_from=date(2025, 1, 1)),
        PriceEntry("gpt-4o-mini*", 0.15 / M, 0.6 / M, effective_from=date(2025, 1, 1)),
        PriceEntry("gpt-4o-mini", 0.1 / M, 0.5 / M, effective_from=date(2025, 1, 1)),
        PriceEntry("gpt-?o-mini-2024*", 9 / M, 9 / M, effective_from=date(2025, 1, 1)),  # shorter literal prefix than gpt-4o-mini*
    ])

    assert book.match("gpt-4o-mini", day).pattern == "gpt-4o-mini"
    assert book.match("gpt-4o-mini-2024-07-18", day).pattern == "gpt-4o-mini*"
    assert book.match("gpt-4o-2024-08-06", day).pattern == "gpt-4o*"
    assert book.match("gpt-5o-mini-2024-01", day).pattern == "gpt-?o-mini-2024*"
    assert book.match("claude-sonnet-4", day) is None
    assert book.match("GPT-4O", day) is None  # names are compared as they are


def test_match_takes_the_price_in_force_on_the_day():
    book = PriceBook([
        PriceEntry("gpt-4o", 5 / M, 15 / M, effective_from=date(2024, 5, 13)),
        PriceEntry("gpt-4o", 2.5 / M, 10 / M, effective_from=date(2024, 10, 1)),
    ])

    assert book.match("gpt-4o", date(2024, 5, 12)) is None
    assert book.match("gpt-4o", date(2024, 5, 13)).input_per_token == 5 / M
    assert book.match("gpt-4o", date(2024, 9, 30)).input_per_token == 5 / M
    assert book.match("gpt-4o", date(2024, 10, 1)).input_per_token == 2.5 / M
    assert book.match("gpt-4o", date(2026, 1, 1)).input_per_token == 2.5 / M


def test_an_exact_price_not_yet_in_force_falls_back_to_a_glob():
    book = PriceBook([
        PriceEntry("claude-*", 3 / M, 15 / M, effective_from=date(2025, 1, 1)),
        PriceEntry("claude-sonnet-4", 2 / M, 10 / M, effective_from=date(2025, 6, 1)),
    ])

    assert book.match("claude-sonnet-4", date(2025, 5, 31)).pattern == "claude-*"
    assert book.match("claude-sonnet-4", date(2025, 6, 1)).pattern == "claude-sonnet-4"


def test_match_is_cached_per_model_and_day():
    book = PriceBook([PriceEntry("gpt-4o", 2.5 / M, 10 / M)])

    first = book.match("gpt-4o", date(2025, 1, 1))

    assert book.match("gpt-4o", date(2025, 1, 1)) is first
    assert len(book) == 1


# --- scripts/refresh_prices.py ----------------------------------------------------------------------


MAP = {
    "sample_spec": {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
    "gpt-x": {"input_cost_per_token": 1e-06, "output_cost_per_token": 4e-06, "cache_read_input_token_cost": 5e-07, "max_tokens": 128000,
              "supports_vision": True, "mode": "chat", "litellm_provider": "openai", "input_cost_per_token_above_200k_tokens": 2e-06,
              "input_cost_per_token_batches": 5e-07, "input_cost_per_token_above_200k_tokens_priority": 9e-06},
    "dall-e-x": {"output_cost_per_image": 0.04, "mode": "image_generation"},
    "half": {"input_cost_per_token": 1e-06, "output_cost_per_token": None},
}
TRIMMED = {"gpt-x": {"input_cost_per_token": 1e-06, "output_cost_per_token": 4e-06, "cache_read_input_token_cost": 5e-07,
                     "litellm_provider": "openai", "input_cost_per_token_above_200k_tokens": 2e-06}}


def test_refresh_prices_writes_a_dated_trimmed_snapshot_from_a_json_file(tmp_path):
    source = tmp_path / "map.json"
    source.write_text(json.dumps(MAP))

    written = refresh_prices.main([str(source), "--date", "2026-02-03", "--out", str(tmp_path)])

    assert written == tmp_path / "litellm_prices_2026-02-03.json"
    assert json.loads(written.read_text()) == TRIMMED


def test_refresh_prices_reads_the_map_inside_a_litellm_wheel(tmp_path):
    wheel = tmp_path / "litellm-9.9.9-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(refresh_prices.MAP_IN_WHEEL, json.dumps(MAP))

    written = refresh_prices.main([str(wheel), "--date", "2026-02-04", "--out", str(tmp_path)])

    assert json.loads(written.read_text()) == TRIMMED
