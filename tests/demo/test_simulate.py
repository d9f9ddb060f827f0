"""`manage.py simulate_traffic` against a live server: events go through the real HTTP API, then the ORM shows what arrived."""

import http.server
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from demo import simulation, traffic
from demo.simulation import FRAUD, Draws, growth
from mlops_site.roles import user_role, user_token_refresh
from monitoring import columnar, selectors, services
from monitoring.models import DriftReport, Event, FeatureBatch, Reference
from tests.conftest import make_user
from tests.factories import register

ROOT = Path(__file__).resolve().parents[2]
RISKY_MERCHANTS = ("online_retail", "electronics", "gift_cards", "crypto")


def simulate(*args: str) -> str:
    out = io.StringIO()
    call_command("simulate_traffic", *args, stdout=out)
    return out.getvalue()


def stored_columns(version, prefix: str = "sim-") -> dict[str, np.ndarray]:
    """The feature columns the server stored for these events, in timestamp order (with __ts__)."""
    batch_ids = Event.objects.filter(model_version=version, event_id__startswith=prefix).values_list("batch_id", flat=True).distinct()
    parts: dict[str, list] = {}
    for batch in FeatureBatch.objects.filter(pk__in=list(batch_ids)).order_by("pk"):
        for name, values in columnar.decode(batch.data).items():
            parts.setdefault(name, []).append(values)
    columns = {name: np.concatenate(values) for name, values in parts.items()}
    order = np.argsort(columns[columnar.TS], kind="stable")
    return {name: values[order] for name, values in columns.items()}


def log_median_ratio(after: np.ndarray, before: np.ndarray) -> float:
    return float(np.log(np.median(after) / np.median(before)))


@pytest.fixture
def fraud(live_server):
    return register("fraud-detector", make_user("alice", "editor"))


def test_backfill_stores_events_with_a_drift_after_the_midpoint_and_sets_the_reference(live_server, fraud):
    before = datetime.now(UTC)

    out = simulate("--model", "fraud-detector", "--events", "1000", "--batch", "250", "--backfill-hours", "1", "--drift-at", "50%",
                   "--set-reference", "--seed", "7", "--url", live_server.url)

    after = datetime.now(UTC)
    events = Event.objects.filter(model_version=fraud)
    assert events.count() == 1000
    assert all(e.startswith("sim-7-") for e in events.values_list("event_id", flat=True))
    stamps = list(events.values_list("timestamp", flat=True))
    assert before - timedelta(hours=1, seconds=1) <= min(stamps) and max(stamps) <= after
    assert max(stamps) - min(stamps) > timedelta(minutes=55)  # spread over the hour, not bunched at the end
    assert 0 < events.filter(error=True).count() < 50  # about 1.2 % served errors
    # About 30 % of the successful ones get a label, 1 to 6 hours later: within the hour none has arrived.
    assert not events.exclude(label=None).exists()
    later = int(re.search(r"No label of this backfill has arrived yet; ([\d,]+) more would arrive after now", out)[1].replace(",", ""))
    assert 150 < later < 450
    bot = get_user_model().objects.get(username="traffic-bot")
    assert user_role(bot) == "editor"

    columns = stored_columns(fraud)
    early, late = slice(0, 500), slice(500, 1000)
    amount, age = columns["amount"], columns["account_age_days"]
    assert log_median_ratio(amount[late], amount[early]) > 0.4  # drifted: about +0.8
    assert abs(log_median_ratio(age[late], age[early])) < 0.2  # not drifted
    risky = np.isin(columns["merchant_category"], RISKY_MERCHANTS)
    assert risky[late].mean() - risky[early].mean() > 0.15  # drifted: 24 % -> 50 %
    us = columns["country"] == "US"
    assert abs(us[late].mean() - us[early].mean()) < 0.08  # not drifted
    prediction = columns[columnar.PREDICTION]
    assert np.nanmean(prediction[late]) > 1.5 * np.nanmean(prediction[early])

    reference = Reference.objects.get(model_version=fraud)
    assert (reference.rows, reference.source, reference.description) == (20_000, "upload", "simulate_traffic baseline")
    assert set(reference.columns) == {spec.name for spec in FRAUD.features} | {columnar.PREDICTION}
    reference_amount = selectors.reference_columns(reference)["amount"].sorted_values
    assert abs(log_median_ratio(amount[early], reference_amount)) < 0.15  # the reference is the pre-drift distribution

    assert "\r[" in out and "100% 1,000/1,000 events" in out
    assert "1,000 accepted, 0 duplicates" in out and "500 drifted" in out


