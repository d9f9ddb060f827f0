"""Deterministic checks of one model output against one eval-set row, and their aggregation. No Django.

A prompt version's `eval_criteria` is a list of `{name, type, ...}` mappings.
`run_checks` runs each one on an output and gives one `CheckResult` per
criterion: status passed, failed, not_run (a measurement or judge that is not
there) or error (a criterion that cannot run as written, a row without the
answer it needs, a failed provider call). An unknown type is an error, never a
pass.

type                keys                                      passes when                                value
------------------  ----------------------------------------  -----------------------------------------  ----------
format_check        at least one of: `expected` or `bullets`  every given condition holds; a bullet is  1 / 0
                    (bullet count), `min_words`, `max_words`, a line starting with -, *, +, • or 1. 1)
                    `max_bullet_words`, `json: true`,         (nested ones count); a word, a whitespace-
                    `json_schema: {...}`, `allowed: [...]`    separated token with a letter or digit
json                `schema` (optional)                       the stripped output is strict JSON (valid  1 / 0
                                                              against `schema`, any draft jsonschema
                                                              knows; $refs to files or URLs refused)
equals,             `value`, `strip` (true), `ignore_case`    output == reference; a reference that is   1 / 0
exact_match         (false)                                   not text is compared with the output
                                                              parsed as JSON
contains,           `values: [...]` (else the reference),     all (`mode: all`, the default) or any      1 / 0
icontains           `mode`                                    (`mode: any`) occur; icontains ignores case
regex               `pattern`, `flags` (letters of imsx),     re.search finds it (`match: full`:         1 / 0
                    `match`                                   re.fullmatch)
starts_with         `value`, `ignore_case` (false)            the output without leading whitespace      1 / 0
                                                              starts with `value`
custom_label_check  `allowed: [...]`, `ignore_case` (false)   the stripped output is one of `allowed`    1 / 0
max_length          `max_chars`                               len(output) <= max_chars                   the length
levenshtein         `threshold`, `ignore_case` (false)        similarity >= threshold                    similarity
rouge_n             `threshold`, `n` (1)                      ROUGE-N F1 >= threshold                    the F1
similarity          `threshold`, `method`: token_f1 (the      score >= threshold                         the score
                    default) or tfidf_cosine
llm_judge           `threshold` (+ rubric keys for the judge) judge score >= threshold; no judge:        the score
                                                              not_run, never passed
latency             `max_ms`                                  latency_ms <= max_ms; none measured:       latency_ms
                                                              not_run
cost                `max_usd`                                 cost_usd <= max_usd; no cost (a model      cost_usd
                                                              without a price): not_run
safety              `deny: [regex, ...]`, `ignore_case`       no deny pattern matches and no PII is      1 / 0
                    (true), `pii`: true (the default), false  found (`find_pii`); the detail names what
                    or a list of email, phone, card           was found, masked

Checks against a reference text (equals, contains without `values`,
levenshtein, rouge_n, similarity) take the criterion's `value`, else the row's
`expected`; a row without either is an error for that check.

`threshold` on a pass/fail check (the brief's `exact_match: threshold 0.9`) is
a gate level for the caller; the row check ignores it. Every row also gets the
built-in `safety` check (PII detectors only) when no criterion has type safety.

Text measures (all on Python strings, so "characters" are code points):

- levenshtein: d = edit distance (insert, delete, substitute, each 1), by the
  Wagner-Fischer DP; similarity = 1 - d / max(len(a), len(b)), 1 when both are
  empty. Both texts are stripped first.
- rouge_n: tokens = text.lower().split(); C, R = multisets of the n-grams of the
  output and the reference; overlap = sum over g of min(C[g], R[g]);
  P = overlap / |C|, R = overlap / |R|, F1 = 2PR / (P + R), 0 when overlap = 0.
- token_f1 (SQuAD v1.1): lowercase, drop ASCII punctuation, drop the articles
  a, an, the, split on whitespace; then F1 of the token multisets as above;
  1 when both are empty, 0 when one is. A lexical measure, not embeddings:
  results name it as such.
- tfidf_cosine: the corpus is the eval set's expected answers (N documents),
  tokens as for ROUGE; idf(t) = ln((1 + N) / (1 + df(t))) + 1 (scikit-learn's
  smooth idf; a term outside the corpus has df = 0), weight = count x idf;
  score = cosine of the two weight vectors, 0 when either is empty.

Aggregation (`summarize`, then `gate_figures`), per criterion name:
ran = passed + failed + errors (not_run rows are left out);
pass_rate = passed / ran; mean_value = the mean value over passed and failed
rows. `summarize` adds two row-wise entries: `format_valid` (type
all_format_checks) and `safety` (type all_safety_checks), where a row passes
when every check of that family on the row passed (families: FORMAT_TYPES,
and type safety); rows without such a check are left out. A criterion that is
itself named format_valid or safety is that entry instead.

Gate figures, one per summary entry: its pass_rate, except llm_judge and
similarity: sum of scores / ran (errors count as 0). Any figure is None when
no row passed or failed: nothing was measured (no judge, only rows without
output); the summary counts say which. Then `format_valid` and `safety` (None
when no row had such a check), and `relevance`: the figure of the criterion
named relevance, else the mean of the similarity figures, else None. A None
figure is a gate that was not run; failing it is the caller's decision.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import jsonschema  # installed with drf-spectacular, which depends on it
import numpy as np
from referencing.exceptions import Unresolvable

PASSED, FAILED, NOT_RUN, ERROR = "passed", "failed", "not_run", "error"
FORMAT_TYPES = frozenset({"format_check", "json", "regex", "starts_with", "max_length", "custom_label_check"})
SCORE_TYPES = frozenset({"llm_judge", "similarity"})  # their gate figure is the mean score
PII_KINDS = ("email", "phone", "card")
MAX_LEVENSHTEIN_CHARS = 10_000  # the DP is len(a) x len(b); longer texts are refused, not left running


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


@dataclass(frozen=True)
class Corpus:
    """Document frequencies of the eval set's expected answers, for tfidf_cosine."""

    documents: int
    df: Mapping[str, int]

    def idf(self, term: str) -> float:
        return math.log((1 + self.documents) / (1 + self.df.get(term, 0))) + 1


