"""registry/providers.py: replay, the OpenAI-compatible client against a fake server on 127.0.0.1, the judge, run_eval."""

import http.server
import json
import socket
import threading

import pytest

from registry.prompt_checks import ERROR, NOT_RUN, PASSED, gate_figures, summarize
from registry.prompt_templates import render as render_template
from registry.providers import (
    Completion,
    LLMJudge,
    OpenAICompatibleProvider,
    ProviderError,
    ReplayProvider,
    ResponsesInvalid,
    parse_judge_score,
    run_eval,
)

CALL = {"system": "Be brief.", "prompt": "Summarize: x", "model": "claude-sonnet-4", "temperature": 0.3, "max_tokens": 500, "timeout": 5.0}


def chat_answer(text, prompt_tokens=12, completion_tokens=5):
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "model": "local-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": 17},
    }


class FakeLLM(http.server.BaseHTTPRequestHandler):
    """The scenario is the first path segment: /ok, /slow, /flaky, /busy, /limited, /auth, /garbage, /empty, /judge."""

    seen: list = []
    flaky_calls: dict = {}
    # The slow scenario holds its answer until the test is over (at most 10 s: far longer than the
    # 0.2 s the client is given, far shorter than any default a client might fall back to).
    release = threading.Event()

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        scenario = self.path.split("/")[1]
        FakeLLM.seen.append((scenario, self.path, dict(self.headers), body))
        status, answer, headers = 200, chat_answer("- moved to Tuesday"), {}
        if scenario == "slow":
            FakeLLM.release.wait(10)
        elif scenario == "flaky":
            FakeLLM.flaky_calls[scenario] = FakeLLM.flaky_calls.get(scenario, 0) + 1
            if FakeLLM.flaky_calls[scenario] == 1:
                status, answer = 500, {"error": {"message": "upstream hiccup"}}
        elif scenario == "busy":
            status, answer = 503, "<html><body><h1>503 Service Unavailable</h1></body></html>"
        elif scenario == "limited":
            status, answer, headers = 429, {"error": {"message": "Rate limit reached"}}, {"Retry-After": "2"}
        elif scenario == "auth":
            status, answer = 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
        elif scenario == "garbage":
            answer = "<html>Welcome to nginx!</html>"
        elif scenario == "empty":
            answer = {"choices": []}
        elif scenario == "judge":
            answer = chat_answer('```json\n{"score": 0.9, "reason": "on topic"}\n```')
        data = (answer if isinstance(answer, str) else json.dumps(answer)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if isinstance(answer, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the slow scenario's client has gone
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_llm():
    FakeLLM.seen, FakeLLM.flaky_calls, FakeLLM.release = [], {}, threading.Event()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeLLM)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        FakeLLM.release.set()
        server.shutdown()
        server.server_close()


def client(base, scenario, **kwargs):
    sleeps = []
    provider = OpenAICompatibleProvider(f"{base}/{scenario}/v1/", "sk-test", sleep=sleeps.append, **kwargs)
    return provider, sleeps


# --- OpenAI-compatible provider ------------------------------------------------------------------------------


def test_openai_compatible_normal_answer_with_usage_and_cost(fake_llm):
    provider, _ = client(fake_llm, "ok", model_override="local-model", pricing=lambda model, i, o: (i * 1.0 + o * 2.0) / 1e6)

    completion = provider.complete(**CALL)

    assert completion.text == "- moved to Tuesday"
    assert (completion.input_tokens, completion.output_tokens) == (12, 5)
    assert completion.cost_usd == pytest.approx(22e-6) and completion.latency_ms > 0
    assert completion.raw["model"] == "local-model"
    (scenario, path, headers, body), = FakeLLM.seen
    assert path == "/ok/v1/chat/completions" and headers["Authorization"] == "Bearer sk-test"
    assert body == {
        "model": "local-model", "temperature": 0.3, "max_tokens": 500,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Summarize: x"}],
    }


def test_openai_compatible_without_pricing_reports_no_cost_and_omits_empty_fields(fake_llm):
    provider, _ = client(fake_llm, "ok")

    completion = provider.complete(**{**CALL, "system": "", "max_tokens": None})

    assert completion.cost_usd is None
    body = FakeLLM.seen[0][3]
    assert body["model"] == "claude-sonnet-4" and "max_tokens" not in body
    assert body["messages"] == [{"role": "user", "content": "Summarize: x"}]


def test_openai_compatible_slow_answer_times_out(fake_llm):
    provider, sleeps = client(fake_llm, "slow")

    # The server holds its answer for up to 10 s: a client that does not give up after 0.2 s gets a 200 and does not raise.
    with pytest.raises(ProviderError, match=r"no answer from .*/slow/v1/chat/completions within 0.2 s") as caught:
        provider.complete(**{**CALL, "timeout": 0.2})

    assert caught.value.kind == "timeout" and sleeps == [] and len(FakeLLM.seen) == 1  # a timeout is not retried


def test_openai_compatible_retries_a_500_then_succeeds(fake_llm):
    provider, sleeps = client(fake_llm, "flaky")

    completion = provider.complete(**CALL)

    assert completion.text == "- moved to Tuesday"
    assert sleeps == [0.5] and len(FakeLLM.seen) == 2


def test_openai_compatible_gives_up_after_two_retries(fake_llm):
    provider, sleeps = client(fake_llm, "busy")

    with pytest.raises(ProviderError) as caught:
        provider.complete(**CALL)

    assert (caught.value.kind, caught.value.status) == ("http", 503)
    assert str(caught.value).endswith("after 2 retries: 503 Service Unavailable")
    assert sleeps == [0.5, 1.0] and len(FakeLLM.seen) == 3


def test_openai_compatible_follows_a_short_retry_after_on_429(fake_llm):
    provider, sleeps = client(fake_llm, "limited")

    with pytest.raises(ProviderError, match="HTTP 429 .* after 2 retries: Rate limit reached"):
        provider.complete(**CALL)

    assert sleeps == [2.0, 2.0]


def test_openai_compatible_401_is_not_retried_and_says_why(fake_llm):
    provider, sleeps = client(fake_llm, "auth")

    with pytest.raises(ProviderError) as caught:
        provider.complete(**CALL)

    message = str(caught.value)
    assert caught.value.status == 401 and sleeps == [] and len(FakeLLM.seen) == 1
    assert "HTTP 401" in message and "(check the API key)" in message and "Incorrect API key provided" in message
    assert "sk-test" not in message


@pytest.mark.parametrize(
    "scenario, words", [("garbage", "is not JSON: '<html>Welcome to nginx!</html>'"), ("empty", "has no choices[0].message")],
)
def test_openai_compatible_garbage_body_is_a_clear_error(fake_llm, scenario, words):
    provider, sleeps = client(fake_llm, scenario)

    with pytest.raises(ProviderError, match="the answer from .*") as caught:
        provider.complete(**CALL)

    assert caught.value.kind == "bad_answer" and words in str(caught.value) and sleeps == []


def test_openai_compatible_connection_refused_and_bad_base_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    provider = OpenAICompatibleProvider(f"http://127.0.0.1:{port}/v1", None)

    with pytest.raises(ProviderError, match="cannot reach") as caught:
        provider.complete(**CALL)

    assert caught.value.kind == "connection"
    with pytest.raises(ValueError, match="must start with http"):
        OpenAICompatibleProvider("localhost:8000/v1", None)


# --- the judge ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, score",
    [
        ('{"score": 0.8, "reason": "relevant"}', 0.8),
        ('```json\n{"score": 1, "reason": "exact"}\n```', 1.0),
        ('Here is my grade: {"score": 0.25, "reason": "off topic"} Hope it helps.', 0.25),
        ("0.7", 0.7),
        ("  0.65.  ", 0.65),
        ("8/10", 0.8),
        ("85%", 0.85),
        ("Score: 0.6. The summary misses the date.", 0.6),
        ('{"score": "0.9"}', 0.9),
        ("0", 0.0),
    ],
)
def test_judge_score_parsing_accepts_numbers_in_usual_shapes(text, score):
    assert parse_judge_score(text)[0] == pytest.approx(score)


