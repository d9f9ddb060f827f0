"""A prompt file's regexes and JSON schemas are checked at import as the run will use them: a pattern RE2 cannot run
(a backreference, a lookaround) and a schema nested too deeply are a 400 naming the file and line, and nothing is stored."""

import pytest

from registry.models import PromptVersion
from tests.prompts.conftest import SUMMARIZE, brief_folder
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db
V4 = SUMMARIZE.format(n=4, bullets=3)
CRITERION_LINE = len(V4.splitlines()) + 1  # the criterion appended below starts on the line after the file's last one


def import_with_criterion(client, lines: str):
    files = brief_folder() | {"summarize/v4.yaml": V4 + lines}
    return client.post("/api/v1/prompts/import", {"files": files}, format="json")


@pytest.mark.parametrize(
    ("lines", "line", "label", "says"),
    [
        ("- name: echo\n  type: regex\n  pattern: '(\\w+) \\1'\n", CRITERION_LINE + 2, "eval_criteria.2.pattern", "uses a backreference"),
        (
            "- name: leaks\n  type: safety\n  deny:\n  - password\n  - '(?<!no )secret'\n",
            CRITERION_LINE + 4,
            "eval_criteria.2.deny.1",
            "uses a lookahead or lookbehind",
        ),
        (
            "- name: flagged\n  type: regex\n  pattern: x\n  flags: ig\n",
            CRITERION_LINE + 3,
            "eval_criteria.2.flags",
            "`flags` must be letters",
        ),
    ],
    ids=["backreference", "lookbehind-deny", "flags"],
)
def test_import_refuses_a_pattern_re2_cannot_run_naming_file_line_and_why(api_as, editor, lines, line, label, says):
    response = import_with_criterion(api_as(editor), lines)

    (problem,) = assert_error_shape(response, 400, "invalid")["extra"]["problems"]
    assert (problem["file"], problem["line"]) == ("summarize/v4.yaml", line)
    assert problem["message"].startswith(f"{label}: ") and says in problem["message"]
    assert not PromptVersion.objects.exists()


def test_import_takes_a_catastrophic_looking_pattern_that_re2_runs_in_linear_time(api_as, editor):
    response = import_with_criterion(api_as(editor), "- name: as\n  type: regex\n  pattern: '^(a+)+$'\n  flags: i\n")

    assert response.status_code == 200, response.content
    assert PromptVersion.objects.get(prompt__name="summarize", version=4).eval_criteria[-1]["pattern"] == "^(a+)+$"


def test_import_refuses_a_json_schema_nested_too_deeply_naming_file_and_line(api_as, editor):
    depth = 70
    schema = "".join(f"\n{'  ' * (i + 2)}items:" for i in range(depth)) + " {}\n"

    response = import_with_criterion(api_as(editor), f"- name: shape\n  type: json\n  schema:{schema}")

    (problem,) = assert_error_shape(response, 400, "invalid")["extra"]["problems"]
    assert problem["file"] == "summarize/v4.yaml" and problem["line"] is not None
    assert "nested too deeply (the limit is 64 levels)" in problem["message"]
    assert not PromptVersion.objects.exists()