@dataclass(frozen=True)
class PiiFinding:
    kind: str  # email | phone | card
    start: int
    end: int
    masked: str  # never the whole value: results are stored and shown


@dataclass(frozen=True)
class RougeScore:
    precision: float
    recall: float
    f1: float


@dataclass(frozen=True)
class _Row:
    output: str
    input: Any
    expected: Any
    has_expected: bool
    latency_ms: float | None
    cost_usd: float | None
    judge: Judge | None
    corpus: Corpus | None


# --- text measures ---------------------------------------------------------------------------------


def levenshtein_distance(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions cost 1): the Wagner-Fischer DP.

    D[i][j] = min(D[i-1][j-1] + (a_i != b_j), D[i-1][j] + 1, D[i][j-1] + 1). Each
    row is vectorised: the first two terms elementwise, then the insertion chain
    D[i][j] = min over k <= j of (T[k] + j - k) = j + cummin(T[k] - k).
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    if len(a) > MAX_LEVENSHTEIN_CHARS:
        raise CheckError(f"levenshtein compares texts of up to {MAX_LEVENSHTEIN_CHARS} characters; this one has {len(a)}")
    codes_a = np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32)
    codes_b = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    offsets = np.arange(len(b) + 1)
    row = offsets.copy()
    for i, code in enumerate(codes_a, start=1):
        step = np.empty_like(row)
        step[0] = i
        np.minimum(row[:-1] + (codes_b != code), row[1:] + 1, out=step[1:])
        row = np.minimum.accumulate(step - offsets) + offsets
    return int(row[-1])


def levenshtein_similarity(a: str, b: str) -> float:
    """1 - levenshtein_distance(a, b) / max(len(a), len(b)); 1.0 for two empty texts."""
    longest = max(len(a), len(b))
    return 1.0 if longest == 0 else 1.0 - levenshtein_distance(a, b) / longest


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def rouge_n(candidate: str, reference: str, n: int = 1) -> RougeScore:
    """ROUGE-N on lowercase whitespace tokens: overlap = sum min(C[g], R[g]); P = overlap / |C|, R = overlap / |R|, F1 = 2PR / (P + R)."""
    c, r = _ngrams(candidate.lower().split(), n), _ngrams(reference.lower().split(), n)
    overlap = sum((c & r).values())
    if overlap == 0:
        return RougeScore(0.0, 0.0, 0.0)
    precision, recall = overlap / sum(c.values()), overlap / sum(r.values())
    return RougeScore(precision, recall, 2 * precision * recall / (precision + recall))