@pytest.mark.parametrize(
    "text",
    ["Looks good to me!", "", '{"score": "high"}', '{"score": 7}', "1.5", "NaN", '{"rating": 0.9}', "0.8 or 0.9", "-0.1", "11/10", "true"],
)
def test_judge_score_parsing_refuses_garbage(text):
    with pytest.raises(ProviderError) as caught:
        parse_judge_score(text)

    assert caught.value.kind == "bad_answer"


def test_llm_judge_through_the_http_provider_grades_an_llm_judge_criterion(fake_llm):
    provider, _ = client(fake_llm, "judge")
    judge = LLMJudge(provider, "judge-model")

    verdict = judge.grade(criterion={"name": "relevance", "type": "llm_judge", "threshold": 0.8}, input={"text": "The meeting moved."},
                          output="- moved to Tuesday", expected="- moved to Tuesday")

    assert (verdict.score, verdict.reason) == (0.9, "on topic")
    body = FakeLLM.seen[0][3]
    assert body["model"] == "judge-model" and body["temperature"] == 0.0
    user = body["messages"][1]["content"]
    assert "Criterion: relevance" in user and "<output>\n- moved to Tuesday\n</output>" in user and '"text": "The meeting moved."' in user


# --- replay ------------------------------------------------------------------------------------------------


