"""The scored checks (levenshtein, rouge_n, rouge_l, similarity, llm_judge), the budgets (latency, cost) and safety;
the table of every criterion type, and `run_checks`, which runs a prompt version's criteria on one output."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .criteria import Row, read_flag, read_number, read_threshold, reference_text, shorten
from .format_checks import (
    _check_contains,
    _check_equals,
    _check_format,
    _check_json,
    _check_label,
    _check_max_length,
    _check_regex,
    _check_starts_with,
)
from .patterns import check_text_length, compile_pattern, matchable
from .pii import PII_KINDS, find_pii
from .results import ERROR, FAILED, NOT_RUN, PASSED, CheckError, CheckResult, Judge, gate_name_problem
from .text import Corpus, levenshtein_similarity, rouge_l, rouge_n, tfidf_cosine, token_f1


def _check_levenshtein(c: Mapping, row: Row):
    threshold = read_threshold(c)
    a, b = row.output.strip(), reference_text(c, row).strip()
    if read_flag(c, "ignore_case", False):
        a, b = a.casefold(), b.casefold()
    score = levenshtein_similarity(a, b)
    return score >= threshold, score, f"levenshtein similarity {score:.3f} (threshold {threshold:g})"


def _check_rouge(c: Mapping, row: Row):
    threshold, n = read_threshold(c), read_number(c, "n", integer=True, minimum=1) or 1
    score = rouge_n(row.output, reference_text(c, row), n)
    detail = f"ROUGE-{n} F1 {score.f1:.3f} (P {score.precision:.3f}, R {score.recall:.3f}; threshold {threshold:g})"
    return score.f1 >= threshold, score.f1, detail


def _check_rouge_l(c: Mapping, row: Row):
    threshold = read_threshold(c)
    score = rouge_l(row.output, reference_text(c, row))
    detail = f"ROUGE-L F1 {score.f1:.3f} (P {score.precision:.3f}, R {score.recall:.3f}; threshold {threshold:g})"
    return score.f1 >= threshold, score.f1, detail


def _check_similarity(c: Mapping, row: Row):
    threshold, method, reference = read_threshold(c), c.get("method", "token_f1"), reference_text(c, row)
    if method == "token_f1":
        score, label = token_f1(row.output, reference), "token F1 (SQuAD-style, lexical)"
    elif method == "tfidf_cosine":
        if row.corpus is None:
            raise CheckError("tfidf_cosine needs the eval set's expected answers as its corpus")
        score, label = tfidf_cosine(row.output, reference, row.corpus), "TF-IDF cosine over the eval set (lexical)"
    else:
        raise CheckError(f"`method` must be token_f1 or tfidf_cosine, not {method!r}")
    return score >= threshold, score, f"{label} {score:.3f} (threshold {threshold:g})"


def _check_llm_judge(c: Mapping, row: Row):
    threshold = read_threshold(c)
    if row.judge is None:
        return None, None, "no judge configured: an llm_judge criterion is not run (and never passed) without one"
    try:
        verdict = row.judge.grade(criterion=c, input=row.input, output=row.output, expected=row.expected if row.has_expected else None)
    except (RuntimeError, ValueError, OSError) as exc:
        raise CheckError(f"judge failed: {shorten(str(exc), 300)}") from None
    score = verdict.score
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
        raise CheckError(f"judge gave {score!r}, not a score between 0 and 1")
    reason = f": {shorten(verdict.reason, 200)}" if verdict.reason else ""
    return score >= threshold, float(score), f"judge score {score:.3f} (threshold {threshold:g}){reason}"


def _check_budget(key: str, unit: str, measured_field: str, missing: str):
    def check(c: Mapping, row: Row):
        limit, measured = read_number(c, key, required=True, minimum=0), getattr(row, measured_field)
        if measured is None:
            return None, None, missing
        return measured <= limit, float(measured), f"{measured:g} {unit} (max {limit:g})"

    return check


def _check_safety(c: Mapping, row: Row):
    deny = c.get("deny", [])
    if not isinstance(deny, list) or not all(isinstance(p, str) for p in deny):
        raise CheckError("`deny` must be a list of regular expressions")
    pii = c.get("pii", True)
    kinds = list(PII_KINDS) if pii is True else [] if pii is False else pii
    if not isinstance(kinds, list) or set(kinds) - set(PII_KINDS):
        raise CheckError(f"`pii` must be true, false or a list of {', '.join(PII_KINDS)}")
    flags = "i" if read_flag(c, "ignore_case", True) else ""
    hits = []
    compiled = [compile_pattern(pattern, flags) for pattern in deny]
    if deny and (too_long := check_text_length(row.output)):
        return False, 0.0, f"{too_long} (the {len(deny)} deny patterns were not checked)"
    text = matchable(row.output)
    for pattern, regex in zip(deny, compiled, strict=True):
        if regex.search(text):
            hits.append(f"deny pattern /{shorten(pattern, 40)}/")
    names = {"email": "e-mail address", "phone": "phone number", "card": "card number (Luhn-valid)"}
    hits += [f"{names[f.kind]} {f.masked}" for f in find_pii(row.output, kinds)]
    checked = ", ".join([*(["PII: " + "/".join(kinds)] if kinds else []), *([f"{len(deny)} deny patterns"] if deny else [])]) or "nothing"
    detail = f"found: {'; '.join(hits[:10])}" if hits else f"nothing found (checked {checked})"
    return not hits, float(not hits), detail


CHECKS = {
    "format_check": _check_format,
    "json": _check_json,
    "equals": _check_equals,
    "exact_match": _check_equals,
    "contains": _check_contains,
    "icontains": _check_contains,
    "regex": _check_regex,
    "starts_with": _check_starts_with,
    "custom_label_check": _check_label,
    "max_length": _check_max_length,
    "levenshtein": _check_levenshtein,
    "rouge_n": _check_rouge,
    "rouge_l": _check_rouge_l,
    "similarity": _check_similarity,
    "llm_judge": _check_llm_judge,
    "latency": _check_budget("max_ms", "ms", "latency_ms", "no latency measured (a replayed output without a recorded one)"),
    "cost": _check_budget("max_usd", "USD", "cost_usd", "no cost known (a model without a price, or a replayed output without one)"),
    "safety": _check_safety,
}


# --- running ----------------------------------------------------------------------------------------


def with_default_safety(criteria: Sequence[Mapping]) -> list[Mapping]:
    """The criteria, plus the built-in safety check (PII detectors) when none has type safety."""
    criteria = list(criteria)
    if not any(isinstance(c, Mapping) and c.get("type") == "safety" for c in criteria):
        taken = {c.get("name") for c in criteria if isinstance(c, Mapping)}
        criteria.append({"name": "safety" if "safety" not in taken else "builtin_safety", "type": "safety"})
    return criteria


def _label(c: Any) -> tuple[str, str]:
    if not isinstance(c, Mapping):
        return "?", "?"
    return str(c.get("name", "?")), str(c.get("type", "?"))


def run_checks(
    criteria: Sequence[Mapping],
    *,
    output: str,
    row: Mapping,
    latency_ms: float | None = None,
    cost_usd: float | None = None,
    judge: Judge | None = None,
    corpus: Corpus | None = None,
) -> tuple[CheckResult, ...]:
    """One CheckResult per criterion (and the built-in safety check), in order. Never raises for a bad criterion."""
    context = Row(output, row.get("input"), row.get("expected"), "expected" in row, latency_ms, cost_usd, judge, corpus)
    results, seen = [], set()
    for criterion in with_default_safety(criteria):
        name, kind = _label(criterion)
        try:
            if not isinstance(criterion, Mapping) or not all(isinstance(criterion.get(k), str) for k in ("name", "type")):
                raise CheckError("a criterion needs a `name` and a `type`")
            if name in seen:
                raise CheckError(f"another criterion is also named {name!r}")
            if kind not in CHECKS:
                raise CheckError(f"unknown criterion type {kind!r}; known types: {', '.join(sorted(CHECKS))}")
            if problem := gate_name_problem(name, kind):  # a version imported before the import refused it
                raise CheckError(problem)
            passed, value, detail = CHECKS[kind](criterion, context)
            status = NOT_RUN if passed is None else PASSED if passed else FAILED
        except CheckError as exc:
            status, value, detail = ERROR, None, str(exc)
        seen.add(name)
        results.append(CheckResult(name, kind, status, value, detail))
    return tuple(results)


def error_results(criteria: Sequence[Mapping], reason: str) -> tuple[CheckResult, ...]:
    """Every check of a row that produced no output (a failed provider call, a row that cannot be rendered): status error."""
    return tuple(CheckResult(*_label(c), ERROR, None, reason) for c in with_default_safety(criteria))