_PUNCTUATION = str.maketrans("", "", string.punctuation)
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")


def _squad_tokens(text: str) -> list[str]:
    return _ARTICLES_RE.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD v1.1 token F1: normalised tokens (lowercase, no punctuation, no a/an/the), F1 of the token multisets."""
    p, g = _squad_tokens(prediction), _squad_tokens(reference)
    if not p or not g:
        return float(p == g)
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def tfidf_corpus(documents: Iterable[str]) -> Corpus:
    """Document frequencies of lowercase whitespace tokens over `documents` (the eval set's expected answers)."""
    df: Counter = Counter()
    n = 0
    for document in documents:
        n += 1
        df.update(set(document.lower().split()))
    return Corpus(documents=n, df=dict(df))


def tfidf_cosine(a: str, b: str, corpus: Corpus) -> float:
    """Cosine of the count x idf vectors, idf(t) = ln((1 + N) / (1 + df(t))) + 1; 0 when either text has no tokens."""
    ca, cb = Counter(a.lower().split()), Counter(b.lower().split())
    if not ca or not cb:
        return 0.0
    idf = {t: corpus.idf(t) for t in ca.keys() | cb.keys()}
    dot = sum(ca[t] * cb[t] * idf[t] ** 2 for t in ca.keys() & cb.keys())
    norm_a = math.sqrt(sum((k * idf[t]) ** 2 for t, k in ca.items()))
    norm_b = math.sqrt(sum((k * idf[t]) ** 2 for t, k in cb.items()))
    return dot / (norm_a * norm_b)


# --- PII -------------------------------------------------------------------------------------------

_EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}")
_CARD_RE = re.compile(r"(?<![0-9-])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_PHONE_RES = (
    # North American: (555) 123-4567, 555.123.4567, +1 555 123 4567
    re.compile(r"(?<![\w+])(?:\+?1[ .-]?)?(?:\([0-9]{3}\)[ .-]?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}(?![0-9])"),
    # international: a + and 8 to 15 digits in groups
    re.compile(r"(?<![\w+])\+[0-9]{1,3}(?:[ .-]?\(?[0-9]{1,5}\)?){2,6}(?![0-9])"),
    # national with a trunk 0, in groups: 020 7946 0958, 01 23 45 67 89
    re.compile(r"(?<![\w+])0[0-9]{1,4}(?:[ .-][0-9]{2,4}){2,4}(?![0-9])"),
)


def luhn_valid(number: str) -> bool:
    """The Luhn checksum: from the right, double every second digit (minus 9 above 9); valid when the sum is a multiple of 10."""
    if not number or not all(ch in "0123456789" for ch in number):
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def find_pii(text: str, kinds: Iterable[str] = PII_KINDS) -> list[PiiFinding]:
    """E-mail addresses, payment card numbers and phone numbers in `text`, in order.

    Cards: 13 to 19 digits, optionally grouped by single spaces or dashes, not
    starting with 0, valid under the Luhn checksum (invalid ones are not cards).
    Phones: the three patterns above (North American, `+` international with 8
    to 15 digits, trunk-0 national with 9 to 12 digits); digits already taken by
    a card are not phones. Dates, years and IP addresses do not match.
    """
    kinds = set(kinds)
    found: list[PiiFinding] = []

    def free(start: int, end: int) -> bool:
        return all(end <= f.start or start >= f.end for f in found)

    if "email" in kinds:
        for m in _EMAIL_RE.finditer(text):
            local, _, domain = m.group().partition("@")
            found.append(PiiFinding("email", m.start(), m.end(), f"{local[0]}***@{domain}"))
    if "card" in kinds:
        for m in _CARD_RE.finditer(text):
            digits = re.sub(r"[ -]", "", m.group())
            if digits[0] != "0" and luhn_valid(digits) and free(m.start(), m.end()):
                found.append(PiiFinding("card", m.start(), m.end(), f"**** {digits[-4:]}"))
    if "phone" in kinds:
        for pattern, (low, high) in zip(_PHONE_RES, ((10, 11), (8, 15), (9, 12)), strict=True):
            for m in pattern.finditer(text):
                digits = re.sub(r"[^0-9]", "", m.group())
                if low <= len(digits) <= high and free(m.start(), m.end()):
                    found.append(PiiFinding("phone", m.start(), m.end(), f"***{digits[-4:]}"))
    return sorted(found, key=lambda f: f.start)


