"""Evaluations on their own queue, through a real worker: an evaluation requested over the API is sent to the
evaluations queue (a worker consuming that queue alone runs it), and a prompt whose YAML brings a catastrophic
regex (a criterion and a deny pattern) is evaluated to the right verdicts instead of holding the worker."""

import pytest

from registry.models import Evaluation, EvaluationRow
from registry.services import prompts as prompt_services
from tests.factories import register
from tests.prompts.conftest import SUMMARIZE, brief_folder
from tests.registry.test_model_evaluations import predictions_csv, upload

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
CATASTROPHIC = "^(a+)+$"  # a backtracking engine takes 2^40 steps on forty a's and a "!"


def finished(evaluation_id: int):
    return Evaluation.objects.filter(pk=evaluation_id, status__in=["done", "failed"]).first()


def test_evaluation_compute_is_sent_to_the_evaluations_queue_and_run_by_its_worker(spare_worker, api_as, editor):
    evaluations_only = spare_worker(consumes=("evaluations",))
    register("fraud", editor)
    body, _ = predictions_csv(200, 5, bias=0.0)

    with evaluations_only.routing():
        queued = upload(api_as(editor), body, kind="model")
    evaluation = evaluations_only.wait_for(lambda: finished(queued.json()["id"]), "the evaluation finished on the evaluations queue")

    assert queued.status_code == 202
    assert (evaluation.status, evaluation.attempts, evaluation.error) == ("done", 1, "")


def test_evaluation_with_a_catastrophic_regex_and_deny_pattern_completes_with_the_right_verdicts(worker, api_as, editor):
    criteria = (
        f"- name: only_as\n  type: regex\n  pattern: '{CATASTROPHIC}'\n  match: full\n"
        f"- name: no_runs_of_a\n  type: safety\n  pii: false\n  deny: ['{CATASTROPHIC}']\n"
    )
    prompt_services.prompts_import(files=brief_folder() | {"summarize/v4.yaml": SUMMARIZE.format(n=4, bullets=3) + criteria}, actor=editor)
    responses = {"0": "a" * 40 + "!", "1": "a" * 40}

    queued = api_as(editor).post(
        "/api/v1/prompts/summarize/versions/4/evaluations", {"provider": "replay", "responses": responses}, format="json"
    )
    evaluation = worker.wait_for(lambda: finished(queued.json()["id"]), "the prompt evaluation finished")

    assert queued.status_code == 202
    assert evaluation.status == "done", evaluation.error
    verdicts = [
        {c["name"]: c["status"] for c in row.checks} for row in EvaluationRow.objects.filter(evaluation=evaluation).order_by("index")
    ]
    assert [(v["only_as"], v["no_runs_of_a"]) for v in verdicts] == [("failed", "passed"), ("passed", "failed")]