def test_a_drift_at_an_iso_time_is_what_a_drift_report_finds(live_server, fraud):
    drift_at = datetime.now(UTC) - timedelta(minutes=30)

    simulate("--model", "fraud-detector", "--version", "1", "--events", "800", "--batch", "400", "--backfill-hours", "1",
             "--drift-at", drift_at.isoformat(), "--drift-features", "amount,merchant_category", "--set-reference", "--seed", "11",
             "--url", live_server.url)

    columns = stored_columns(fraud)
    drifted = columns[columnar.TS] >= drift_at.timestamp()
    assert 300 < drifted.sum() < 500
    assert log_median_ratio(columns["amount"][drifted], columns["amount"][~drifted]) > 0.4
    report = DriftReport.objects.create(model_version=fraud, window_start=drift_at, window_end=datetime.now(UTC) + timedelta(seconds=1))
    done = services.drift_report_run(report_id=report.pk)
    flagged = {r["column"] for r in done.results if r["drifted"]}
    assert done.status == "done" and done.rows == drifted.sum()
    assert {"amount", "merchant_category"} <= flagged
    assert not flagged & {"account_age_days", "country", "channel", "num_tx_24h"}


def test_same_seed_and_run_id_are_duplicates_and_a_new_run_sends_the_same_values_as_new_events(live_server, fraud):
    args = ("--model", "fraud-detector", "--events", "300", "--backfill-hours", "2", "--drift-at", "none", "--seed", "3", "--url", live_server.url)

    simulate(*args, "--run-id", "r1", "--batch", "100")
    again = simulate(*args, "--run-id", "r1", "--batch", "300")
    simulate(*args, "--run-id", "r2", "--batch", "300")

    assert "0 accepted, 300 duplicates" in again and "dup 300" in again
    assert Event.objects.filter(model_version=fraud).count() == 600
    first, second = stored_columns(fraud, "sim-3-r1-"), stored_columns(fraud, "sim-3-r2-")
    for name in ("amount", "merchant_category", columnar.PREDICTION):
        np.testing.assert_array_equal(first[name], second[name])


def test_real_time_sends_at_the_rate_with_the_current_time(live_server, fraud):
    start = datetime.now(UTC)

    out = simulate("--model", "fraud-detector", "--events", "120", "--rate", "80", "--batch", "500", "--drift-at", "none", "--seed", "1",
                   "--url", live_server.url)

    stamps = sorted(Event.objects.filter(model_version=fraud).values_list("timestamp", flat=True))
    assert len(stamps) == 120
    assert start <= stamps[0] and stamps[-1] <= datetime.now(UTC)
    assert timedelta(seconds=1.3) < stamps[-1] - stamps[0] < timedelta(seconds=1.6)  # 120 events at 80/s: a second and a half
    assert "real time at 80 events/s" in out and ", 2 requests." in out  # about one request a second: 80, then 40


def test_a_bad_token_exits_non_zero_with_the_servers_message(live_server, fraud):
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}

    result = subprocess.run(
        [sys.executable, "manage.py", "simulate_traffic", "--model", "fraud-detector", "--events", "10", "--backfill-hours", "1",
         "--token", "not-a-real-token", "--url", live_server.url],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )

    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.strip() == f"CommandError: The server at {live_server.url} refused with HTTP 401: Invalid token."
    assert "Traceback" not in result.stderr
    assert Event.objects.count() == 0


def test_a_viewer_token_is_refused_when_sending_with_the_servers_message(live_server, fraud):
    token = user_token_refresh(user=make_user("vera", "viewer"))

    with pytest.raises(CommandError, match=r"refused events 0 to 9 with HTTP 403: This change needs the editor role or above\. Nothing of this run was stored\."):
        simulate("--model", "fraud-detector", "--events", "10", "--backfill-hours", "1", "--token", token, "--url", live_server.url)

    assert Event.objects.count() == 0


def test_a_batch_the_server_refuses_stops_the_run_with_the_400_message(live_server, fraud, monkeypatch):
    monkeypatch.setitem(simulation.PROFILES, "fraud", replace(FRAUD, unit_prefix="x" * 300))

    with pytest.raises(CommandError, match=r"HTTP 400: Batch refused, nothing stored: events\[0\]\.unit_id: must be a string of at most 200"):
        simulate("--model", "fraud-detector", "--events", "20", "--backfill-hours", "1", "--url", live_server.url)

    assert Event.objects.count() == 0


