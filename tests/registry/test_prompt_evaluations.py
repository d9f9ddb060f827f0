"""Prompt evaluations end to end: replay and an OpenAI-compatible fake server on 127.0.0.1, the gate figures,
llm_judge "not run" without a judge (never a pass), and a provider that fails."""

import http.server
import json
import threading

import pytest

from registry.models import Evaluation, EvaluationRow, Prompt
from registry.services import prompt_runs
from registry.services import prompts as prompt_services
from registry.services.gates import DEFAULT_PROMPT_CHECKS, gate_policy_set
from tests.prompts.conftest import brief_folder
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db
URL = "/api/v1/prompts/summarize/versions/2"


@pytest.fixture
def summarize(editor):
    prompt_services.prompts_import(files=brief_folder(), actor=editor)


def run(api_as, user, capture, body):
    with capture(execute=True):
        queued = api_as(user).post(f"{URL}/evaluations", body, format="json")
    assert queued.status_code == 202, queued.content
    return Evaluation.objects.get(pk=queued.json()["id"])


def test_replay_figures_rows_and_the_gate(celery_eager, api_as, editor, approver, viewer, summarize, django_capture_on_commit_callbacks):
    gate_policy_set(prompt=Prompt.objects.get(name="summarize"), checks=DEFAULT_PROMPT_CHECKS, actor=approver)
    responses = {"0": "- moved to Tuesday\n- room 4\n- bring slides", "1": "- sales up 4%\n- call me at jane@example.com\n- Q3"}

    evaluation = run(api_as, editor, django_capture_on_commit_callbacks, {"provider": "replay", "responses": responses})

    assert evaluation.status == "done", evaluation.error
    assert evaluation.metrics["bullet_count"] == 1.0 and evaluation.metrics["format_valid"] == 1.0
    assert evaluation.metrics["safety"] == 0.5  # one output leaks an e-mail address
    assert "relevance" in evaluation.details["not_run"] and "relevance" not in evaluation.metrics  # llm_judge without a judge
    rows = list(EvaluationRow.objects.filter(evaluation=evaluation).order_by("index"))
    assert [r.output for r in rows] == [responses["0"], responses["1"]]
    safety = next(c for c in rows[1].checks if c["type"] == "safety")
    assert safety["status"] == "failed" and "e-mail" in safety["detail"] and "jane@example.com" not in safety["detail"]  # masked
    assert evaluation.origin == "typed_replay"
    gates = {c["check"]: (c["status"], c["passed_over"][0]["evaluation_id"] if c["passed_over"] else None)
             for c in api_as(viewer).get(f"{URL}/gates").json()["checks"]}
    assert gates == {"format_valid": ("not_run", evaluation.pk), "relevance": ("not_run", None), "safety": ("not_run", evaluation.pk)}
    refused = assert_error_shape(api_as(editor).post(f"{URL}/promotions", {"to": "prod", "reason": "ship"}, format="json"), 409, "gates_failed")
    assert f"format_valid has no evidence that counts (#{evaluation.pk}: a replay of responses typed in with the request" in refused["message"]


def test_an_openai_compatible_server_and_its_failures(celery_eager, api_as, editor, summarize, settings, django_capture_on_commit_callbacks):
    seen, answers = [], ["- moved to Tuesday\n- a\n- b", "- sales up 4%\n- b\n- c"]

    class Fake(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers.get("Authorization"), body))
            if self.server.broken:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"<html>oops</html>")
                return
            text = answers[len(seen) - 1] if len(seen) <= len(answers) else "x"
            payload = {"choices": [{"message": {"role": "assistant", "content": text}}], "usage": {"prompt_tokens": 50, "completion_tokens": 9}}
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    server.broken = False
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.MLOPS_LLM_BASE_URL, settings.MLOPS_LLM_API_KEY = f"http://127.0.0.1:{server.server_port}/v1", "sk-test"
    try:
        good = run(api_as, editor, django_capture_on_commit_callbacks, {"provider": "openai"})
        server.broken = True
        bad = run(api_as, editor, django_capture_on_commit_callbacks, {"provider": "openai"})
    finally:
        server.shutdown()

    assert good.status == "done" and good.metrics["format_valid"] == 1.0
    path, auth, body = seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test" and body["model"] == "claude-sonnet-4"
    assert "The meeting moved to Tuesday." in body["messages"][-1]["content"]
    assert bad.status == "failed" and "every call" in bad.error and bad.metrics == {}


def test_requests_without_an_eval_set_or_a_provider_are_refused(api_as, editor, summarize):
    assert_error_shape(api_as(editor).post("/api/v1/prompts/classify/versions/1/evaluations", {}, format="json"), 400)
    assert_error_shape(api_as(editor).post(f"{URL}/evaluations", {"provider": "openai"}, format="json"), 400)  # no MLOPS_LLM_BASE_URL
    assert_error_shape(api_as(editor).post(f"{URL}/evaluations", {"provider": "magic"}, format="json"), 400)


@pytest.mark.parametrize("timeout", [61, 10**9, 0, -1, "60", True])
def test_an_llm_timeout_above_the_servers_maximum_or_not_a_positive_number_is_refused_naming_the_field(api_as, editor, summarize, settings, timeout):
    settings.MLOPS_LLM_TIMEOUT_S = 60

    refused = api_as(editor).post(f"{URL}/evaluations", {"provider": "replay", "timeout_s": timeout}, format="json")

    body = assert_error_shape(refused, 400)
    assert "timeout_s" in body["message"] and "60" in body["message"]
    assert not Evaluation.objects.exists()


def test_an_llm_timeout_up_to_the_servers_maximum_is_kept(api_as, editor, summarize, settings):
    settings.MLOPS_LLM_TIMEOUT_S = 60

    queued = api_as(editor).post(f"{URL}/evaluations", {"provider": "replay", "timeout_s": 60}, format="json")

    assert queued.status_code == 202, queued.content
    assert Evaluation.objects.get().options["timeout_s"] == 60


def test_a_stored_llm_timeout_above_the_servers_maximum_runs_at_the_maximum(editor, summarize, settings, monkeypatch):
    settings.MLOPS_LLM_TIMEOUT_S = 60
    version = Prompt.objects.get(name="summarize").versions.get(version=2)
    stored = Evaluation.objects.create(kind="prompt", prompt_version=version, requested_by=editor, options={"timeout_s": 10**9})
    seen = {}

    def capture(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(prompt_runs.providers, "run_eval", capture)
    with pytest.raises(RuntimeError):
        prompt_runs.run_prompt_evaluation(stored)

    assert seen["timeout"] == 60


def test_evaluation_list_takes_a_fixed_number_of_queries(api_as, editor, viewer, summarize, django_assert_max_num_queries):
    for _ in range(6):
        assert api_as(editor).post(f"{URL}/evaluations", {"provider": "replay"}, format="json").status_code == 202
    client = api_as(viewer)

    with django_assert_max_num_queries(5):  # token, roles, the version, count, page
        listed = client.get(f"{URL}/evaluations").json()

    assert listed["count"] == 6
    assert {(e["prompt"], e["version"], e["requested_by"], e["kind"]) for e in listed["results"]} == {("summarize", 2, editor.username, "prompt")}
