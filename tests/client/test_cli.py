"""The CI client run as a real subprocess against a live server: what a pipeline sees (stdout, stderr, exit code)."""

import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlops_site.roles import user_token_refresh
from registry.models import ModelVersion, RegisteredModel
from tests.conftest import make_user
from tests.factories import promote, register

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, url: str, token: str = "", env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_") and k != "GITHUB_SHA"}
    clean.update({"MLOPS_URL": url, "MLOPS_TOKEN": token, **(env or {})})
    return subprocess.run([sys.executable, "-m", "mlops_client", *args], env=clean, capture_output=True, text=True, cwd=ROOT, timeout=60)


def token_for(username: str, role: str) -> str:
    return user_token_refresh(user=make_user(username, role))


def assert_fails(result: subprocess.CompletedProcess, exit_code: int, *fragments: str) -> None:
    assert result.returncode == exit_code, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_client_imports_nothing_from_django_or_the_project():
    code = "import sys, mlops_client.cli; print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'rest_framework', 'registry', 'mlops_site'}))"

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_register_uploads_artifact_with_params_and_metrics(live_server, tmp_path):
    as_alice = {"url": live_server.url, "token": token_for("alice", "editor")}
    (tmp_path / "params.json").write_text('{"lr": 0.01, "layers": [64, 32]}')
    (tmp_path / "metrics.json").write_text('{"auc": 0.91, "f1": 0.8}')
    artifact = tmp_path / "model.pkl"
    artifact.write_bytes(os.urandom(200_000) + b'\r\n--"boundary-like"--\r\n')
    files = ["--params", str(tmp_path / "params.json"), "--metrics", str(tmp_path / "metrics.json"), "--artifact", str(artifact)]

    result = cli(
        "register", "--model", "fraud-detector", *files, "--tags", '{"team": "risk"}', "--json", **as_alice, env={"GITHUB_SHA": "0123abcd"}
    )

    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["version"] == 1 and body["stage"] == "candidate"
    assert body["artifact_sha256"] == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert body["artifact_size"] == artifact.stat().st_size
    assert body["params"] == {"lr": 0.01, "layers": [64, 32]}
    assert body["metrics"] == {"auc": 0.91, "f1": 0.8}
    assert body["tags"] == {"team": "risk"}
    assert body["code_commit"] == "0123abcd"


def test_register_twice_prints_versions_one_and_two(live_server):
    as_alice = {"url": live_server.url, "token": token_for("alice", "editor")}

    first = cli("register", "--model", "churn", "--metrics", '{"auc": 0.8}', "--artifact-uri", "s3://b/1.pkl", **as_alice)
    second = cli("register", "--model", "churn", "--metrics", '{"auc": 0.9}', "--code-commit", "abc", **as_alice)

    assert (first.returncode, first.stdout) == (0, "1\n"), first.stderr
    assert (second.returncode, second.stdout) == (0, "2\n"), second.stderr
    assert ModelVersion.objects.get(model__name="churn", version=2).code_commit == "abc"


def test_promote_and_approve_by_second_user_puts_version_in_production(live_server):
    editor = make_user("alice", "editor")
    as_alice = {"url": live_server.url, "token": user_token_refresh(user=editor)}
    as_bob = {"url": live_server.url, "token": token_for("bob", "approver")}
    register("churn", editor)
    register("churn", editor)

    empty = cli("stage", "--model", "churn", "--stage", "production", **as_alice)
    requested = cli("promote", "--model", "churn", "--version", "latest", "--to", "production", "--reason", "better auc", **as_alice)
    promotion_id, status = requested.stdout.split()
    approved = cli("approve", promotion_id, "--comment", "ok", **as_bob)
    now = cli("stage", "--model", "churn", "--stage", "production", **as_alice)

    assert_fails(empty, 1, "no version of churn is in production")
    assert (requested.returncode, status) == (0, "pending"), requested.stderr
    assert (approved.returncode, approved.stdout) == (0, f"{promotion_id} approved\n"), approved.stderr
    assert (now.returncode, now.stdout) == (0, "2\n"), now.stderr


def test_approve_own_request_is_refused_by_four_eyes(live_server):
    approver = make_user("bob", "approver")
    as_bob = {"url": live_server.url, "token": user_token_refresh(user=approver)}
    register("churn", approver)
    requested = cli("promote", "--model", "churn", "--version", "1", "--to", "staging", "--reason", "try", **as_bob)

    result = cli("approve", requested.stdout.split()[0], **as_bob)

    assert_fails(result, 4, "403 forbidden (four_eyes)", "someone else must approve it")
    assert ModelVersion.objects.get(model__name="churn", version=1).stage == "candidate"


