"""registry/prompt_checks.py against hand-computed values, an independent DP, rouge-score and scikit-learn's TF-IDF."""

import math
import random

import pytest
from rouge_score.rouge_scorer import RougeScorer
from sklearn.feature_extraction.text import TfidfVectorizer

from registry.prompt_checks import (
    ERROR,
    FAILED,
    NOT_RUN,
    PASSED,
    CheckResult,
    JudgeVerdict,
    find_pii,
    gate_figures,
    levenshtein_distance,
    levenshtein_similarity,
    luhn_valid,
    rouge_l,
    rouge_n,
    run_checks,
    summarize,
    tfidf_corpus,
    tfidf_cosine,
    token_f1,
)


def check(criterion, output, row=None, **kwargs) -> CheckResult:
    """The result of one criterion (the built-in safety check that follows it is left out)."""
    return run_checks([criterion], output=output, row=row if row is not None else {}, **kwargs)[0]


def _naive_levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j - 1] + (x != y), previous[j] + 1, current[j - 1] + 1))
        previous = current
    return previous[-1]


# --- text measures ----------------------------------------------------------------------------------


def test_levenshtein_distance_hand_computed_values():
    assert levenshtein_distance("kitten", "sitting") == 3  # k->s, e->i, +g
    assert levenshtein_distance("sitting", "kitten") == 3
    assert levenshtein_distance("flaw", "lawn") == 2  # -f, +n
    assert levenshtein_distance("", "abc") == 3
    assert levenshtein_distance("", "") == 0
    assert levenshtein_distance("café", "cafe") == 1  # characters, not bytes
    assert levenshtein_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)
    assert levenshtein_similarity("", "") == 1.0


def test_levenshtein_distance_matches_a_plain_python_dp():
    rng = random.Random(7)
    for _ in range(200):
        a = "".join(rng.choice("abcd") for _ in range(rng.randint(0, 30)))
        b = "".join(rng.choice("abcd") for _ in range(rng.randint(0, 30)))

        assert levenshtein_distance(a, b) == _naive_levenshtein(a, b), (a, b)


def test_rouge_1_and_rouge_2_hand_computed():
    candidate, reference = "The cat sat on the mat", "the cat is on the mat"

    one, two = rouge_n(candidate, reference, 1), rouge_n(candidate, reference, 2)

    # unigrams: overlap the x2, cat, on, mat = 5 of 6 on each side
    assert (one.precision, one.recall, one.f1) == pytest.approx((5 / 6, 5 / 6, 5 / 6))
    # bigrams: "the cat", "on the", "the mat" = 3 of 5 on each side
    assert (two.precision, two.recall, two.f1) == pytest.approx((3 / 5, 3 / 5, 3 / 5))
    uneven = rouge_n("a b", "a b c d", 1)  # P = 2/2, R = 2/4, F1 = 2 * 1 * 0.5 / 1.5
    assert uneven.f1 == pytest.approx(2 / 3)
    assert rouge_n("x y", "a b").f1 == 0.0 and rouge_n("", "a").f1 == 0.0


def test_rouge_ignores_case_and_punctuation_as_rouge_score_does():
    ours = rouge_n("The capital is Paris.", "the capital is paris", 1), rouge_n("The capital is Paris.", "the capital is paris", 2)

    assert [(s.precision, s.recall, s.f1) for s in ours] == [(1.0, 1.0, 1.0), (1.0, 1.0, 1.0)]


_WORDS = ["the", "The", "cat", "CAT", "sat", "on", "mat", "Paris", "paris,", "it's", "e-mail", "42", "4.2", "naïve", "café", "–", "!!", "x"]


def _random_text(rng: random.Random) -> str:
    return rng.choice(["", " ", "\n"]).join(rng.choice(_WORDS) for _ in range(rng.randint(0, 25))) + rng.choice(["", ".", "?", " \t"])


