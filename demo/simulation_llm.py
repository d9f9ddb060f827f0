"""What demo LLM traffic looks like: served requests of a prompt version, their tokens, latency and quality, and a change. No Django.

As in simulation.py, every random number of event i comes from a block seeded by
(seed, stream, i // BLOCK), so a seed gives the same events whatever the batch size
or rate; the change (answers `output_growth` times longer, judge scores and
feedback a little worse) only transforms those numbers. Used by
`manage.py simulate_llm_traffic`.

The latency is the whole response time: the time to the first token, then the
answer streamed at the request's decoding speed,

    latency_ms = ttft_ms + 1000 * output_tokens / tokens_per_second

so longer answers are slower too. Cached tokens are counted inside the input
tokens, as OpenAI's and Anthropic's usage report them (and as pricing.py prices them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .simulation import BLOCK, BlockDraws, unit_numbers

ERROR_SHARE = 0.01
TIMEOUT_SHARE = 0.3  # of the errors: the client gave up; the others failed fast (rate limit, overload)
TIMEOUT_MS = 30_000.0
SLOW_SHARE = 0.02  # an overloaded provider decodes at a third of its speed
GUARDRAIL_SHARE = 0.03
FEEDBACK_SHARE = 0.06  # of the successful requests, a user clicked thumbs up or down
POSITIVE_FEEDBACK = 0.88
JUDGED_SHARE = 0.2  # of the successful requests, sampled for the LLM judge and the faithfulness check
QUALITY_SHIFT = -0.45  # after the change, on the logit scale of the judge score and of P(thumbs up)


@dataclass(frozen=True)
class LlmProfile:
    """Tokens, speed and quality of one kind of prompt; token counts are log-normal around their medians."""

    name: str
    input_median: float
    input_sigma: float
    output_median: float
    output_sigma: float
    cache_hit_share: float  # requests that reuse the provider's cached prompt prefix
    cached_share: tuple[float, float]  # on a hit, the share of the input read from the cache (uniform between the two)
    ttft_ms: float  # median time to the first token
    tokens_per_second: float  # median decoding speed
    judge_median: float  # judge score of the median request, before the change
    faithfulness_median: float
    unit_prefix: str
    units: int


# Long answers from a moderate, mostly cached input: the output is most of the cost, so a change
# in answer length shows in the cost per request.
SUMMARIZE = LlmProfile(
    name="summarize", input_median=800, input_sigma=0.6, output_median=420, output_sigma=0.35, cache_hit_share=0.7,
    cached_share=(0.5, 0.9), ttft_ms=380, tokens_per_second=80, judge_median=0.84, faithfulness_median=0.92, unit_prefix="user-", units=5_000,
)
CLASSIFY = LlmProfile(
    name="classify", input_median=350, input_sigma=0.5, output_median=12, output_sigma=0.3, cache_hit_share=0.8,
    cached_share=(0.6, 0.9), ttft_ms=250, tokens_per_second=90, judge_median=0.9, faithfulness_median=0.95, unit_prefix="agent-", units=800,
)
LLM_PROFILES = {p.name: p for p in (SUMMARIZE, CLASSIFY)}


def llm_profile_for(prompt: str) -> str:
    name = prompt.lower()
    return "classify" if "classif" in name or "label" in name or "route" in name else "summarize"


class LlmDraws(BlockDraws):
    """The random numbers of a prompt's events (normals for sizes, speeds and scores, uniforms for the rest)."""

    NORMAL = ("input", "output", "ttft", "speed", "judge", "faithfulness")
    UNIFORM = ("cache_hit", "cache_share", "slow", "error", "error_kind", "error_latency", "guardrail", "feedback", "feedback_sign",
               "judged", "unit", "jitter")

    def _draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        out = {key: rng.standard_normal(BLOCK) for key in self.NORMAL}
        out.update({key: rng.random(BLOCK) for key in self.UNIFORM})
        return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def simulate_llm(profile: LlmProfile, draws: dict[str, np.ndarray], changed: np.ndarray, output_growth: float = 1.0,
                 quality_shift: np.ndarray | float = 0.0) -> dict:
    """Tokens, latencies, error, guardrail, feedback, judge score, faithfulness and unit of each row of `draws`.

    `changed` rows have answers `output_growth` times longer (the same draw, scaled) and a quality
    shifted by QUALITY_SHIFT. `quality_shift` (one per row, or one for all) moves the quality further
    on the same logit scale: the version an A/B test serves a row from is better or worse. A failed
    request has no tokens, no time to first token and no quality signals; `feedback` is 0 and the
    scores are NaN where there are none.
    """
    error = draws["error"] < ERROR_SHARE
    ok = ~error
    input_tokens = np.clip(np.round(profile.input_median * np.exp(profile.input_sigma * draws["input"])), 20, 100_000).astype(np.int64)
    low, high = profile.cached_share
    share = np.where(draws["cache_hit"] < profile.cache_hit_share, low + (high - low) * draws["cache_share"], 0.0)
    cached_tokens = np.floor(input_tokens * share).astype(np.int64)
    base_output = np.clip(profile.output_median * np.exp(profile.output_sigma * draws["output"]), 1, 8_000)
    output_tokens = np.maximum(np.round(base_output * np.where(changed, output_growth, 1.0)), 1).astype(np.int64)

    uncached = input_tokens - cached_tokens
    ttft = profile.ttft_ms * np.exp(0.3 * draws["ttft"]) + 0.05 * uncached  # prefill of what the cache did not hold
    speed = profile.tokens_per_second * np.exp(0.2 * draws["speed"]) / np.where(draws["slow"] < SLOW_SHARE, 3.0, 1.0)
    latency = ttft + 1000 * output_tokens / speed
    failed = np.where(draws["error_kind"] < TIMEOUT_SHARE, TIMEOUT_MS + 50 * draws["error_latency"], 40 + 400 * draws["error_latency"])

    shift = np.where(changed, QUALITY_SHIFT, 0.0) + quality_shift
    positive = draws["feedback_sign"] < _sigmoid(logit(POSITIVE_FEEDBACK) + shift)
    feedback = np.where(ok & (draws["feedback"] < FEEDBACK_SHARE), np.where(positive, 1, -1), 0).astype(np.int64)
    judged = ok & (draws["judged"] < JUDGED_SHARE)
    judge = _sigmoid(logit(profile.judge_median) + 0.9 * draws["judge"] + shift)
    faithfulness = _sigmoid(logit(profile.faithfulness_median) + 0.8 * draws["faithfulness"])
    return {
        "error": error,
        "input_tokens": input_tokens,
        "cached_tokens": cached_tokens,
        "output_tokens": output_tokens,
        "ttft_ms": np.round(ttft, 1),
        "latency_ms": np.round(np.where(error, failed, latency), 1),
        "guardrail": ok & (draws["guardrail"] < GUARDRAIL_SHARE),
        "feedback": feedback,
        "judge_score": np.where(judged, np.round(judge, 3), np.nan),
        "faithfulness": np.where(judged, np.round(faithfulness, 3), np.nan),
        "unit": unit_numbers(profile.units, draws["unit"]),
    }


def token_cost(rows: dict, input_per_token: float, output_per_token: float, cached_input_per_token: float | None) -> np.ndarray:
    """USD of each successful request (0 for a failed one), by pricing.py's formula without reasoning tokens:
    (input - cached) x p_in + cached x p_cached + output x p_out, p_cached defaulting to p_in."""
    p_cached = input_per_token if cached_input_per_token is None else cached_input_per_token
    cost = (rows["input_tokens"] - rows["cached_tokens"]) * input_per_token + rows["cached_tokens"] * p_cached
    return np.where(rows["error"], 0.0, cost + rows["output_tokens"] * output_per_token)
