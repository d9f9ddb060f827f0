"""From check results to per-criterion summaries and gate figures. No Django.

Aggregation (`summarize`, then `gate_figures`), per criterion name:
ran = passed + failed + errors (not_run rows are left out);
pass_rate = passed / ran; mean_value = the mean value over passed and failed
rows. `summarize` adds two row-wise entries: `format_valid` (type
all_format_checks) and `safety` (type all_safety_checks), where a row passes
when every check of that family on the row passed (families: FORMAT_TYPES,
and type safety); rows without such a check are left out. These entries always
win over a criterion of the same name: a gate figure comes only from its
built-in family (GATE_FIGURE_FAMILIES), never from a criterion that borrows
its name.

Gate figures, one per summary entry: its pass_rate, except llm_judge and
similarity: sum of scores / ran (errors count as 0). Any figure is None when
no row passed or failed: nothing was measured (no judge, only rows without
output); the summary counts say which. Then `format_valid` and `safety` (None
when no row had such a check), and `relevance`: the figure of the criterion
named relevance when it is a scored one (llm_judge or similarity), else the
mean of the similarity figures, else None. A None
figure is a gate that was not run; failing it is the caller's decision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from .results import (
    ERROR,
    FAILED,
    FORMAT_TYPES,
    GATE_FIGURE_FAMILIES,
    NOT_RUN,
    PASSED,
    SAFETY_TYPES,
    SCORE_TYPES,
    CheckResult,
    CriterionSummary,
)


def _summary(name: str, kind: str, statuses: list[str], values: list[float | None]) -> CriterionSummary:
    passed, failed, not_run, errors = (statuses.count(s) for s in (PASSED, FAILED, NOT_RUN, ERROR))
    ran = passed + failed + errors
    scored = [v for s, v in zip(statuses, values, strict=True) if s in (PASSED, FAILED) and v is not None]
    return CriterionSummary(
        name=name, type=kind, runs=len(statuses), passed=passed, failed=failed, not_run=not_run, errors=errors,
        pass_rate=passed / ran if ran else None, mean_value=math.fsum(scored) / len(scored) if scored else None,
    )


def _joint(checks: Sequence[CheckResult], kinds: frozenset) -> str | None:
    statuses = {r.status for r in checks if r.type in kinds}
    for status in (FAILED, ERROR, NOT_RUN, PASSED):
        if status in statuses:
            return status
    return None


def summarize(results: Iterable) -> dict[str, CriterionSummary]:
    """Per criterion name (first-seen order), then the row-wise `format_valid` and `safety` entries.

    `results`: one sequence of CheckResult per row, or objects with a `checks` attribute (RowResult).
    A row passes format_valid (safety) when every format-type (safety-type) check on it passed;
    rows without such checks are left out.
    """
    rows = [list(getattr(r, "checks", r)) for r in results]
    by_name: dict[str, list[CheckResult]] = {}
    for checks in rows:
        for result in checks:
            by_name.setdefault(result.name, []).append(result)
    out = {name: _summary(name, rs[0].type, [r.status for r in rs], [r.value for r in rs]) for name, rs in by_name.items()}
    for key, kind, family in (("format_valid", "all_format_checks", FORMAT_TYPES), ("safety", "all_safety_checks", SAFETY_TYPES)):
        statuses = [s for s in (_joint(checks, family) for checks in rows) if s is not None]
        if statuses:  # the family's row-wise entry, whatever a criterion of the same name says
            out[key] = _summary(key, kind, statuses, [None] * len(statuses))
        elif key in out and out[key].type not in family:
            del out[key]  # a criterion of another type never stands in for the family
    return out


def gate_figure(summary: CriterionSummary) -> float | None:
    """pass_rate; for llm_judge and similarity the sum of scores / (passed + failed + errors), errors counting 0.

    None when no row passed or failed: nothing was measured (no judge, only failed rows), so the gate was not run.
    """
    ran = summary.passed + summary.failed + summary.errors
    if summary.passed + summary.failed == 0:
        return None
    if summary.type in SCORE_TYPES:
        return (summary.mean_value or 0.0) * (summary.passed + summary.failed) / ran
    return summary.pass_rate


def gate_figures(summaries: Mapping[str, CriterionSummary]) -> dict[str, float | None]:
    """One figure per summary entry, plus `format_valid`, `safety` and `relevance` (see the module docstring)."""
    figures = {name: gate_figure(s) for name, s in summaries.items()}
    figures.setdefault("format_valid", None)
    figures.setdefault("safety", None)
    relevance = summaries.get("relevance")
    if relevance is None or relevance.type not in GATE_FIGURE_FAMILIES["relevance"]:
        similar = [figures[name] for name, s in summaries.items() if s.type == "similarity" and figures[name] is not None]
        figures["relevance"] = math.fsum(similar) / len(similar) if similar else None
    return figures
