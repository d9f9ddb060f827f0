"""Check statuses, one check's result, a criterion's summary, and what a judge gives back. No Django."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

PASSED, FAILED, NOT_RUN, ERROR = "passed", "failed", "not_run", "error"
FORMAT_TYPES = frozenset({"format_check", "json", "regex", "starts_with", "max_length", "custom_label_check"})
SCORE_TYPES = frozenset({"llm_judge", "similarity"})  # their gate figure is the mean score
SAFETY_TYPES = frozenset({"safety"})
# The gate figures a prompt policy reads, each produced only by its built-in family of criterion types. A criterion
# of another type under one of these names would lend the gate its own figure (a max_length named safety), so the
# import refuses it and `run_checks` reports it as an error.
GATE_FIGURE_FAMILIES = {"format_valid": FORMAT_TYPES, "relevance": SCORE_TYPES, "safety": SAFETY_TYPES}


def gate_name_problem(name: str, kind: str) -> str | None:
    """None, or the one wording of a criterion that takes a gate figure's name without being of the family producing it."""
    family = GATE_FIGURE_FAMILIES.get(name)
    if family is None or kind in family:
        return None
    return (f"{name!r} is the name of a gate figure, produced only by the built-in {', '.join(sorted(family))} checks; "
            f"a {kind} criterion cannot take it (give it another name)")


class CheckError(ValueError):
    """A criterion that cannot run as written, or a row without what it needs; the message says which."""


@dataclass(frozen=True)
class CheckResult:
    name: str
    type: str
    status: str  # passed | failed | not_run | error
    value: float | None
    detail: str


@dataclass(frozen=True)
class CriterionSummary:
    name: str
    type: str
    runs: int
    passed: int
    failed: int
    not_run: int
    errors: int
    pass_rate: float | None  # passed / (passed + failed + errors)
    mean_value: float | None  # over passed and failed rows


@dataclass(frozen=True)
class JudgeVerdict:
    score: float  # 0..1
    reason: str = ""


class Judge(Protocol):
    def grade(self, *, criterion: Mapping[str, Any], input: Any, output: str, expected: Any) -> JudgeVerdict: ...