def test_rouge_1_2_and_l_equal_rouge_score_on_random_texts():
    scorer = RougeScorer(["rouge1", "rouge2", "rougeL"])
    rng = random.Random(2026)

    for _ in range(500):
        output, reference = _random_text(rng), _random_text(rng)
        expected = scorer.score(reference, output)  # rouge-score takes (target, prediction)

        for ours, theirs in [(rouge_n(output, reference, 1), "rouge1"), (rouge_n(output, reference, 2), "rouge2"), (rouge_l(output, reference), "rougeL")]:
            reference_score = expected[theirs]
            assert (ours.precision, ours.recall, ours.f1) == pytest.approx(
                (reference_score.precision, reference_score.recall, reference_score.fmeasure), abs=1e-12
            ), (theirs, output, reference)


def test_rouge_l_check_uses_the_threshold():
    row = {"expected": "police killed the gunman"}

    # LCS of "police ended the gunman" with the reference: police, the, gunman = 3 of 4 on each side
    passed = check({"name": "r", "type": "rouge_l", "threshold": 0.75}, "Police ended the gunman.", row)
    failed = check({"name": "r", "type": "rouge_l", "threshold": 0.76}, "Police ended the gunman.", row)

    assert passed.status == PASSED and passed.value == pytest.approx(0.75)
    assert failed.status == FAILED


def test_token_f1_squad_normalisation_hand_computed():
    # "the cat sat" -> [cat, sat]; "a cat sat down" -> [cat, sat, down]: P = 1, R = 2/3, F1 = 0.8
    assert token_f1("The cat sat.", "a cat sat down") == pytest.approx(0.8)
    assert token_f1("Paris!", "paris") == 1.0
    assert token_f1("", "") == 1.0 and token_f1("the", "Paris") == 0.0


def test_tfidf_cosine_hand_computed_and_equal_to_scikit_learn_on_known_terms():
    corpus_texts = ["a b", "a c", "b c d"]
    corpus = tfidf_corpus(corpus_texts)

    got = tfidf_cosine("a b", "a c", corpus)

    # N = 3; df: a 2, b 2, c 2, d 1; idf = ln(4 / 3) + 1 for a, b, c: the same weight w for every term,
    # so the cosine is w^2 / (sqrt(2) w * sqrt(2) w) = 1/2
    assert got == pytest.approx(0.5)
    vectorizer = TfidfVectorizer(lowercase=True, tokenizer=str.split, token_pattern=None).fit(corpus_texts)
    for a, b in [("a b", "b c d"), ("d d a", "c d"), ("A b b", "b a")]:
        matrix = vectorizer.transform([a, b])
        assert tfidf_cosine(a, b, corpus) == pytest.approx(float((matrix[0] @ matrix[1].T).toarray()[0, 0]), rel=1e-12)
    unseen = tfidf_cosine("a zebra", "a", corpus)  # zebra: df 0, idf ln(4) + 1
    w_a, w_z = math.log(4 / 3) + 1, math.log(4) + 1
    assert unseen == pytest.approx(w_a / math.sqrt(w_a**2 + w_z**2))


# --- PII ----------------------------------------------------------------------------------------------


def test_luhn_checksum_on_known_valid_and_invalid_numbers():
    assert luhn_valid("4111111111111111") and luhn_valid("79927398713") and luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112") and not luhn_valid("79927398710") and not luhn_valid("4111 1111")


def test_find_pii_finds_emails_phones_and_luhn_valid_cards_only():
    text = (
        "Write to jane.doe@example.co.uk or call (555) 123-4567, +44 20 7946 0958 or 01 23 45 67 89. "
        "Card 4111-1111-1111-1111; order 4111 1111 1111 1112 is not a card."
    )

    found = find_pii(text)

    assert [(f.kind, text[f.start : f.end]) for f in found] == [
        ("email", "jane.doe@example.co.uk"), ("phone", "(555) 123-4567"), ("phone", "+44 20 7946 0958"),
        ("phone", "01 23 45 67 89"), ("card", "4111-1111-1111-1111"),
    ]
    assert [f.masked for f in found] == ["j***@example.co.uk", "***4567", "***0958", "***6789", "**** 1111"]


def test_find_pii_leaves_dates_years_amounts_and_ip_addresses_alone():
    text = "On 2024-01-15 (or 15.01.2024) revenue grew 4% to 1,234,567 in 2023 2024 2025; host 192.168.100.200, v1.2.3."

    assert find_pii(text) == []


# --- each check -------------------------------------------------------------------------------------------


