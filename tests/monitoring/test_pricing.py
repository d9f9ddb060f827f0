"""The numerical core of cost: LiteLLM's format, which price applies, the cost of a request (hand-computed values)."""

import json
from datetime import date
from pathlib import Path

import pytest

from monitoring.pricing import PriceBook, PriceEntry, PricingError, cost, parse_litellm

M = 1_000_000

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


def test_the_shipped_defaults_parse():
    data = json.loads((Path(__file__).resolve().parents[2] / "monitoring" / "data" / "prices.json").read_text())

    entries = {e.pattern: e for e in parse_litellm(data)}

    assert len(entries) >= 12
    assert {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3-mini", "claude-3-5-haiku*", "claude-sonnet-4*", "gemini-2.0-flash*"} <= set(entries)
    assert entries["gpt-4o-mini"].input_per_token * M == pytest.approx(0.15)


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