def test_promote_twice_is_a_conflict(live_server):
    editor = make_user("alice", "editor")
    as_alice = {"url": live_server.url, "token": user_token_refresh(user=editor)}
    register("fraud-detector", editor)
    args = ("promote", "--model", "fraud-detector", "--version", "1", "--to", "production", "--reason", "better")
    assert cli(*args, **as_alice).returncode == 0

    result = cli(*args, **as_alice)

    assert_fails(result, 4, "error: 409 conflict (already_pending): fraud-detector v1 already has a pending request for production.")


def test_rollback_restores_previous_production_version(live_server):
    editor, approver = make_user("alice", "editor"), make_user("bob", "approver")
    v1, v2 = register("churn", editor), register("churn", editor)
    promote(v1, "production", editor, approver)
    promote(v2, "production", editor, approver)
    as_bob = {"url": live_server.url, "token": user_token_refresh(user=approver)}

    result = cli("rollback", "--model", "churn", "--stage", "production", "--reason", "v2 drifts", **as_bob)

    assert (result.returncode, result.stdout) == (0, "1\n"), result.stderr
    assert dict(ModelVersion.objects.filter(model__name="churn").values_list("version", "stage")) == {1: "production", 2: "archived"}


def test_audit_lists_the_events_of_one_model_newest_first(live_server):
    editor = make_user("alice", "editor")
    as_alice = {"url": live_server.url, "token": user_token_refresh(user=editor)}
    register("other", editor)
    cli("register", "--model", "churn", **as_alice)
    cli("promote", "--model", "churn", "--version", "1", "--to", "staging", "--reason", "looks good", **as_alice)

    as_json = cli("audit", "--subject", "model:churn", "--json", **as_alice)
    as_table = cli("audit", "--subject", "model:churn", **as_alice)

    assert as_json.returncode == 0, as_json.stderr
    events = json.loads(as_json.stdout)["results"]
    assert [(e["action"], e["subject"], e["version"], e["actor"]) for e in events] == [
        ("promotion_requested", "model:churn", 1, "alice"),
        ("registered", "model:churn", 1, "alice"),
    ]
    assert as_table.stdout.splitlines()[1].split()[3:5] == ["promotion_requested", "model:churn"]


def test_bad_token_exits_four_with_the_401_message(live_server):
    token_for("alice", "editor")

    result = cli("whoami", url=live_server.url, token="not-a-real-token")

    assert_fails(result, 4, "401 unauthorized", "Invalid token.")


def test_connection_failures_exit_three():
    refused = cli("whoami", url=f"http://127.0.0.1:{free_port()}", token="t")
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        timed_out = cli("--timeout", "0.5", "whoami", url=f"http://127.0.0.1:{silent.getsockname()[1]}", token="t")

    assert_fails(refused, 3, "cannot connect to http://127.0.0.1:")
    assert_fails(timed_out, 3, "no answer from", "within 0.5 s")


def test_server_error_exits_five():
    class Broken(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(502)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body><h1>502 Bad Gateway</h1></body></html>")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Broken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = cli("models", url=f"http://127.0.0.1:{server.server_port}", token="t")
    finally:
        server.shutdown()
        server.server_close()

    assert_fails(result, 5, "502 bad gateway", "502 Bad Gateway")


def test_register_with_missing_metrics_file_exits_two_before_any_request(live_server, tmp_path):
    token = token_for("alice", "editor")

    missing = cli("register", "--model", "churn", "--metrics", str(tmp_path / "metrics.json"), url=live_server.url, token=token)
    no_url = cli("register", "--model", "churn", url="", token=token)

    assert_fails(missing, 2, "--metrics: no such file:", "metrics.json")
    assert_fails(no_url, 2, "MLOPS_URL is not set")
    assert not RegisteredModel.objects.exists()


@pytest.mark.parametrize("text", ['{"auc": NaN}', '{"auc": 0.9, "loss": -Infinity}', '{"auc": 1e999}'])
def test_register_with_non_finite_metrics_exits_two(live_server, tmp_path, text):
    token = token_for("alice", "editor")
    (tmp_path / "metrics.json").write_text(text)

    result = cli("register", "--model", "churn", "--metrics", str(tmp_path / "metrics.json"), url=live_server.url, token=token)

    assert_fails(result, 2, "metrics.json", "NaN and Infinity are not allowed")
    assert not RegisteredModel.objects.exists()