def test_format_check_counts_bullets_of_a_summary():
    three = "- Revenue grew 4%\n- Costs fell 2%\n* Margin up\n\nNotes: none"

    assert check({"name": "bullet_count", "type": "format_check", "expected": 3}, three).status == PASSED
    two = check({"name": "bullet_count", "type": "format_check", "expected": 3}, "1. one\n2) two")
    assert (two.status, two.value, two.detail) == (FAILED, 0.0, "2 bullets (expected 3)")
    assert check({"name": "b", "type": "format_check", "bullets": 0}, "---\n**bold** text").status == PASSED


def test_format_check_words_labels_and_several_conditions_at_once():
    criterion = {"name": "f", "type": "format_check", "expected": 2, "max_words": 6, "max_bullet_words": 3}

    ok = check(criterion, "- one two three\n- four five")
    long_bullet = check(criterion, "- one two three four\n- five")

    assert ok.status == PASSED and ok.detail == "2 bullets (expected 2); 5 words (max 6); longest bullet 3 words (max 3)"
    assert long_bullet.status == FAILED and "longest bullet 4 words" in long_bullet.detail
    assert check({"name": "w", "type": "format_check", "min_words": 3}, "too short").status == FAILED
    assert check({"name": "l", "type": "format_check", "allowed": ["bug", "praise"]}, " bug\n").status == PASSED


SCHEMA = {
    "type": "object",
    "required": ["label", "confidence"],
    "properties": {
        "label": {"enum": ["bug", "question", "praise"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}},
    },
}


@pytest.mark.parametrize(
    "output, status, words",
    [
        ('{"label": "bug", "confidence": 0.9, "tags": ["ui"]}', PASSED, "matches the schema"),
        ('  {"label": "bug", "confidence": 1}  ', PASSED, "matches the schema"),
        ('{"label": "bug"}', FAILED, "'confidence' is a required property"),
        ('{"label": "feature", "confidence": 0.5}', FAILED, "at $.label"),
        ('{"label": "bug", "confidence": 1.5}', FAILED, "at $.confidence"),
        ('{"label": "bug", "confidence": 0.5, "tags": ["toolong"]}', FAILED, "at $.tags[0]"),
        ("```json\n{}\n```", FAILED, "not JSON"),
        ('{"label": "bug", "confidence": NaN}', FAILED, "not JSON"),
    ],
)
def test_json_schema_pass_and_fail(output, status, words):
    result = check({"name": "shape", "type": "format_check", "json_schema": SCHEMA}, output)

    assert result.status == status and words in result.detail
    assert check({"name": "shape", "type": "json", "schema": SCHEMA}, output).status == status


def test_json_without_schema_and_a_broken_schema_is_an_error():
    assert check({"name": "j", "type": "format_check", "json": True}, "[1, 2]").status == PASSED
    assert check({"name": "j", "type": "json"}, "{'single': 'quotes'}").status == FAILED
    broken = check({"name": "j", "type": "json", "schema": {"type": "objekt"}}, "{}")
    assert broken.status == ERROR and "not a valid JSON schema" in broken.detail
    remote = check({"name": "j", "type": "json", "schema": {"$ref": "https://example.com/s.json"}}, "{}")
    assert remote.status == ERROR and "$ref" in remote.detail


def test_format_check_without_a_usable_key_is_an_error_not_a_pass():
    one_of = check({"name": "label_in_set", "type": "format_check", "expected": "one_of"}, "bug")
    nothing = check({"name": "x", "type": "format_check"}, "bug")

    assert one_of.status == ERROR and "allowed: [...]" in one_of.detail
    assert nothing.status == ERROR and "needs at least one of" in nothing.detail


def test_equals_and_exact_match_compare_text_or_json():
    row = {"expected": "Bug"}

    assert check({"name": "e", "type": "equals"}, " Bug\n", row).status == PASSED
    assert check({"name": "e", "type": "exact_match", "threshold": 0.9}, "bug", row).status == FAILED
    assert check({"name": "e", "type": "equals", "ignore_case": True}, "bug", row).status == PASSED
    assert check({"name": "e", "type": "equals"}, '{"b": 2, "a": 1}', {"expected": {"a": 1, "b": 2}}).status == PASSED
    assert check({"name": "e", "type": "equals", "value": "ok"}, "ok", {}).status == PASSED
    missing = check({"name": "e", "type": "equals"}, "Bug", {})
    assert missing.status == ERROR and "no `expected`" in missing.detail