def test_replay_from_rows_and_a_clear_message_for_a_row_without_a_response():
    rows = [{"input": {"text": "a"}, "response": "- a"}, {"input": {"text": "b"}, "output": "- b"}, {"input": {"text": "c"}}]
    replay = ReplayProvider.from_rows(rows)

    assert [replay.complete(**CALL, index=i).text for i in (0, 1)] == ["- a", "- b"]
    assert replay.complete(**CALL, index=0).latency_ms is None
    with pytest.raises(ProviderError, match=r"row 2 has no recorded response") as caught:
        replay.complete(**CALL, index=2)
    assert caught.value.kind == "no_response"


def test_replay_from_a_responses_file_by_id_or_index():
    text = '{"id": "q-1", "output": "bug", "latency_ms": 420, "cost_usd": 0.0001}\n\n{"index": 1, "output": "praise"}\n'
    replay = ReplayProvider.from_jsonl(text)

    by_id = replay.complete(**CALL, index=0, row_id="q-1")

    assert (by_id.text, by_id.latency_ms, by_id.cost_usd) == ("bug", 420.0, 0.0001)
    assert replay.complete(**CALL, index=1, row_id="q-2").text == "praise"
    with pytest.raises(ProviderError, match=r"row 5 \(id 'q-9'\) has no recorded response"):
        replay.complete(**CALL, index=5, row_id="q-9")
    problems = r"line 1: not valid JSON.*line 2: needs an `output`.*line 3: needs an `id`.*line 5: a second output"
    with pytest.raises(ResponsesInvalid, match=problems):
        ReplayProvider.from_jsonl('{oops\n{"id": "a"}\n{"output": "x"}\n{"index": 0, "output": "x"}\n{"index": 0, "output": "y"}\n')


# --- run_eval ------------------------------------------------------------------------------------------------

TEMPLATE = "Summarize the following text:\n\n{text}\n"
CRITERIA = [
    {"name": "bullet_count", "type": "format_check", "expected": 1},
    {"name": "relevance", "type": "llm_judge", "threshold": 0.8},
    {"name": "matches_reference", "type": "similarity", "threshold": 0.5},
]
ROWS = [
    {"id": "r1", "input": {"text": "The meeting moved to Tuesday."}, "expected": "- moved to Tuesday", "response": "- Moved to Tuesday."},
    {"id": "r2", "input": {"text": "Sales grew 4% in Q3."}, "expected": "- sales up 4%", "response": "Sales went up. Call 555-123-4567."},
    {"id": "r3", "input": {"txt": "wrong variable"}, "expected": "- x", "response": "- x"},
    {"id": "r4", "input": {"text": "No answer recorded."}, "expected": "- none"},
]


