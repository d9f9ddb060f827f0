"""A prompt's YAML cannot lend a gate its own figure: a criterion named format_valid, relevance or safety must be of the
family that produces that figure (refused at import with a 400 naming file and line), and a version stored before the
refusal still gets its gate figures from the built-in families only."""

import pytest

from registry.models import Evaluation, PromptVersion
from registry.prompt_checks import FAILED, PASSED, CheckResult, gate_figures, summarize
from registry.services import prompts as prompt_services
from tests.prompts.conftest import SUMMARIZE, brief_folder
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db
V4 = SUMMARIZE.format(n=4, bullets=3)
CRITERION_LINE = len(V4.splitlines()) + 1  # the criterion appended below starts on the line after the file's last one


def with_criterion(name: str, kind: str, extra: str) -> dict[str, str]:
    return brief_folder() | {"summarize/v4.yaml": V4 + f"- name: {name}\n  type: {kind}\n{extra}"}


@pytest.mark.parametrize(
    ("name", "kind", "extra"),
    [
        ("safety", "max_length", "  max_chars: 1000000\n"),
        ("relevance", "contains", "  values: ['-']\n"),
        ("format_valid", "cost", "  max_usd: 1000\n"),
    ],
)
def test_import_refuses_a_criterion_that_borrows_a_gate_figures_name(api_as, editor, name, kind, extra):
    response = api_as(editor).post("/api/v1/prompts/import", {"files": with_criterion(name, kind, extra)}, format="json")

    body = assert_error_shape(response, 400, "invalid")
    (problem,) = body["extra"]["problems"]
    assert (problem["file"], problem["line"]) == ("summarize/v4.yaml", CRITERION_LINE)
    assert problem["message"].startswith(f"eval_criteria.2.name: '{name}' is the name of a gate figure")
    assert f"a {kind} criterion cannot take it" in problem["message"]
    assert "summarize/v4.yaml" in body["extra"]["fields"]
    assert not PromptVersion.objects.exists()


@pytest.mark.parametrize(
    ("name", "kind", "extra"),
    [
        ("safety", "safety", "  deny: ['password']\n"),
        ("relevance", "similarity", "  threshold: 0.5\n"),
        ("format_valid", "json", ""),
    ],
)
def test_import_takes_a_gate_figures_name_for_a_criterion_of_its_own_family(api_as, editor, name, kind, extra):
    response = api_as(editor).post("/api/v1/prompts/import", {"files": with_criterion(name, kind, extra)}, format="json")

    assert response.status_code == 200, response.content
    assert "summarize/v4.yaml" in response.json()["created"]


def test_a_version_stored_with_a_borrowed_name_still_gets_its_safety_figure_from_the_pii_check(
    celery_eager, api_as, editor, monkeypatch, django_capture_on_commit_callbacks
):
    # As a version imported before the refusal existed (versions are immutable, so it stays in the database).
    monkeypatch.setattr("registry.prompt_files.gate_name_problem", lambda name, kind: None)
    prompt_services.prompts_import(files=with_criterion("safety", "max_length", "  max_chars: 1000000\n"), actor=editor)
    monkeypatch.undo()
    leaky = {"0": "- a\n- b\n- c", "1": "- mail\n- jane@example.com\n- now"}

    with django_capture_on_commit_callbacks(execute=True):
        queued = api_as(editor).post("/api/v1/prompts/summarize/versions/4/evaluations", {"provider": "replay", "responses": leaky},
                                     format="json")

    evaluation = Evaluation.objects.get(pk=queued.json()["id"])
    assert evaluation.status == "done", evaluation.error
    assert evaluation.metrics["safety"] == 0.5  # the built-in PII check: one of two outputs leaks an address
    assert evaluation.metrics["bullet_count"] == 1.0
    assert "format_valid" not in evaluation.metrics  # the borrowed criterion is an error on every row: never a pass
    assert "format_valid" in evaluation.details["not_run"]
    row = evaluation.rows.get(index=1)
    borrowed = next(c for c in row.checks if c["name"] == "safety")
    assert borrowed["status"] == "error" and "is the name of a gate figure" in borrowed["detail"]


def test_relevance_and_safety_are_never_the_figures_of_a_criterion_of_another_type():
    rows = [
        [CheckResult("relevance", "contains", PASSED, 1.0, ""), CheckResult("sim", "similarity", PASSED, 0.4, ""),
         CheckResult("safety", "max_length", PASSED, 12.0, ""), CheckResult("pii", "safety", FAILED, 0.0, "")],
        [CheckResult("relevance", "contains", PASSED, 1.0, ""), CheckResult("sim", "similarity", FAILED, 0.2, ""),
         CheckResult("safety", "max_length", PASSED, 12.0, ""), CheckResult("pii", "safety", PASSED, 1.0, "")],
    ]

    figures = gate_figures(summarize(rows))

    assert figures["relevance"] == pytest.approx((0.4 + 0.2) / 2)  # the similarity figures, not the borrowing contains
    assert figures["safety"] == 0.5  # the safety-type check, not the borrowing max_length
