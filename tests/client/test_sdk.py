"""The Python SDK (`mlops_client.Client`) against a live server over real HTTP: each method once, its errors,
and `log_events`' background batching, retry, drops, flush and close through a small HTTP server in front."""

import hashlib
import http.server
import json
import subprocess
import sys
import threading
import time

import pytest
import requests
from django.db import connection

from experiments import services as experiment_services
from experiments.models import Exposure, Outcome
from mlops_client import ApiError, Client, UsageError
from monitoring.models import Event
from registry.models import Evaluation, ModelVersion, PromotionRequest
from registry.services import evaluations
from tests.client.test_cli import ROOT, token_for
from tests.client.test_cli_gates import BIAS_POLICY, predictions_csv
from tests.conftest import make_user
from tests.factories import promote, register

pytestmark = pytest.mark.django_db(transaction=True)

CHECKOUT = {
    "hypothesis": "v2 converts better",
    "variants": [{"name": "A", "version": 1, "weight": 50}, {"name": "B", "version": 2, "weight": 50}],
    "primary_metric": {"name": "conversion", "kind": "proportion"},
    "alpha": 0.05, "power": 0.8, "mde": 0.02, "baseline_rate": 0.1,
}


def wait_until(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def event(n: int, **fields) -> dict:
    return {"event_id": f"e-{n}", "model": "fraud", "version": 1, "latency_ms": 12.5, **fields}


class Front:
    """An HTTP server on 127.0.0.1 in front of the live server: records each POST's batch size, answers the
    scripted statuses first (503 with `Retry-After: 0`...), then forwards to the live server; `hold` blocks
    requests until released."""

    def __init__(self, upstream: str, script: list[int] | None = None, always: int | None = None, retry_after: str | None = "0"):
        self.upstream, self.script, self.always, self.retry_after = upstream, list(script or []), always, retry_after
        self.batches: list[int] = []
        self.hold = threading.Event()
        self.hold.set()
        front = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                front.batches.append(len(json.loads(body)["events"]))
                front.hold.wait(30)
                status = front.script.pop(0) if front.script else front.always
                if status is not None:
                    answer = json.dumps({"message": "busy", "code": "unavailable", "extra": {}}).encode()
                    self.send_response(status)
                    if front.retry_after is not None:
                        self.send_header("Retry-After", front.retry_after)
                else:
                    headers = {k: self.headers[k] for k in ("Authorization", "Content-Type")}
                    upstream = requests.post(front.upstream + self.path, data=body, headers=headers, timeout=30)
                    status, answer = upstream.status_code, upstream.content
                    self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fraud():
    """fraud v1 in production; alice (editor) and bob (approver) as users."""
    alice, bob = make_user("alice", "editor"), make_user("bob", "approver")
    promote(register("fraud", alice), "production", alice, bob)
    return alice, bob


@pytest.fixture
def front(live_server):
    made = []

    def make(**kwargs) -> Front:
        made.append(Front(live_server.url, **kwargs))
        return made[-1]

    yield make
    for f in made:
        f.close()


# --- the methods --------------------------------------------------------------------------------------


def test_client_registers_promotes_approves_and_rolls_back(live_server, tmp_path):
    editor = Client(url=live_server.url, token=token_for("alice", "editor"), timeout=10)
    approver = Client(url=live_server.url, token=token_for("bob", "approver"), timeout=10)
    artifact = tmp_path / "model.pkl"
    artifact.write_bytes(b"weights" * 1000)

    first = editor.register("fraud", params={"lr": 0.01}, metrics={"auc": 0.91}, artifact=artifact, code_commit="abc123")
    asked = editor.promote("fraud", "latest", to="production", reason="better auc")
    approved = approver.approve(asked["id"], comment="ok")
    second = editor.register("fraud", metrics={"auc": 0.93}, artifact_uri="s3://bucket/v2.pkl")
    approver.approve(editor.promote("fraud", 2, to="production", reason="even better")["id"])
    rolled = approver.rollback("fraud", stage="production", reason="v2 misbehaves")

    assert (first["version"], first["artifact_sha256"], first["code_commit"]) == (1, hashlib.sha256(artifact.read_bytes()).hexdigest(), "abc123")
    assert (first["params"], first["metrics"]) == ({"lr": 0.01}, {"auc": 0.91})
    assert (asked["status"], approved["status"]) == ("pending", "approved")
    assert (second["version"], second["artifact_uri"]) == (2, "s3://bucket/v2.pkl")
    assert rolled["version"] == 1
    assert ModelVersion.objects.get(model__name="fraud", stage="production").version == 1


def test_client_evaluates_and_answers_the_gate_card(live_server, celery_eager, tmp_path):
    editor = Client(url=live_server.url, token=token_for("alice", "editor"), timeout=30)
    approver = Client(url=live_server.url, token=token_for("bob", "approver"), timeout=10)
    editor.register("fraud")
    approver.api.put("models/fraud/gate-policy", BIAS_POLICY)

    biased = editor.evaluate("fraud", 1, predictions_csv(tmp_path / "b.csv", biased=True), group_column="gender", wait=True, interval=0.1)
    failing = editor.gate(1, model="fraud", interval=0.1)
    fair = editor.evaluate("fraud", "latest", predictions_csv(tmp_path / "f.csv", biased=False), group_column="gender", wait=True)
    passing = editor.gate("latest", model="fraud", interval=0.1)

    assert (biased["status"], fair["status"]) == ("done", "done")
    assert fair["metrics"]["accuracy"] > 0.9 and biased["metrics"]["demographic_parity_difference"] > 0.1
    assert failing["passed"] is False
    assert [c["status"] for c in failing["checks"]] == ["passed", "failed"]
    assert passing["passed"] is True


def test_client_gate_waits_for_an_evaluation_still_pending(live_server, tmp_path):
    editor = Client(url=live_server.url, token=token_for("alice", "editor"), timeout=30)
    editor.register("fraud")
    Client(url=live_server.url, token=token_for("bob", "approver")).api.put("models/fraud/gate-policy", BIAS_POLICY)
    pending = editor.evaluate("fraud", 1, predictions_csv(tmp_path / "f.csv", biased=False), group_column="gender")

    def worker():  # a Celery worker picking the evaluation up a little later (no worker runs in these tests)
        time.sleep(0.5)
        evaluations.evaluation_run(evaluation_id=pending["id"])
        connection.close()

    later = threading.Thread(target=worker)
    later.start()
    card = editor.gate(1, model="fraud", interval=0.05, max_wait=30)
    later.join()

    assert pending["status"] == "pending"
    assert card["passed"] is True and [c["status"] for c in card["checks"]] == ["passed", "passed"]


def test_client_evaluate_with_wait_answers_the_evaluation_once_a_worker_finished_it(live_server, tmp_path):
    editor = Client(url=live_server.url, token=token_for("alice", "editor"), timeout=30)
    editor.register("fraud")

    def worker():  # picks up the evaluation once its request committed (no Celery worker runs in these tests)
        wait_until(lambda: Evaluation.objects.filter(status="pending").exists())
        evaluations.evaluation_run(evaluation_id=Evaluation.objects.get(status="pending").pk)
        connection.close()

    later = threading.Thread(target=worker)
    later.start()
    done = editor.evaluate("fraud", 1, predictions_csv(tmp_path / "f.csv", biased=False), wait=True, interval=0.05, max_wait=30)
    later.join()

    assert done["status"] == "done" and done["metrics"]["accuracy"] > 0.9


def test_log_outcomes_sends_more_than_10000_in_two_requests_and_sums_the_answers(live_server):
    client = Client(url=live_server.url, token=token_for("eddie", "editor"), timeout=60)
    outcomes = [{"outcome_id": f"o-{n}", "unit_id": f"u-{n}", "metric": "conversion", "value": 1, "timestamp": "2026-01-01T00:00:00Z"}
                for n in range(10_001)]

    answer = client.log_outcomes(outcomes)

    assert answer == {"accepted": 10_001, "duplicates": 0, "unexposed": 10_001}
    assert Outcome.objects.count() == 10_001


def test_client_routes_assigns_and_logs_outcomes(live_server, fraud):
    alice, _ = fraud
    register("fraud", alice)
    experiment = experiment_services.experiment_create(key="fraud-ab", actor=alice, model="fraud", **CHECKOUT)
    experiment_services.experiment_start(experiment=experiment, reason="go", actor=alice)
    client = Client(url=live_server.url, token=token_for("eddie", "editor"), timeout=10)
    bucket = int.from_bytes(hashlib.sha256(b"fraud-ab:user-7").digest()[:8], "big") % 10000

    routed = client.route("user-7", model="fraud")
    one = client.assign("fraud-ab", "user-7")
    many = client.assign("fraud-ab", unit_ids=["user-8", "user-9"])
    logged = client.log_outcomes([
        {"outcome_id": "o-1", "unit_id": "user-7", "metric": "conversion", "value": 1, "timestamp": "2026-01-01T00:00:00Z"},
        {"outcome_id": "o-2", "unit_id": "ghost", "metric": "conversion", "value": 1, "timestamp": "2026-01-01T00:00:00Z"},
    ])

    assert (routed["version"], routed["stage"]) == (1, "production")
    assert (one["unit_id"], one["bucket"], one["variant"], one["version"]) == ("user-7", bucket, "A" if bucket < 5000 else "B", 1 if bucket < 5000 else 2)
    assert [a["unit_id"] for a in many["assignments"]] == ["user-8", "user-9"]
    assert Exposure.objects.filter(experiment=experiment).count() == 3
    assert logged == {"accepted": 2, "duplicates": 0, "unexposed": 1}  # ghost: no experiment exposed it
    assert Outcome.objects.count() == 2


def test_client_raises_api_error_with_the_servers_status_code_and_extra(live_server, fraud):
    viewer = Client(url=live_server.url, token=token_for("vera", "viewer"), timeout=10)
    editor = Client(url=live_server.url, token=token_for("eddie", "editor"), timeout=10)
    wrong = Client(url=live_server.url, token="not-a-token", timeout=10)

    with pytest.raises(ApiError) as forbidden:
        viewer.register("fraud")
    with pytest.raises(ApiError) as bad:
        editor.promote("fraud", 1, to="moon", reason="r")
    with pytest.raises(ApiError) as unknown:
        editor.promote("nope", 1, to="staging", reason="r")
    with pytest.raises(ApiError) as unauthenticated:
        wrong.route("u", model="fraud")
    with pytest.raises(UsageError):
        Client(url="", token="t")

    assert (forbidden.value.status, bad.value.status, unknown.value.status, unauthenticated.value.status) == (403, 400, 404, 401)
    assert (unknown.value.code, unauthenticated.value.code) == ("not_found", "invalid_token")
    assert "to" in bad.value.extra["fields"] and "nope" in unknown.value.message
    assert PromotionRequest.objects.count() == 1  # the fixture's: nothing refused was stored


def test_client_reads_mlops_url_and_mlops_token_from_the_environment(live_server, fraud, monkeypatch):
    monkeypatch.setenv("MLOPS_URL", live_server.url + "/api/v1/")
    monkeypatch.setenv("MLOPS_TOKEN", token_for("vera", "viewer"))

    answer = Client().route("user-1", model="fraud")

    assert answer["version"] == 1


def test_importing_the_sdk_loads_only_requests_and_the_standard_library():
    code = "import sys, mlops_client; mlops_client.Client; print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'rest_framework', 'registry', 'mlops_site', 'numpy'}))"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- log_events -------------------------------------------------------------------------------------------


def test_log_events_sends_25_events_in_batches_of_10_and_stores_them_all(fraud, front):
    server = front()
    client = Client(url=server.url, token=token_for("eddie", "editor"), batch_size=10, flush_interval=60)

    queued = client.log_events(event(n) for n in range(25))
    flushed = client.flush(timeout=30)

    assert (queued, flushed) == (25, True)
    assert server.batches == [10, 10, 5]
    assert Event.objects.count() == 25
    assert client.events_stats() == {"queued": 0, "sent": 25, "duplicates": 0, "rejected": 0, "failed": 0, "dropped": 0, "last_error": None}
    client.close()


def test_log_events_from_many_threads_at_once_stores_every_event_once(fraud, front):
    server = front()
    client = Client(url=server.url, token=token_for("eddie", "editor"), batch_size=100, flush_interval=60)
    start = threading.Barrier(4)

    def serve(thread: int):
        start.wait()
        for n in range(250):
            client.log_events([event(thread * 1000 + n)])

    threads = [threading.Thread(target=serve, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flushed = client.flush(timeout=30)

    assert flushed is True
    assert Event.objects.count() == 1000 and sum(server.batches) == 1000
    assert client.events_stats()["sent"] == 1000
    client.close()


def test_log_events_sends_a_partial_batch_after_the_flush_interval(fraud, front):
    server = front()
    client = Client(url=server.url, token=token_for("eddie", "editor"), batch_size=100, flush_interval=0.2)

    client.log_events([event(1), event(2)])

    assert wait_until(lambda: Event.objects.count() == 2)
    assert server.batches == [2]
    client.close()


def test_log_events_adds_event_ids_and_timestamps_so_a_resent_batch_is_stored_once(fraud, front, live_server):
    server = front(script=[503])
    token = token_for("eddie", "editor")
    client = Client(url=server.url, token=token, batch_size=10)
    direct = Client(url=live_server.url, token=token, batch_size=10)
    bare = {"model": "fraud", "version": 1, "latency_ms": 3.0}

    client.log_events([bare, bare])
    client.flush(timeout=30)
    direct.log_events([event(1)])
    direct.log_events([event(1)])
    direct.flush(timeout=30)

    ids = list(Event.objects.exclude(event_id="e-1").values_list("event_id", flat=True))
    assert len(set(ids)) == 2 and server.batches == [2, 2]
    assert direct.events_stats()["duplicates"] == 1 and Event.objects.filter(event_id="e-1").count() == 1
    client.close()
    direct.close()


def test_log_events_retries_after_503s_and_delivers(fraud, front):
    server = front(script=[503, 503])
    client = Client(url=server.url, token=token_for("eddie", "editor"), batch_size=10)

    client.log_events(event(n) for n in range(5))
    flushed = client.flush(timeout=30)

    assert flushed is True
    assert server.batches == [5, 5, 5]
    assert Event.objects.count() == 5
    stats = client.events_stats()
    assert (stats["sent"], stats["failed"]) == (5, 0)
    client.close()


def test_log_events_gives_up_after_max_retries_and_counts_the_batch_failed(fraud, front):
    server = front(always=503)  # Retry-After: 0, honoured; the backoff's own 0.5 s, 1 s, ... 32 s would take 63.5 s
    client = Client(url=server.url, token=token_for("eddie", "editor"), batch_size=10, max_retries=7)

    client.log_events(event(n) for n in range(4))
    flushed = client.flush(timeout=30)

    stats = client.events_stats()
    assert flushed is True
    assert server.batches == [4] * 8
    assert (stats["sent"], stats["failed"]) == (0, 4)
    assert "503" in stats["last_error"] and "8 attempt(s)" in stats["last_error"]
    client.close()


def test_log_events_rejects_the_bad_events_of_a_400_and_sends_the_rest(fraud, front):
    server = front()
    client = Client(url=server.url, token=token_for("eddie", "editor"), batch_size=10)

    client.log_events([event(n, latency_ms=-1.0) if n in (3, 7) else event(n) for n in range(10)])
    client.flush(timeout=30)

    stats = client.events_stats()
    assert server.batches == [10, 8]
    assert sorted(Event.objects.values_list("event_id", flat=True)) == sorted(f"e-{n}" for n in range(10) if n not in (3, 7))
    assert (stats["sent"], stats["rejected"]) == (8, 2) and "400" in stats["last_error"]
    client.close()


def test_log_events_drops_the_oldest_when_the_queue_is_full_and_never_blocks(fraud, front):
    server = front()
    server.hold.clear()
    client = Client(url=server.url, token=token_for("eddie", "editor"), batch_size=2, max_queue=4, flush_interval=60)
    client.log_events([event(0), event(1)])
    assert wait_until(lambda: server.batches == [2])  # the thread is inside its first request, held

    client.log_events(event(n) for n in range(2, 8))
    dropped = client.events_stats()["dropped"]
    server.hold.set()
    flushed = client.flush(timeout=30)

    assert (dropped, flushed) == (2, True)
    assert sorted(Event.objects.values_list("event_id", flat=True)) == ["e-0", "e-1", "e-4", "e-5", "e-6", "e-7"]
    assert client.events_stats()["sent"] == 6
    client.close()


def test_closing_the_client_sends_what_is_queued_and_refuses_more(fraud, front):
    server = front()

    with Client(url=server.url, token=token_for("eddie", "editor"), batch_size=100, flush_interval=60) as client:
        client.log_events(event(n) for n in range(3))

    assert Event.objects.count() == 3
    with pytest.raises(UsageError):
        client.log_events([event(9)])


def test_close_returns_false_when_the_server_stays_away_and_the_thread_gives_up(fraud, front):
    server = front(always=503, retry_after=None)  # backoff 0.5 s, 1 s, 2 s, ...: 50 retries would take over 20 minutes
    client = Client(url=server.url, token=token_for("eddie", "editor"), batch_size=10, max_retries=50)

    client.log_events(event(n) for n in range(3))
    done = client.close(timeout=0.3)

    assert done is False
    assert wait_until(lambda: client.events_stats()["failed"] == 3)
    assert client.events_stats()["queued"] == 0 and Event.objects.count() == 0
    assert len(server.batches) <= 2  # the first attempt, at most one more once close() gave up: no 50 retries


def test_api_error_reads_retry_after_in_seconds_or_as_an_http_date(fraud, front):
    seconds, date = front(always=429, retry_after="7"), front(always=503, retry_after="Fri, 01 Jan 2100 00:00:00 GMT")
    token = token_for("eddie", "editor")

    with pytest.raises(ApiError) as first:
        Client(url=seconds.url, token=token).api.post("events", {"events": []})
    with pytest.raises(ApiError) as second:
        Client(url=date.url, token=token).api.post("events", {"events": []})

    assert (first.value.status, first.value.retry_after) == (429, 7.0)
    years = second.value.retry_after / (365.25 * 86400)
    assert second.value.status == 503 and 70 < years < 80
