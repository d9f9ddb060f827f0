"""The judge's calls count in a prompt evaluation's cost: priced with the same price table as the prompt's calls,
shown apart (judge cost) on the evaluation page. Hand-computed figures against a fake OpenAI-compatible server."""

import http.server
import json
import threading
from datetime import date

import pytest

from monitoring import services as monitoring_services
from registry.models import Evaluation
from registry.providers import JUDGE_SYSTEM
from registry.services import prompts as prompt_services
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db
URL = "/api/v1/prompts/summarize/versions/2"
M = 1_000_000


@pytest.fixture
def llm_server(settings):
    """Answers the prompt's calls with 50 input / 9 output tokens and the judge's with 200 / 20 (and a score)."""
    calls = []

    class Fake(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            is_judge = body["messages"][0]["content"] == JUDGE_SYSTEM
            calls.append(body["model"])
            text, usage = ('{"score": 0.9, "reason": "on topic"}', (200, 20)) if is_judge else ("- moved to Tuesday\n- a\n- b", (50, 9))
            data = json.dumps(
                {
                    "choices": [{"message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1]},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Fake)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.MLOPS_LLM_BASE_URL, settings.MLOPS_LLM_API_KEY = f"http://127.0.0.1:{server.server_port}/v1", "sk-test"
    settings.MLOPS_JUDGE_MODEL = "gpt-4o-mini"
    yield calls
    server.shutdown()


def evaluate(api_as, editor, capture) -> Evaluation:
    prompt_services.prompts_import(
        files=brief_folder(), actor=editor
    )  # summarize v2 runs claude-sonnet-4; 2 rows; relevance is an llm_judge
    with capture(execute=True):
        queued = api_as(editor).post(f"{URL}/evaluations", {"provider": "openai"}, format="json")
    assert queued.status_code == 202, queued.content
    return Evaluation.objects.get(pk=queued.json()["id"])


def price(editor, pattern: str, input_per_million: float, output_per_million: float):
    monitoring_services.price_set(
        pattern=pattern,
        input_per_token=input_per_million / M,
        output_per_token=output_per_million / M,
        effective_from=date(2025, 1, 1),
        actor=editor,
    )


def test_the_judges_calls_are_priced_apart_and_counted_in_the_total(
    celery_eager, api_as, client, editor, llm_server, django_capture_on_commit_callbacks
):
    price(editor, "claude-sonnet-4", 3, 15)
    price(editor, "gpt-4o-mini", 0.15, 0.6)

    evaluation = evaluate(api_as, editor, django_capture_on_commit_callbacks)

    assert evaluation.status == "done", evaluation.error
    assert sorted(llm_server) == ["claude-sonnet-4", "claude-sonnet-4", "gpt-4o-mini", "gpt-4o-mini"]
    cost = evaluation.details["cost"]
    # the prompt: 2 calls x (50 x 3 + 9 x 15) / 1M = 570 / 1M; the judge: 2 calls x (200 x 0.15 + 20 x 0.6) / 1M = 84 / 1M
    assert cost["rows_usd"] == pytest.approx(570 / M, rel=1e-12)
    assert cost["judge_usd"] == pytest.approx(84 / M, rel=1e-12)
    assert cost["total_usd"] == pytest.approx(654 / M, rel=1e-12)
    assert (cost["judge_model"], cost["judge_calls"], cost["judge_input_tokens"], cost["judge_output_tokens"]) == (
        "gpt-4o-mini",
        2,
        400,
        40,
    )
    client.force_login(editor)
    page = client.get(f"/evaluations/{evaluation.pk}/").content.decode()
    assert '<span id="judge-cost">$0.000084</span>' in page and "$0.000654" in page


def test_a_judge_without_a_price_leaves_the_judge_cost_and_the_total_unknown(
    celery_eager, api_as, editor, llm_server, django_capture_on_commit_callbacks
):
    price(editor, "claude-sonnet-4", 3, 15)

    evaluation = evaluate(api_as, editor, django_capture_on_commit_callbacks)

    cost = evaluation.details["cost"]
    assert cost["rows_usd"] == pytest.approx(570 / M, rel=1e-12)
    assert (cost["judge_usd"], cost["total_usd"], cost["judge_calls"]) == (None, None, 2)