def test_contains_any_all_and_icontains():
    text = "Revenue grew 4% while costs fell."

    assert check({"name": "c", "type": "contains", "values": ["Revenue", "costs"]}, text).status == PASSED
    both = check({"name": "c", "type": "contains", "values": ["revenue", "costs"]}, text)
    assert both.status == FAILED and "missing: 'revenue'" in both.detail
    assert check({"name": "c", "type": "contains", "values": ["revenue", "costs"], "mode": "any"}, text).status == PASSED
    assert check({"name": "c", "type": "icontains", "values": ["REVENUE", "COSTS"]}, text).status == PASSED
    assert check({"name": "c", "type": "contains"}, text, {"expected": "grew 4%"}).status == PASSED
    assert check({"name": "c", "type": "contains", "values": ["x"], "mode": "most"}, text).status == ERROR


def test_regex_starts_with_label_and_max_length():
    assert check({"name": "r", "type": "regex", "pattern": r"\d+%"}, "grew 4%").status == PASSED
    assert check({"name": "r", "type": "regex", "pattern": r"\d+%", "match": "full"}, "grew 4%").status == FAILED
    assert check({"name": "r", "type": "regex", "pattern": "^yes$", "flags": "im"}, "Well\nYES").status == PASSED
    bad = check({"name": "r", "type": "regex", "pattern": "(unclosed"}, "x")
    assert bad.status == ERROR and "not a valid regular expression" in bad.detail
    assert check({"name": "s", "type": "starts_with", "value": "Summary:"}, "  Summary: ok").status == PASSED
    assert check({"name": "s", "type": "starts_with", "value": "Summary:"}, "summary: ok").status == FAILED
    label = {"name": "label_in_set", "type": "custom_label_check", "allowed": ["bug", "question", "praise"]}
    assert check(label, " question\n").status == PASSED
    assert check(label, "Question").status == FAILED and check({**label, "ignore_case": True}, "Question").status == PASSED
    length = check({"name": "m", "type": "max_length", "max_chars": 5}, "héllo!")
    assert (length.status, length.value) == (FAILED, 6.0)


def test_latency_and_cost_are_not_run_without_a_measurement():
    latency = {"name": "fast", "type": "latency", "max_ms": 2000}
    cost = {"name": "cheap", "type": "cost", "max_usd": 0.01}

    assert check(latency, "x", latency_ms=1500.0).status == PASSED and check(latency, "x", latency_ms=2500.0).status == FAILED
    assert check(latency, "x").status == NOT_RUN
    assert check(cost, "x", cost_usd=0.002).value == 0.002 and check(cost, "x", cost_usd=0.02).status == FAILED
    assert check(cost, "x", cost_usd=None).status == NOT_RUN


def test_levenshtein_and_rouge_checks_use_the_threshold():
    row = {"expected": "kitten"}

    passed = check({"name": "lev", "type": "levenshtein", "threshold": 0.5}, "sitting", row)
    failed = check({"name": "lev", "type": "levenshtein", "threshold": 0.6}, "sitting", row)

    assert (passed.status, failed.status) == (PASSED, FAILED) and passed.value == pytest.approx(4 / 7)
    rouge_2 = {"name": "r", "type": "rouge_n", "n": 2, "threshold": 0.6}
    rouge = check(rouge_2, "the cat sat on the mat", {"expected": "the cat is on the mat"})
    assert rouge.status == PASSED and rouge.value == pytest.approx(0.6)
    assert check({"name": "lev", "type": "levenshtein"}, "x", row).status == ERROR  # no threshold


def test_similarity_names_its_method_and_tfidf_needs_the_eval_set():
    row = {"expected": "a cat sat down"}

    f1 = check({"name": "sim", "type": "similarity", "threshold": 0.7}, "The cat sat.", row)
    no_corpus = check({"name": "sim", "type": "similarity", "method": "tfidf_cosine", "threshold": 0.5}, "cat", row)
    tfidf = check({"name": "sim", "type": "similarity", "method": "tfidf_cosine", "threshold": 0.4}, "a b", {"expected": "a c"},
                  corpus=tfidf_corpus(["a b", "a c", "b c d"]))

    assert f1.status == PASSED and f1.value == pytest.approx(0.8) and "token F1 (SQuAD-style, lexical)" in f1.detail
    assert no_corpus.status == ERROR and "corpus" in no_corpus.detail
    assert tfidf.status == PASSED and tfidf.value == pytest.approx(0.5) and "TF-IDF cosine" in tfidf.detail


