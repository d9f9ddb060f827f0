"""Our cost of a request against LiteLLM's own cost_per_token, on the same price map (the shipped snapshot is
LiteLLM 1.110.2's map, trimmed; litellm is a test-only dependency, read with its bundled map, no network)."""

import json
import os
from pathlib import Path

import pytest

os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # its bundled map, never a download
litellm = pytest.importorskip("litellm")
from litellm.types.utils import PromptTokensDetailsWrapper, Usage  # noqa: E402

from monitoring.pricing import cost, parse_litellm  # noqa: E402

SNAPSHOT = max((Path(__file__).resolve().parents[2] / "monitoring" / "data").glob("litellm_prices_*.json"))
# (model, LiteLLM's provider for it): cache writes, the 200k tier, its cache prices, reasoning, a 272k tier, Bedrock.
MODELS = [
    ("claude-opus-4-5", "anthropic"),
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-haiku-4-5", "anthropic"),
    ("gemini-2.5-pro", "vertex_ai"),
    ("gemini-2.5-flash", "vertex_ai"),
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("o3-mini", "openai"),
    ("gpt-5", "openai"),
    ("anthropic.claude-sonnet-4-20250514-v1:0", "bedrock"),
]
# (input, cached, cache creation, output, reasoning): short, around the 200k threshold, above it, above 272k.
USAGES = [
    (1000, 0, 0, 500, 0),
    (12_000, 4000, 2000, 800, 300),
    (200_000, 50_000, 10_000, 2000, 0),
    (200_001, 50_000, 10_000, 2000, 0),
    (250_000, 10_000, 5000, 1000, 0),
    (300_000, 100_000, 0, 4000, 1000),
]


@pytest.fixture(scope="module")
def entries():
    return {e.pattern: e for e in parse_litellm(json.loads(SNAPSHOT.read_text()))}


@pytest.mark.parametrize(("model", "provider"), MODELS)
@pytest.mark.parametrize("usage", USAGES)
def test_cost_equals_litellm_cost_per_token(entries, model, provider, usage):
    input_tokens, cached, creation, output, reasoning = usage
    litellm_usage = Usage(
        prompt_tokens=input_tokens,
        completion_tokens=output,
        cache_creation_input_tokens=creation,
        prompt_tokens_details=PromptTokensDetailsWrapper(cached_tokens=cached, cache_creation_tokens=creation),
        completion_tokens_details={"reasoning_tokens": reasoning},
    )

    prompt_cost, completion_cost = litellm.cost_per_token(model=model, custom_llm_provider=provider, usage_object=litellm_usage)
    ours = cost(entries[model], input_tokens, output, cached, reasoning, creation)

    assert ours == pytest.approx(prompt_cost + completion_cost, rel=1e-9)
