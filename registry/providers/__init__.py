"""Where prompt outputs come from, and an evaluation over an eval set. No Django.

- `Provider.complete(...)` -> `Completion`, or raises `ProviderError` saying
  what went wrong (kind: timeout, connection, http, bad_answer, no_response).
- `ReplayProvider`: offline; the outputs recorded in the eval set rows
  (`response` or `output`) or in a responses file (JSON lines with `index` or
  `id`, and `output`). A row without a recorded output is a `no_response` error.
- `OpenAICompatibleProvider`: POST {base_url}/chat/completions (OpenAI chat
  JSON, so also vLLM, Ollama, LiteLLM, OpenRouter...). At most 2 retries, only
  on 429 and 5xx, 0.5 s then 1 s apart (Retry-After is followed up to 5 s).
  Timeouts, connection errors and other statuses are not retried.
- `LLMJudge`: asks a provider for `{"score": 0..1, "reason": ...}` and parses
  the answer strictly enough to refuse garbage (`parse_judge_score`).
- `run_eval`: render, call, check each row; one failed call is that row's
  error, a provider failing on every call raises.

By module: `base` (Completion, ProviderError, the Provider protocol), `replay`,
`openai_compatible`, `judge`, `evaluate` (run_eval, RowResult). Every public
name is importable from here.
"""

from .base import Completion, Provider, ProviderError, ResponsesInvalid
from .evaluate import RowResult, run_eval
from .judge import JUDGE_SYSTEM, LLMJudge, parse_judge_score
from .openai_compatible import MAX_RESPONSE_BYTES, OpenAICompatibleProvider
from .replay import ReplayProvider

__all__ = [
    "JUDGE_SYSTEM", "MAX_RESPONSE_BYTES", "Completion", "LLMJudge", "OpenAICompatibleProvider", "Provider", "ProviderError",
    "ReplayProvider", "ResponsesInvalid", "RowResult", "parse_judge_score", "run_eval",
]