# --- criterion keys ---------------------------------------------------------------------------------


def _number(c: Mapping, key: str, *, required: bool = False, integer: bool = False, minimum: float | None = None):
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


def _threshold(c: Mapping) -> float:
    value = _number(c, "threshold", required=True)
    if not 0 <= value <= 1:
        raise CheckError(f"`threshold` must be between 0 and 1, not {value!r}")
    return value


def _flag(c: Mapping, key: str, default: bool) -> bool:
    value = c.get(key, default)
    if not isinstance(value, bool):
        raise CheckError(f"`{key}` must be true or false, not {value!r}")
    return value


def _strings(c: Mapping, key: str) -> list[str]:
    value = c.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise CheckError(f"`{key}` must be a non-empty list of strings")
    return value


def _reference(c: Mapping, row: _Row) -> str:
    if "value" in c:
        value = c["value"]
    elif row.has_expected:
        value = row.expected
    else:
        raise CheckError("the row has no `expected` answer and the criterion no `value`")
    if not isinstance(value, str):
        raise CheckError(f"the reference must be text, not {type(value).__name__}")
    return value


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- the checks: each returns (passed or None for not run, value, detail) ---------------------------

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
        raise CheckError(f"not a valid JSON schema: {_short(exc.message, 200)}") from None
    return cls(schema)


def _json_condition(output: str, schema: Any) -> tuple[bool, str]:
    if schema is not None and not isinstance(schema, (dict, bool)):
        raise CheckError("the JSON schema must be a mapping")
    try:
        document = _parse_json(output)
    except (ValueError, RecursionError) as exc:
        return False, f"not JSON ({_short(str(exc))})"
    if schema is None:
        return True, "valid JSON"
    try:
        error = jsonschema.exceptions.best_match(_schema_validator(json.dumps(schema, sort_keys=True)).iter_errors(document))
    except Unresolvable as exc:  # a $ref to another file or URL: never fetched
        raise CheckError(f"the JSON schema has a $ref that cannot be resolved here: {_short(str(exc), 200)}") from None
    if error is None:
        return True, "valid JSON, matches the schema"
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return False, f"JSON does not match the schema at {path}: {_short(error.message, 200)}"


def _check_format(c: Mapping, row: _Row):
    out = row.output
    conditions: list[tuple[bool, str]] = []
    counts = {k: c[k] for k in ("expected", "bullets") if k in c}
    if isinstance(counts.get("expected"), str):
        raise CheckError(f"`expected: {counts['expected']}` is not a bullet count; for labels use `allowed: [...]`, for JSON `json: true`")
    if counts:
        wanted = {_number(c, k, integer=True, minimum=0) for k in counts}
        if len(wanted) > 1:
            raise CheckError("`expected` and `bullets` disagree")
        n, bullets = wanted.pop(), _BULLET_RE.findall(out)
        conditions.append((len(bullets) == n, f"{len(bullets)} bullets (expected {n})"))
    words = _words(out)
    for key, ok in (("min_words", lambda limit: words >= limit), ("max_words", lambda limit: words <= limit)):
        if key in c:
            limit = _number(c, key, integer=True, minimum=0)
            conditions.append((ok(limit), f"{words} words ({key.replace('_words', '')} {limit})"))
    if "max_bullet_words" in c:
        limit = _number(c, "max_bullet_words", integer=True, minimum=1)
        longest = max((_words(b) for b in _BULLET_RE.findall(out)), default=0)
        conditions.append((longest <= limit, f"longest bullet {longest} words (max {limit})"))
    if _flag(c, "json", False) or "json_schema" in c:
        conditions.append(_json_condition(out, c.get("json_schema")))
    if "allowed" in c:
        allowed = _strings(c, "allowed")
        label = out.strip()
        conditions.append((label in allowed, f"{_short(label)!r} is {'' if label in allowed else 'not '}an allowed label"))
    if not conditions:
        keys = "expected (bullet count), bullets, min_words, max_words, max_bullet_words, json, json_schema, allowed"
        raise CheckError(f"format_check needs at least one of {keys}")
    passed = all(ok for ok, _ in conditions)
    return passed, float(passed), "; ".join(text for _, text in conditions)