def render(variables):
    return "You are a concise summarizer.", render_template(TEMPLATE, variables)


def test_run_eval_with_replayed_outputs_reports_each_row_and_the_gate_figures():
    results = run_eval(rows=ROWS, render=render, criteria=CRITERIA, provider=ReplayProvider.from_rows(ROWS), model="m", temperature=0.3,
                       max_tokens=500, timeout=5.0)

    assert [(r.index, r.id, r.output) for r in results] == [
        (0, "r1", "- Moved to Tuesday."), (1, "r2", "Sales went up. Call 555-123-4567."), (2, "r3", None), (3, "r4", None),
    ]
    first = {c.name: c.status for c in results[0].checks}
    assert first == {"bullet_count": PASSED, "relevance": NOT_RUN, "matches_reference": PASSED, "safety": PASSED}
    assert results[0].checks[2].value == pytest.approx(1.0)  # "moved to tuesday" both sides after SQuAD normalisation
    assert results[2].error.startswith("cannot render the prompt: missing variable(s): text; unknown variable(s): txt")
    assert results[3].error.startswith("provider: row 3 (id 'r4') has no recorded response")
    assert {c.status for c in results[3].checks} == {ERROR}
    figures = gate_figures(summarize(results))
    # similarity on row 2: "sales went up call 5551234567" vs "sales up 4": 2 common of 5 and 3 tokens,
    # F1 = 2 * 0.4 * 2/3 / (0.4 + 2/3) = 0.5; relevance: no judge, so not run on rows 0 and 1, errors on 2 and 3: None
    assert figures == pytest.approx({"bullet_count": 0.25, "relevance": None, "matches_reference": (1.0 + 0.5) / 4, "safety": 0.25,
                                     "format_valid": 0.25})


class FailingProvider:
    def __init__(self):
        self.calls = 0

    def complete(self, **kwargs):
        self.calls += 1
        raise ProviderError("HTTP 401 from http://x/chat/completions (check the API key)", kind="http", status=401)


def test_run_eval_reports_a_provider_that_fails_on_every_row_and_stops_after_a_streak():
    rows = [{"input": {"text": str(i)}, "expected": "-"} for i in range(20)]
    provider = FailingProvider()

    expected = r"the provider failed on every call \(5 of 20 rows; 15 rows not sent after 5 failures in a row\): HTTP 401"
    with pytest.raises(ProviderError, match=expected) as caught:
        run_eval(rows=rows, render=render, criteria=CRITERIA, provider=provider, model="m", temperature=0, max_tokens=None, timeout=1)

    assert provider.calls == 5 and caught.value.status == 401
    assert len(caught.value.results) == 20 and caught.value.results[19].error.startswith("not run: the provider failed on 5 rows in a row")


class HalfProvider:
    def complete(self, *, index, **kwargs):
        if index % 2:
            raise ProviderError(f"no answer within 1 s (row {index})", kind="timeout")
        return Completion(text="- ok", latency_ms=120.0, input_tokens=10, output_tokens=2, cost_usd=0.001)


def test_run_eval_keeps_going_when_only_some_calls_fail_and_uses_the_judge():
    rows = [{"input": {"text": str(i)}, "expected": "- ok"} for i in range(6)]

    class Judge:
        def grade(self, *, criterion, input, output, expected):
            from registry.prompt_checks import JudgeVerdict

            return JudgeVerdict(0.9 if input["text"] != "4" else 0.5)

    results = run_eval(rows=rows, render=render, criteria=CRITERIA, provider=HalfProvider(), judge=Judge(), model="m", temperature=0,
                       max_tokens=None, timeout=1)

    assert [r.error[:30] for r in results] == ["", "provider: no answer within 1 s", "", "provider: no answer within 1 s", "",
                                               "provider: no answer within 1 s"]
    assert (results[0].latency_ms, results[0].cost_usd, results[0].input_tokens) == (120.0, 0.001, 10)
    figures = gate_figures(summarize(results))
    assert figures["relevance"] == pytest.approx((0.9 + 0.9 + 0.5) / 6) and figures["bullet_count"] == 0.5
