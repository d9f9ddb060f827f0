"""What a provider gives back (Completion) or raises (ProviderError), and the Provider protocol. No Django."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .evaluate import RowResult


class ProviderError(RuntimeError):
    """A call that produced no usable output. `kind`: timeout, connection, http, bad_answer or no_response."""

    def __init__(self, message: str, *, kind: str, status: int | None = None):
        super().__init__(message)
        self.kind, self.status = kind, status
        self.results: list[RowResult] | None = None  # set by run_eval when every call failed


class ResponsesInvalid(ValueError):
    """A responses file that cannot be read; the message names the lines."""


@dataclass(frozen=True)
class Completion:
    text: str
    latency_ms: float | None  # None: not measured (a replayed output without a recorded latency)
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None  # None: unknown (no price), never a made-up 0
    raw: Any = None


class Provider(Protocol):
    def complete(
        self, *, system: str, prompt: str, model: str, temperature: float, max_tokens: int | None, timeout: float,
        index: int | None = None, row_id: str | None = None,
    ) -> Completion:
        """`index` (0-based position in the eval set) and `row_id` (its `id`) let a replay find the recorded output."""
        ...


def count_or_none(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def amount_or_none(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0 else None
