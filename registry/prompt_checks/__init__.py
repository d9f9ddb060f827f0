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
regex               `pattern`, `flags` (letters of imsx),     RE2 finds it (`match: full`: matches the    1 / 0
                    `match`                                   whole output); see `patterns`
starts_with         `value`, `ignore_case` (false)            the output without leading whitespace      1 / 0
                                                              starts with `value`
custom_label_check  `allowed: [...]`, `ignore_case` (false)   the stripped output is one of `allowed`    1 / 0
max_length          `max_chars`                               len(output) <= max_chars                   the length
levenshtein         `threshold`, `ignore_case` (false)        similarity >= threshold                    similarity
rouge_n             `threshold`, `n` (1)                      ROUGE-N F1 >= threshold                    the F1
rouge_l             `threshold`                               ROUGE-L F1 >= threshold                    the F1
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
levenshtein, rouge_n, rouge_l, similarity) take the criterion's `value`, else the row's
`expected`; a row without either is an error for that check.

`threshold` on a pass/fail check (such as `exact_match: threshold 0.9`) is
a gate level for the caller; the row check ignores it. Every row also gets the
built-in `safety` check (PII detectors only) when no criterion has type safety.

The gate figures' names (format_valid, relevance, safety) belong to their
families: a criterion of another type under one of them is an error
(`gate_name_problem`), and the import refuses it.

User regexes (regex, deny) run on RE2 in linear time, on outputs of at most 100,000 characters (`patterns`).
Text measures and their formulas are in `text`, the PII detectors in `pii`,
the criterion types in `format_checks` and `checks` (with `run_checks`), and
how results become gate figures in `aggregate` (`summarize`, `gate_figures`).
Every public name is importable from here.
"""

from .aggregate import gate_figure, gate_figures, summarize
from .checks import CHECKS, error_results, run_checks, with_default_safety
from .pii import PII_KINDS, PiiFinding, find_pii, luhn_valid
from .results import (
    ERROR,
    FAILED,
    FORMAT_TYPES,
    GATE_FIGURE_FAMILIES,
    NOT_RUN,
    PASSED,
    SAFETY_TYPES,
    SCORE_TYPES,
    CheckError,
    CheckResult,
    CriterionSummary,
    Judge,
    JudgeVerdict,
    gate_name_problem,
)
from .text import (
    MAX_LEVENSHTEIN_CHARS,
    Corpus,
    RougeScore,
    levenshtein_distance,
    levenshtein_similarity,
    rouge_l,
    rouge_n,
    rouge_tokens,
    tfidf_corpus,
    tfidf_cosine,
    token_f1,
)

__all__ = [
    "CHECKS", "ERROR", "FAILED", "FORMAT_TYPES", "GATE_FIGURE_FAMILIES", "MAX_LEVENSHTEIN_CHARS", "NOT_RUN", "PASSED", "PII_KINDS",
    "SAFETY_TYPES", "SCORE_TYPES",
    "CheckError", "CheckResult", "Corpus", "CriterionSummary", "Judge", "JudgeVerdict", "PiiFinding", "RougeScore",
    "error_results", "find_pii", "gate_figure", "gate_figures", "gate_name_problem", "levenshtein_distance", "levenshtein_similarity", "luhn_valid",
    "rouge_l", "rouge_n", "rouge_tokens", "run_checks", "summarize", "tfidf_corpus", "tfidf_cosine", "token_f1", "with_default_safety",
]