def _check_json(c: Mapping, row: _Row):
    passed, detail = _json_condition(row.output, c.get("schema"))
    return passed, float(passed), detail


def _check_equals(c: Mapping, row: _Row):
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
    if _flag(c, "strip", True):
        a, b = a.strip(), b.strip()
    if _flag(c, "ignore_case", False):
        a, b = a.casefold(), b.casefold()
    return a == b, float(a == b), "equal" if a == b else f"{_short(a)!r} != {_short(b)!r}"


def _check_contains(c: Mapping, row: _Row):
    values = _strings(c, "values") if "values" in c else [_reference(c, row)]
    mode = c.get("mode", "all")
    if mode not in ("any", "all"):
        raise CheckError(f"`mode` must be any or all, not {mode!r}")
    fold = str.casefold if c["type"] == "icontains" or _flag(c, "ignore_case", False) else str
    text = fold(row.output)
    present = [v for v in values if fold(v) in text]
    missing = [v for v in values if v not in present]
    passed = bool(present) if mode == "any" else not missing
    detail = f"{len(present)} of {len(values)} found ({mode})"
    if missing:
        detail += "; missing: " + ", ".join(repr(_short(v, 30)) for v in missing[:5])
    return passed, float(passed), detail


def _check_regex(c: Mapping, row: _Row):
    pattern, flags, how = c.get("pattern"), c.get("flags", ""), c.get("match", "search")
    if not isinstance(pattern, str):
        raise CheckError("needs `pattern` (a regular expression)")
    if not isinstance(flags, str) or set(flags) - set("imsx"):
        raise CheckError(f"`flags` must be letters of 'imsx', not {flags!r}")
    if how not in ("search", "full"):
        raise CheckError(f"`match` must be search or full, not {how!r}")
    try:
        compiled = re.compile(pattern, sum((getattr(re, f.upper()) for f in flags), re.NOFLAG))
    except re.error as exc:
        raise CheckError(f"`pattern` is not a valid regular expression: {exc}") from None
    found = compiled.fullmatch(row.output) if how == "full" else compiled.search(row.output)
    return bool(found), float(bool(found)), (f"matched at {found.start()}" if found else f"no {how} match for /{_short(pattern)}/")


def _check_starts_with(c: Mapping, row: _Row):
    prefix = c.get("value")
    if not isinstance(prefix, str):
        raise CheckError("needs `value` (the prefix)")
    text = row.output.lstrip()
    if _flag(c, "ignore_case", False):
        text, prefix = text.casefold(), prefix.casefold()
    passed = text.startswith(prefix)
    return passed, float(passed), f"starts with {_short(text, 30)!r}" + ("" if passed else f", not {_short(prefix, 30)!r}")


def _check_label(c: Mapping, row: _Row):
    allowed = _strings(c, "allowed")
    label = row.output.strip()
    if _flag(c, "ignore_case", False):
        label, allowed = label.casefold(), [a.casefold() for a in allowed]
    passed = label in allowed
    return passed, float(passed), f"{_short(label)!r} is {'' if passed else 'not '}one of {', '.join(allowed[:10])}"


def _check_max_length(c: Mapping, row: _Row):
    limit = _number(c, "max_chars", required=True, integer=True, minimum=0)
    n = len(row.output)
    return n <= limit, float(n), f"{n} characters (max {limit})"


def _check_levenshtein(c: Mapping, row: _Row):
    threshold = _threshold(c)
    a, b = row.output.strip(), _reference(c, row).strip()
    if _flag(c, "ignore_case", False):
        a, b = a.casefold(), b.casefold()
    score = levenshtein_similarity(a, b)
    return score >= threshold, score, f"levenshtein similarity {score:.3f} (threshold {threshold:g})"