def test_an_unreachable_server_is_a_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    with pytest.raises(CommandError, match=rf"Cannot reach the server at http://127.0.0.1:{port}: connection refused\. Start it with `make run`"):
        simulate("--model", "fraud-detector", "--events", "10", "--token", "t", "--url", f"http://127.0.0.1:{port}")


def test_options_are_checked_before_anything_is_sent():
    with pytest.raises(CommandError, match="no feature colour in the fraud profile; it has amount, merchant_category"):
        simulate("--model", "fraud-detector", "--drift-features", "amount,colour", "--token", "t")
    with pytest.raises(CommandError, match="--batch must be from 1 to 10000"):
        simulate("--model", "fraud-detector", "--batch", "20000", "--token", "t")
    with pytest.raises(CommandError, match="--drift-at: 'soon' is not an ISO 8601"):
        simulate("--model", "fraud-detector", "--drift-at", "soon", "--token", "t")


def test_a_batch_is_sent_again_after_a_5xx_and_then_counts_once():
    answers = [503, 202]
    seen = []

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["events"][0]["event_id"])
            status = answers.pop(0)
            body = json.dumps({"accepted": 1, "duplicates": 0} if status == 202 else {"message": "busy", "code": "unavailable"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        api = traffic.Api(f"http://127.0.0.1:{server.server_port}", "t", sleep=lambda seconds: None)
        answer = api.post_events([{"event_id": "sim-1-r-0"}])
    finally:
        server.shutdown()
        server.server_close()

    assert answer == {"accepted": 1, "duplicates": 0}
    assert (seen, api.retries) == (["sim-1-r-0", "sim-1-r-0"], 1)  # the same event id: the server drops it if the first try was stored


def test_latency_growth_is_linear_in_time_from_1_at_the_start_to_x_at_the_end():
    ts = np.array([100.0, 150.0, 200.0, 250.0, 300.0])

    assert growth(ts, 100, 300, 3.0).tolist() == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert growth(np.array([0.0, 400.0]), 100, 300, 3.0).tolist() == [1.0, 3.0]  # held outside the run
    assert growth(ts, 100, 300, 3.0, initial=3.0).tolist() == [3.0] * 5  # a live stream that carries on at x3
    assert growth(ts, 100, 300, 1.0).tolist() == [1.0] * 5


def test_latency_growth_scales_the_successful_requests_and_none_leaves_the_events_as_they_were():
    d = Draws(FRAUD, 3, stream=0).rows(0, 5_000)
    plain = simulation.simulate(FRAUD, d, np.zeros(5_000, bool), 0.0, set())
    factor = growth(np.arange(5_000.0), 0, 4_999, 3.0)

    same = simulation.simulate(FRAUD, d, np.zeros(5_000, bool), 0.0, set(), latency_factor=growth(np.arange(5_000.0), 0, 4_999, 1.0))
    slower = simulation.simulate(FRAUD, d, np.zeros(5_000, bool), 0.0, set(), latency_factor=factor)

    np.testing.assert_array_equal(same["latency_ms"], plain["latency_ms"])
    ok = ~plain["error"]
    np.testing.assert_allclose(slower["latency_ms"][ok], plain["latency_ms"][ok] * factor[ok], atol=0.21)  # both rounded to 0.1 ms
    np.testing.assert_array_equal(slower["latency_ms"][~ok], plain["latency_ms"][~ok])  # timeouts and fast failures keep theirs
    np.testing.assert_array_equal(slower["prediction"], plain["prediction"])


def test_a_run_with_latency_growth_sends_the_same_events_slower_and_x_times_slower_at_the_end(live_server, fraud):
    args = ("--model", "fraud-detector", "--events", "400", "--backfill-hours", "1", "--drift-at", "none", "--seed", "9", "--url", live_server.url)

    simulate(*args, "--run-id", "plain")
    out = simulate(*args, "--run-id", "slow", "--latency-growth", "3")

    def latencies(run_id):
        found = Event.objects.filter(event_id__startswith=f"sim-9-{run_id}-", error=False).values_list("event_id", "latency_ms")
        return {event_id.rsplit("-", 1)[1]: latency for event_id, latency in found}

    plain, slow = latencies("plain"), latencies("slow")
    assert plain.keys() == slow.keys() and len(plain) > 380
    order = sorted(plain, key=int)
    ratio = np.array([slow[i] / plain[i] for i in order])
    assert ratio[0] == pytest.approx(1.0, abs=0.02) and ratio[-1] == pytest.approx(3.0, abs=0.02)
    assert np.all(np.diff(ratio) > -0.02)  # climbing all along
    assert "Latency x1 at the start of the run, x3 at its end" in out
