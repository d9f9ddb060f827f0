"""An evaluation over an eval set: render each row, call the provider, run the checks. No Django."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..prompt_checks import CheckResult, Judge, error_results, run_checks, tfidf_corpus
from .base import Provider, ProviderError


@dataclass(frozen=True)
class RowResult:
    index: int  # 0-based position among the eval set's rows
    id: str | None  # the row's `id`, if it has one
    input: Any
    output: str | None  # None: no output (see error)
    expected: Any
    latency_ms: float | None
    cost_usd: float | None
    input_tokens: int | None
    output_tokens: int | None
    error: str  # why there is no output; "" when there is one
    checks: tuple[CheckResult, ...]


def run_eval(
    *,
    rows: Sequence[Mapping],
    render: Callable[[Mapping[str, Any]], tuple[str, str]],
    criteria: Sequence[Mapping],
    provider: Provider,
    judge: Judge | None = None,
    model: str,
    temperature: float,
    max_tokens: int | None,
    timeout: float,
    give_up_after: int = 5,
) -> list[RowResult]:
    """Render each row's `input` with `render(variables) -> (system, prompt)`, call `provider`, run the checks.

    A row that cannot be rendered or whose call fails gets every check as status
    error with the reason. After `give_up_after` failed calls in a row the remaining
    rows are not sent (error: not run). If no call succeeded and at least one failed,
    raises ProviderError ("failed on every call"), with the row results on `.results`.
    The TF-IDF corpus of similarity checks is the rows' expected answers.
    """
    corpus = tfidf_corpus(r["expected"] for r in rows if isinstance(r, Mapping) and isinstance(r.get("expected"), str))
    results: list[RowResult] = []
    streak = succeeded = failed = 0
    first_failure: ProviderError | None = None
    last_reason = ""
    for index, row in enumerate(rows):
        row = row if isinstance(row, Mapping) else {}
        raw_id = row.get("id")
        row_id = str(raw_id) if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None
        known = {"index": index, "id": row_id, "input": row.get("input"), "expected": row.get("expected")}

        def failure(reason: str, known=known) -> RowResult:
            return RowResult(**known, output=None, latency_ms=None, cost_usd=None, input_tokens=None, output_tokens=None,
                             error=reason, checks=error_results(criteria, reason))

        if streak >= give_up_after:
            results.append(failure(f"not run: the provider failed on {streak} rows in a row (last: {last_reason})"))
            continue
        try:
            if not isinstance(row.get("input"), Mapping):
                raise ValueError("the row has no `input` object of template variables")
            system, prompt = render(row["input"])
        except (ValueError, KeyError) as exc:
            results.append(failure(f"cannot render the prompt: {exc}"))
            continue
        try:
            completion = provider.complete(
                system=system, prompt=prompt, model=model, temperature=temperature, max_tokens=max_tokens, timeout=timeout,
                index=index, row_id=row_id,
            )
        except ProviderError as exc:
            streak, failed, last_reason = streak + 1, failed + 1, str(exc)
            first_failure = first_failure or exc
            results.append(failure(f"provider: {exc}"))
            continue
        streak, succeeded = 0, succeeded + 1
        checks = run_checks(
            criteria, output=completion.text, row=row, latency_ms=completion.latency_ms, cost_usd=completion.cost_usd,
            judge=judge, corpus=corpus,
        )
        results.append(RowResult(
            **known, output=completion.text, latency_ms=completion.latency_ms, cost_usd=completion.cost_usd,
            input_tokens=completion.input_tokens, output_tokens=completion.output_tokens, error="", checks=checks,
        ))
    if failed and not succeeded:
        skipped = sum(1 for r in results if r.error.startswith("not run"))
        note = f"; {skipped} rows not sent after {give_up_after} failures in a row" if skipped else ""
        error = ProviderError(
            f"the provider failed on every call ({failed} of {len(rows)} rows{note}): {first_failure}",
            kind=first_failure.kind, status=first_failure.status,
        )
        error.results = results
        raise error
    return results
