"""Regexes and JSON schemas from prompt YAML, attacked as a hostile editor would: catastrophic backtracking,
backreferences, over-long and over-deep outputs. Each must end in a verdict, never a hung or crashed worker."""

import json

import pytest

from registry.prompt_checks import ERROR, FAILED, PASSED, run_checks
from registry.prompt_checks.patterns import MAX_TEXT_CHARS, compile_pattern

CATASTROPHIC = "^(a+)+$"  # nested quantifiers: a backtracking engine takes 2^n steps on a's followed by one other char
ATTACK_OUTPUT = "a" * 40 + "!"


def check(criterion, output):
    return run_checks([criterion], output=output, row={})[0]


def test_regex_catastrophic_pattern_completes_with_the_right_verdict():
    criterion = {"name": "r", "type": "regex", "pattern": CATASTROPHIC}

    attacked, full, matching = (
        check(criterion, ATTACK_OUTPUT),
        check({**criterion, "match": "full"}, ATTACK_OUTPUT),
        check(criterion, "a" * 40),
    )

    assert (attacked.status, full.status, matching.status) == (FAILED, FAILED, PASSED)


def test_safety_catastrophic_deny_pattern_completes_with_the_right_verdict():
    criterion = {"name": "s", "type": "safety", "deny": [CATASTROPHIC], "pii": False}

    attacked, matching = check(criterion, ATTACK_OUTPUT), check(criterion, "A" * 40)

    assert attacked.status == PASSED
    assert matching.status == FAILED and matching.detail == f"found: deny pattern /{CATASTROPHIC}/"


@pytest.mark.parametrize(
    ("pattern", "uses"),
    [
        (r"(\w+) \1", "a backreference"),
        (r"(?P<w>\w+) (?P=w)", "a backreference"),
        (r"(?<!un)safe", "a lookahead or lookbehind"),
        (r"secret(?= key)", "a lookahead or lookbehind"),
    ],
)
def test_regex_and_deny_patterns_without_a_linear_time_form_are_errors_saying_why(pattern, uses):
    regex = check({"name": "r", "type": "regex", "pattern": pattern}, "x")
    deny = check({"name": "s", "type": "safety", "deny": [pattern]}, "x")

    for result in (regex, deny):
        assert result.status == ERROR and f"uses {uses} (" in result.detail and "which RE2 lacks" in result.detail


@pytest.mark.parametrize(
    ("flags", "pattern", "text", "found"),
    [
        ("i", "^yes$", "YES", True),
        ("", "^yes$", "YES", False),
        ("m", "^b$", "a\nb\nc", True),
        ("", "^b$", "a\nb\nc", False),
        ("s", "a.b", "a\nb", True),
        ("", "a.b", "a\nb", False),
        ("x", "a b  # the letters\n c", "abc", True),
        ("x", r"a\ b", "a b", True),
        ("x", "a[ ]b", "a b", True),
        ("x", "[]x] y", "]y", True),
    ],
)
def test_regex_flags_keep_their_python_meaning(flags, pattern, text, found):
    result = check({"name": "r", "type": "regex", "pattern": pattern, "flags": flags}, text)

    assert result.status == (PASSED if found else FAILED)


def test_regex_unicode_output_reports_the_character_offset():
    result = check({"name": "r", "type": "regex", "pattern": "ß+"}, "Straßße")

    assert result.detail == "matched at 4"


def test_regex_and_deny_patterns_fail_an_output_over_the_cap_and_say_so():
    long_output = "x" * MAX_TEXT_CHARS + "forbidden"

    regex = check({"name": "r", "type": "regex", "pattern": "x"}, long_output)
    deny = check({"name": "s", "type": "safety", "deny": ["forbidden"], "pii": False}, long_output)
    at_cap = check({"name": "s", "type": "safety", "deny": ["forbidden"], "pii": False}, long_output[-MAX_TEXT_CHARS:])

    assert regex.status == FAILED and "regular expressions check at most 100,000" in regex.detail
    assert deny.status == FAILED and "the 1 deny patterns were not checked" in deny.detail
    assert at_cap.status == FAILED and "deny pattern /forbidden/" in at_cap.detail


def test_compile_pattern_refuses_flags_that_are_not_a_string():
    with pytest.raises(Exception, match="`flags` must be letters of 'imsx'"):
        compile_pattern("a", ["i"])


def test_json_schema_check_of_an_over_deep_output_fails_with_the_reason():
    recursive = {"type": "array", "items": {"$ref": "#"}}  # validation follows the document as deep as it goes
    output = "[" * 900 + "]" * 900

    result = check({"name": "j", "type": "json", "schema": recursive}, output)
    format_result = check({"name": "f", "type": "format_check", "json_schema": recursive}, output)
    shallow = check({"name": "j", "type": "json", "schema": recursive}, json.dumps([[[]]]))

    assert result.status == FAILED and result.detail == "the output's JSON is nested too deeply (the limit is 64 levels)"
    assert format_result.status == FAILED and "nested too deeply" in format_result.detail
    assert shallow.status == PASSED


def test_json_schema_that_refers_to_itself_without_end_is_an_error():
    result = check({"name": "j", "type": "json", "schema": {"$ref": "#"}}, "1")

    assert result.status == ERROR and result.detail == "the JSON schema refers to itself without end"


def test_regex_and_deny_patterns_read_an_output_with_a_lone_surrogate():
    output = json.loads('"a\\ud800b secret"')  # JSON may decode to a lone surrogate, which UTF-8 (and RE2) cannot hold

    regex = check({"name": "r", "type": "regex", "pattern": "b secret$"}, output)
    deny = check({"name": "s", "type": "safety", "deny": ["secret"], "pii": False}, output)
    bad_pattern = check({"name": "r", "type": "regex", "pattern": json.loads('"\\ud800"')}, "x")

    assert (regex.status, regex.detail) == (PASSED, "matched at 2")
    assert deny.status == FAILED and deny.detail == "found: deny pattern /secret/"
    assert bad_pattern.status == ERROR and "lone surrogate" in bad_pattern.detail