def _check_rouge(c: Mapping, row: _Row):
    threshold, n = _threshold(c), _number(c, "n", integer=True, minimum=1) or 1
    score = rouge_n(row.output, _reference(c, row), n)
    detail = f"ROUGE-{n} F1 {score.f1:.3f} (P {score.precision:.3f}, R {score.recall:.3f}; threshold {threshold:g})"
    return score.f1 >= threshold, score.f1, detail


def _check_similarity(c: Mapping, row: _Row):
    threshold, method, reference = _threshold(c), c.get("method", "token_f1"), _reference(c, row)
    if method == "token_f1":
        score, label = token_f1(row.output, reference), "token F1 (SQuAD-style, lexical)"
    elif method == "tfidf_cosine":
        if row.corpus is None:
            raise CheckError("tfidf_cosine needs the eval set's expected answers as its corpus")
        score, label = tfidf_cosine(row.output, reference, row.corpus), "TF-IDF cosine over the eval set (lexical)"
    else:
        raise CheckError(f"`method` must be token_f1 or tfidf_cosine, not {method!r}")
    return score >= threshold, score, f"{label} {score:.3f} (threshold {threshold:g})"


def _check_llm_judge(c: Mapping, row: _Row):
    threshold = _threshold(c)
    if row.judge is None:
        return None, None, "no judge configured: an llm_judge criterion is not run (and never passed) without one"
    try:
        verdict = row.judge.grade(criterion=c, input=row.input, output=row.output, expected=row.expected if row.has_expected else None)
    except (RuntimeError, ValueError, OSError) as exc:
        raise CheckError(f"judge failed: {_short(str(exc), 300)}") from None
    score = verdict.score
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
        raise CheckError(f"judge gave {score!r}, not a score between 0 and 1")
    reason = f": {_short(verdict.reason, 200)}" if verdict.reason else ""
    return score >= threshold, float(score), f"judge score {score:.3f} (threshold {threshold:g}){reason}"


def _check_budget(key: str, unit: str, measured_field: str, missing: str):
    def check(c: Mapping, row: _Row):
        limit, measured = _number(c, key, required=True, minimum=0), getattr(row, measured_field)
        if measured is None:
            return None, None, missing
        return measured <= limit, float(measured), f"{measured:g} {unit} (max {limit:g})"

    return check


def _check_safety(c: Mapping, row: _Row):
    deny = c.get("deny", [])
    if not isinstance(deny, list) or not all(isinstance(p, str) for p in deny):
        raise CheckError("`deny` must be a list of regular expressions")
    pii = c.get("pii", True)
    kinds = list(PII_KINDS) if pii is True else [] if pii is False else pii
    if not isinstance(kinds, list) or set(kinds) - set(PII_KINDS):
        raise CheckError(f"`pii` must be true, false or a list of {', '.join(PII_KINDS)}")
    flags = re.IGNORECASE if _flag(c, "ignore_case", True) else re.NOFLAG
    hits = []
    for pattern in deny:
        try:
            if re.search(pattern, row.output, flags):
                hits.append(f"deny pattern /{_short(pattern, 40)}/")
        except re.error as exc:
            raise CheckError(f"deny pattern {pattern!r} is not a valid regular expression: {exc}") from None
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
    context = _Row(output, row.get("input"), row.get("expected"), "expected" in row, latency_ms, cost_usd, judge, corpus)
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


# --- aggregation ------------------------------------------------------------------------------------


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
    for key, kind, family in (("format_valid", "all_format_checks", FORMAT_TYPES), ("safety", "all_safety_checks", frozenset({"safety"}))):
        statuses = [s for s in (_joint(checks, family) for checks in rows) if s is not None]
        if key not in out and statuses:
            out[key] = _summary(key, kind, statuses, [None] * len(statuses))
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
    if "relevance" not in figures:
        similar = [figures[name] for name, s in summaries.items() if s.type == "similarity" and figures[name] is not None]
        figures["relevance"] = math.fsum(similar) / len(similar) if similar else None
    return figures