class FixedJudge:
    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def grade(self, *, criterion, input, output, expected):
        self.calls.append((criterion["name"], input, output, expected))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_llm_judge_is_not_run_without_a_judge_and_never_passed():
    criterion = {"name": "relevance", "type": "llm_judge", "threshold": 0.8}

    result = check(criterion, "- moved to Tuesday", {"input": {"text": "The meeting moved."}})

    assert (result.status, result.value) == (NOT_RUN, None) and "no judge" in result.detail


def test_llm_judge_with_a_judge_passes_fails_and_reports_its_failures():
    criterion = {"name": "relevance", "type": "llm_judge", "threshold": 0.8}
    row = {"input": {"text": "t"}, "expected": "e"}
    judge = FixedJudge(JudgeVerdict(0.85, "on topic"))

    passed = check(criterion, "out", row, judge=judge)

    assert (passed.status, passed.value) == (PASSED, 0.85) and "on topic" in passed.detail
    assert judge.calls == [("relevance", {"text": "t"}, "out", "e")]
    assert check(criterion, "out", row, judge=FixedJudge(JudgeVerdict(0.79))).status == FAILED
    broken = check(criterion, "out", row, judge=FixedJudge(RuntimeError("HTTP 500 from the judge")))
    assert broken.status == ERROR and "judge failed: HTTP 500" in broken.detail
    assert check(criterion, "out", row, judge=FixedJudge(JudgeVerdict(7.0))).status == ERROR


def test_safety_finds_pii_and_deny_patterns_and_names_them_masked():
    criterion = {"name": "no_leaks", "type": "safety", "deny": [r"\bpassword\b", "api[_ ]key"]}

    clean = check(criterion, "Revenue grew 4% in Q3.")
    leaky = check(criterion, "Your Password is hunter2; mail bob@example.com, card 4111 1111 1111 1111.")

    assert (clean.status, clean.value) == (PASSED, 1.0)
    assert (leaky.status, leaky.value) == (FAILED, 0.0)
    assert leaky.detail == r"found: deny pattern /\bpassword\b/; e-mail address b***@example.com; card number (Luhn-valid) **** 1111"
    assert "4111 1111 1111 1111" not in leaky.detail and "bob@" not in leaky.detail
    assert check({"name": "s", "type": "safety", "pii": ["email"]}, "call (555) 123-4567").status == PASSED
    assert check({"name": "s", "type": "safety", "pii": False}, "bob@example.com").status == PASSED


def test_the_built_in_safety_check_runs_when_no_criterion_has_type_safety():
    results = run_checks([{"name": "bullet_count", "type": "format_check", "expected": 1}], output="- call 555-123-4567", row={})

    assert [(r.name, r.type, r.status) for r in results] == [("bullet_count", "format_check", PASSED), ("safety", "safety", FAILED)]
    assert results[1].detail == "found: phone number ***4567"
    own = run_checks([{"name": "pii", "type": "safety"}], output="fine", row={})
    assert [r.name for r in own] == ["pii"]


def test_unknown_types_and_malformed_criteria_are_errors_not_passes():
    results = run_checks(
        [{"name": "vibes", "type": "custom_vibe_check"}, {"type": "equals"}, {"name": "vibes", "type": "regex", "pattern": "x"}, "oops",
         {"name": "t", "type": "llm_judge", "threshold": 1.5}],
        output="x", row={},
    )

    assert [r.status for r in results[:5]] == [ERROR] * 5
    assert "unknown criterion type 'custom_vibe_check'; known types: contains," in results[0].detail
    assert "needs a `name` and a `type`" in results[1].detail
    assert "another criterion is also named 'vibes'" in results[2].detail
    assert "between 0 and 1" in results[4].detail


# --- aggregation ------------------------------------------------------------------------------------------


