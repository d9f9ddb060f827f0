"""The pass/fail checks: format_check, json, equals, contains, regex, starts_with, custom_label_check, max_length.

Each takes (criterion, row) and returns (passed or None for not run, value, detail); see the package docstring.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jsonschema  # installed with drf-spectacular, which depends on it
from referencing.exceptions import Unresolvable

from mlops_site.parsers import too_deep

from .criteria import Row, read_flag, read_number, read_strings, reference_text, shorten
from .patterns import check_text_length, compile_pattern, matchable
from .results import CheckError

_BULLET_RE = re.compile(r"^[ \t]*(?:[-*•+]|[0-9]{1,3}[.)])[ \t]+(\S.*)$", re.MULTILINE)


def _words(text: str) -> int:
    return sum(1 for token in text.split() if any(ch.isalnum() for ch in token))


def _parse_json(output: str):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(output.strip(), parse_constant=refuse)


@lru_cache(maxsize=64)
def _schema_validator(schema_text: str):
    schema = json.loads(schema_text)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise CheckError(f"not a valid JSON schema: {shorten(exc.message, 200)}") from None
    return cls(schema)


def _json_condition(output: str, schema: Any) -> tuple[bool, str]:
    if schema is not None and not isinstance(schema, (dict, bool)):
        raise CheckError("the JSON schema must be a mapping")
    try:
        document = _parse_json(output)
    except (ValueError, RecursionError) as exc:
        return False, f"not JSON ({shorten(str(exc))})"
    if schema is None:
        return True, "valid JSON"
    if problem := too_deep(document):
        # Validation recurses along the document (a schema's `$ref: "#"`): a deep output would end the worker.
        return False, f"the output's JSON is {problem}"
    try:
        error = jsonschema.exceptions.best_match(_schema_validator(json.dumps(schema, sort_keys=True)).iter_errors(document))
    except Unresolvable as exc:  # a $ref to another file or URL: never fetched
        raise CheckError(f"the JSON schema has a $ref that cannot be resolved here: {shorten(str(exc), 200)}") from None
    except RecursionError:  # a schema that refers to itself without consuming the document (`$ref: "#"` at its root)
        raise CheckError("the JSON schema refers to itself without end") from None
    if error is None:
        return True, "valid JSON, matches the schema"
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return False, f"JSON does not match the schema at {path}: {shorten(error.message, 200)}"


def _check_format(c: Mapping, row: Row):
    out = row.output
    conditions: list[tuple[bool, str]] = []
    counts = {k: c[k] for k in ("expected", "bullets") if k in c}
    if isinstance(counts.get("expected"), str):
        raise CheckError(f"`expected: {counts['expected']}` is not a bullet count; for labels use `allowed: [...]`, for JSON `json: true`")
    if counts:
        wanted = {read_number(c, k, integer=True, minimum=0) for k in counts}
        if len(wanted) > 1:
            raise CheckError("`expected` and `bullets` disagree")
        n, bullets = wanted.pop(), _BULLET_RE.findall(out)
        conditions.append((len(bullets) == n, f"{len(bullets)} bullets (expected {n})"))
    words = _words(out)
    for key, ok in (("min_words", lambda limit: words >= limit), ("max_words", lambda limit: words <= limit)):
        if key in c:
            limit = read_number(c, key, integer=True, minimum=0)
            conditions.append((ok(limit), f"{words} words ({key.replace('_words', '')} {limit})"))
    if "max_bullet_words" in c:
        limit = read_number(c, "max_bullet_words", integer=True, minimum=1)
        longest = max((_words(b) for b in _BULLET_RE.findall(out)), default=0)
        conditions.append((longest <= limit, f"longest bullet {longest} words (max {limit})"))
    if read_flag(c, "json", False) or "json_schema" in c:
        conditions.append(_json_condition(out, c.get("json_schema")))
    if "allowed" in c:
        allowed = read_strings(c, "allowed")
        label = out.strip()
        conditions.append((label in allowed, f"{shorten(label)!r} is {'' if label in allowed else 'not '}an allowed label"))
    if not conditions:
        keys = "expected (bullet count), bullets, min_words, max_words, max_bullet_words, json, json_schema, allowed"
        raise CheckError(f"format_check needs at least one of {keys}")
    passed = all(ok for ok, _ in conditions)
    return passed, float(passed), "; ".join(text for _, text in conditions)


def _check_json(c: Mapping, row: Row):
    passed, detail = _json_condition(row.output, c.get("schema"))
    return passed, float(passed), detail


def _check_equals(c: Mapping, row: Row):
    if "value" not in c and not row.has_expected:
        raise CheckError("the row has no `expected` answer and the criterion no `value`")
    reference = c["value"] if "value" in c else row.expected
    if not isinstance(reference, str):
        try:
            passed = _parse_json(row.output) == reference
        except (ValueError, RecursionError):
            return False, 0.0, "the reference is JSON and the output is not"
        return passed, float(passed), "equal as JSON" if passed else "differs as JSON"
    a, b = row.output, reference
    if read_flag(c, "strip", True):
        a, b = a.strip(), b.strip()
    if read_flag(c, "ignore_case", False):
        a, b = a.casefold(), b.casefold()
    return a == b, float(a == b), "equal" if a == b else f"{shorten(a)!r} != {shorten(b)!r}"


def _check_contains(c: Mapping, row: Row):
    values = read_strings(c, "values") if "values" in c else [reference_text(c, row)]
    mode = c.get("mode", "all")
    if mode not in ("any", "all"):
        raise CheckError(f"`mode` must be any or all, not {mode!r}")
    fold = str.casefold if c["type"] == "icontains" or read_flag(c, "ignore_case", False) else str
    text = fold(row.output)
    present = [v for v in values if fold(v) in text]
    missing = [v for v in values if v not in present]
    passed = bool(present) if mode == "any" else not missing
    detail = f"{len(present)} of {len(values)} found ({mode})"
    if missing:
        detail += "; missing: " + ", ".join(repr(shorten(v, 30)) for v in missing[:5])
    return passed, float(passed), detail


def _check_regex(c: Mapping, row: Row):
    pattern, flags, how = c.get("pattern"), c.get("flags", ""), c.get("match", "search")
    if not isinstance(pattern, str):
        raise CheckError("needs `pattern` (a regular expression)")
    if how not in ("search", "full"):
        raise CheckError(f"`match` must be search or full, not {how!r}")
    compiled = compile_pattern(pattern, flags)
    if too_long := check_text_length(row.output):
        return False, 0.0, too_long
    text = matchable(row.output)
    found = compiled.fullmatch(text) if how == "full" else compiled.search(text)
    return bool(found), float(bool(found)), (f"matched at {found.start()}" if found else f"no {how} match for /{shorten(pattern)}/")


def _check_starts_with(c: Mapping, row: Row):
    prefix = c.get("value")
    if not isinstance(prefix, str):
        raise CheckError("needs `value` (the prefix)")
    text = row.output.lstrip()
    if read_flag(c, "ignore_case", False):
        text, prefix = text.casefold(), prefix.casefold()
    passed = text.startswith(prefix)
    return passed, float(passed), f"starts with {shorten(text, 30)!r}" + ("" if passed else f", not {shorten(prefix, 30)!r}")


def _check_label(c: Mapping, row: Row):
    allowed = read_strings(c, "allowed")
    label = row.output.strip()
    if read_flag(c, "ignore_case", False):
        label, allowed = label.casefold(), [a.casefold() for a in allowed]
    passed = label in allowed
    return passed, float(passed), f"{shorten(label)!r} is {'' if passed else 'not '}one of {', '.join(allowed[:10])}"


def _check_max_length(c: Mapping, row: Row):
    limit = read_number(c, "max_chars", required=True, integer=True, minimum=0)
    n = len(row.output)
    return n <= limit, float(n), f"{n} characters (max {limit})"
