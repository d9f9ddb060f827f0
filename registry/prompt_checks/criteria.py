"""What a check sees of a row, and the readers of a criterion's keys (each raises CheckError naming the key)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .results import CheckError, Judge
from .text import Corpus


@dataclass(frozen=True)
class Row:
    output: str
    input: Any
    expected: Any
    has_expected: bool
    latency_ms: float | None
    cost_usd: float | None
    judge: Judge | None
    corpus: Corpus | None


def read_number(c: Mapping, key: str, *, required: bool = False, integer: bool = False, minimum: float | None = None):
    if key not in c:
        if required:
            raise CheckError(f"needs `{key}`")
        return None
    value = c[key]
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)) or not math.isfinite(value):
        raise CheckError(f"`{key}` must be a {'whole number' if integer else 'number'}, not {value!r}")
    if minimum is not None and value < minimum:
        raise CheckError(f"`{key}` must be at least {minimum}, not {value!r}")
    return value


def read_threshold(c: Mapping) -> float:
    value = read_number(c, "threshold", required=True)
    if not 0 <= value <= 1:
        raise CheckError(f"`threshold` must be between 0 and 1, not {value!r}")
    return value


def read_flag(c: Mapping, key: str, default: bool) -> bool:
    value = c.get(key, default)
    if not isinstance(value, bool):
        raise CheckError(f"`{key}` must be true or false, not {value!r}")
    return value


def read_strings(c: Mapping, key: str) -> list[str]:
    value = c.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise CheckError(f"`{key}` must be a non-empty list of strings")
    return value


def reference_text(c: Mapping, row: Row) -> str:
    if "value" in c:
        value = c["value"]
    elif row.has_expected:
        value = row.expected
    else:
        raise CheckError("the row has no `expected` answer and the criterion no `value`")
    if not isinstance(value, str):
        raise CheckError(f"the reference must be text, not {type(value).__name__}")
    return value


def shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