def r(name, kind, status, value=None):
    return CheckResult(name, kind, status, value, "")


def _table(relevance_name="relevance"):
    """Four rows: all good; bad bullets, judge and safety; too long; a failed provider call."""
    def row(b, s, j, jv, m, mv, safe):
        return [r("bullets", "format_check", b, float(b == PASSED) if b != ERROR else None), r("short", "max_length", s, 10.0),
                r(relevance_name, "llm_judge", j, jv), r("sim", "similarity", m, mv), r("safety", "safety", safe)]
    return [
        row(PASSED, PASSED, PASSED, 0.9, PASSED, 1.0, PASSED),
        row(FAILED, PASSED, FAILED, 0.4, FAILED, 0.2, FAILED),
        row(PASSED, FAILED, ERROR, None, PASSED, 0.6, PASSED),
        [r(n, k, ERROR) for n, k in [("bullets", "format_check"), ("short", "max_length"), (relevance_name, "llm_judge"),
                                     ("sim", "similarity"), ("safety", "safety")]],
    ]


def test_summarize_counts_each_status_and_averages_values_hand_computed():
    summaries = summarize(_table())

    bullets = summaries["bullets"]
    assert (bullets.runs, bullets.passed, bullets.failed, bullets.not_run, bullets.errors) == (4, 2, 1, 0, 1)
    assert bullets.pass_rate == 0.5 and bullets.mean_value == pytest.approx(2 / 3)
    judge = summaries["relevance"]
    assert (judge.passed, judge.failed, judge.errors, judge.pass_rate) == (1, 1, 2, 0.25)
    assert judge.mean_value == pytest.approx(0.65)  # (0.9 + 0.4) / 2: errors have no score
    fmt = summaries["format_valid"]  # row 1 passes both format checks; rows 2 and 3 fail one; row 4 is an error
    assert (fmt.type, fmt.passed, fmt.failed, fmt.errors, fmt.pass_rate) == ("all_format_checks", 1, 2, 1, 0.25)


def test_gate_figures_hand_computed():
    figures = gate_figures(summarize(_table()))

    assert figures == pytest.approx({
        "bullets": 0.5, "short": 0.5, "safety": 0.5, "format_valid": 0.25,
        "relevance": (0.9 + 0.4 + 0 + 0) / 4,  # the llm_judge named relevance: mean score, errors count 0
        "sim": (1.0 + 0.2 + 0.6 + 0) / 4,
    })


def test_relevance_falls_back_to_the_mean_similarity_and_is_none_when_not_run():
    table = _table(relevance_name="judge")
    for row in table:
        row[2] = r("judge", "llm_judge", NOT_RUN)

    figures = gate_figures(summarize(table))

    assert figures["judge"] is None  # not run on any row: None, never a pass
    assert figures["relevance"] == pytest.approx(0.45)
    assert gate_figures(summarize([[r("x", "equals", PASSED, 1.0)]]))["format_valid"] is None


def test_safety_figure_spans_every_safety_check_of_a_row():
    rows = [
        [r("no_pii", "safety", PASSED), r("no_secrets", "safety", PASSED)],
        [r("no_pii", "safety", PASSED), r("no_secrets", "safety", FAILED)],
        [r("no_pii", "safety", FAILED), r("no_secrets", "safety", PASSED)],
        [r("no_pii", "safety", PASSED), r("no_secrets", "safety", PASSED)],
    ]

    figures = gate_figures(summarize(rows))

    assert (figures["no_pii"], figures["no_secrets"], figures["safety"]) == (0.75, 0.75, 0.5)


def test_summaries_of_real_checks_end_to_end():
    criteria = [{"name": "label_in_set", "type": "custom_label_check", "allowed": ["bug", "question", "praise"]},
                {"name": "matches_reference", "type": "equals"}]
    outputs = [("bug", "bug"), ("praise", "bug"), ("Bug!", "bug"), ("question", "question")]

    results = [run_checks(criteria, output=out, row={"expected": exp}) for out, exp in outputs]
    figures = gate_figures(summarize(results))

    assert figures == {"label_in_set": 0.75, "matches_reference": 0.5, "safety": 1.0, "format_valid": 0.75, "relevance": None}
