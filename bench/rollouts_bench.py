"""Benchmark of canary rollouts, driven by the rollouts step of bench/run.sh (`BENCH_ONLY=rollouts make bench`).

The issue's figures, in one run:
- the route endpoint: requests per second and p50 / p99 under 50 concurrent clients against gunicorn with the routing
  plan cached in Redis, beside a plain `GET /healthz` (the floor: what any request costs) and `GET /api/v1/me` (what
  any token-authenticated API request costs: the part of the route's time that is not routing), in alternating rounds;
- one controller tick with 100 active rollouts (`rollouts_tick`: roll-ups caught up, then each rollout read, checked
  and decided in its own transaction): seconds and SQL queries;
- the time from an error spike in the events to the rollback, with a real Celery worker and beat (its tick every
  60 s): goal within one tick.

Subcommands (each one step of run.sh; the database is the one SQLITE_PATH names):

  data    on a fresh, migrated database: editor, approver and viewer (the viewer's API token for the route), model
          `route-model` v1 in production and v2 rolling out at 25 %, and `bench-000` .. `bench-099`, each v1 in
          production and v2 rolling out at 5 % (a policy whose first stage is 5 %), with 10 minutes of served events
          (200 of v1, 20 of v2 per model), rolled up. Setup, not a figure.
  tick    rollouts_tick R times in this process (each after the rollouts' last tick is cleared, so every one acts):
          wall time and the number of SQL statements.
  http    the route endpoint, /api/v1/me and /healthz against gunicorn, 50 clients (experiments_http-style threads, keep-alive
          sessions), alternating rounds of N requests per target; requests per second and latency percentiles.
  spike   model `spike-model` v2 rolling out at 25 %, 100 healthy events each side; then 40 failed events of v2 are posted
          (POST /api/v1/events to gunicorn) and the clock runs until the rollout is rolled back by the worker's beat:
          seconds from the spike to the rollback, and the beat interval.
  report  merge the JSON files, print the table, write bench/results/rollouts.json
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from datetime import timedelta
from pathlib import Path

from common import django_setup, load_json, loadavg, percentile, print_environment, print_table, write_json, write_results

EDITOR, APPROVER, VIEWER = "bench-editor", "bench-approver", "bench-viewer"
ROLLOUTS = 100
SERVED = (200, 20)  # events per model over the 10 minutes: v1 (production), v2 (the candidate at 5 %)
POLICY = {
    "stages": [{"traffic_percent": 5, "min_minutes": 60, "gate": {"name": "error_rate"}},
               {"traffic_percent": 25, "min_minutes": 60, "gate": {"name": "latency_p95"}},
               {"traffic_percent": 100, "min_minutes": 5}],
    "triggers": [{"metric": "error_rate", "threshold": 0.05, "action": "rollback"},
                 {"metric": "latency_p95", "threshold": 2, "relative": True, "action": "rollback"},
                 {"metric": "cost_per_request", "threshold": 2, "relative": True, "action": "pause"}],
    "gate_min_requests": 20, "trigger_min_requests": 20,
}


def _canary(name: str, editor, approver, *, percent_index: int = 0):
    """`name` v1 in production, v2 rolling out under the bench policy (moved to the stage `percent_index`)."""
    from experiments import services
    from registry.services import model_version_register, promotion_approve, promotion_request_create

    v1 = model_version_register(model_name=name, actor=editor, description="rollouts bench")
    request = promotion_request_create(version=v1, to_stage="production", reason="bench", actor=editor)
    promotion_approve(promotion_id=request.pk, actor=approver)
    v2 = model_version_register(model_name=name, actor=editor, description="rollouts bench")
    request = promotion_request_create(version=v2, to_stage="production", reason="bench", actor=editor, strategy="canary", policy="bench")
    promotion_approve(promotion_id=request.pk, actor=approver)
    rollout = services.rollout_start(promotion_id=request.pk)
    for _ in range(percent_index):
        rollout = services.rollout_advance(rollout_id=rollout.pk, reason="bench", actor=approver)
    return rollout


def _events(name: str, version: int, n: int, *, start, errors: int = 0, prefix: str = "ev") -> list[dict]:
    return [{"event_id": f"{prefix}-{name}-{version}-{i}", "model": name, "version": version,
             "timestamp": (start + timedelta(seconds=600 * i / n)).isoformat(), "latency_ms": 40.0 + (i % 17), "error": i < errors,
             "unit_id": f"u{i}"} for i in range(n)]


def cmd_data(args) -> None:
    django_setup()
    from django.utils import timezone

    from experiments import services
    from experiments.models import Rollout
    from mlops_site.roles import user_set_role, user_token_refresh
    from monitoring.services import events_ingest, rollups_catch_up

    editor = user_set_role(username=EDITOR, role="editor")
    approver = user_set_role(username=APPROVER, role="approver")
    viewer = user_set_role(username=VIEWER, role="viewer")
    services.rollout_policy_create(name="bench", actor=approver, **POLICY)
    t = time.perf_counter()
    _canary("route-model", editor, approver, percent_index=1)
    start = timezone.now() - timedelta(minutes=10)
    for i in range(ROLLOUTS):
        name = f"bench-{i:03d}"
        rollout = _canary(name, editor, approver)
        Rollout.objects.filter(pk=rollout.pk).update(stage_started_at=start, started_at=start)
        events_ingest(payload={"events": _events(name, 1, SERVED[0], start=start) + _events(name, 2, SERVED[1], start=start)}, actor=editor)
    folded = rollups_catch_up()
    print(f"  {ROLLOUTS + 1} rollouts, {folded:,} events rolled up in {time.perf_counter() - t:.1f} s")
    write_json(args.out, {"rollouts": ROLLOUTS, "events_per_model": SERVED, "viewer_token": user_token_refresh(user=viewer),
                          "editor_token": user_token_refresh(user=editor)})


def cmd_tick(args) -> None:
    django_setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from experiments import services
    from experiments.models import Rollout

    runs = []
    for _ in range(args.runs):
        Rollout.objects.update(last_tick_at=None)  # each run acts on every rollout, as a beat a minute later would
        with CaptureQueriesContext(connection) as queries:
            t = time.perf_counter()
            report = services.rollouts_tick()
            seconds = time.perf_counter() - t
        acted = sum(n for action, n in report.actions.items() if action not in ("skipped", "failed"))
        runs.append({"seconds": seconds, "queries": len(queries), "acted": acted, "actions": report.actions})
        print(f"  tick: {seconds:.2f} s, {len(queries)} queries, {report.text()}")
    write_json(args.out, {"rollouts": Rollout.objects.filter(status__in=("running", "paused")).count(), "runs": runs})


def _phase(url: str, headers: dict, clients: int, per_client: int, params) -> tuple[list[float], float]:
    import requests

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(clients)

    def client(c: int) -> None:
        mine = []
        s = requests.Session()
        s.get(url, params=params(c, -1), headers=headers, timeout=60)
        gate.wait()
        for k in range(per_client):
            t = time.perf_counter()
            response = s.get(url, params=params(c, k), headers=headers, timeout=60)
            mine.append(time.perf_counter() - t)
            if response.status_code != 200:
                failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                return
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} failed requests to {url}, first: {failures[0]}")
    return latencies, wall


def cmd_http(args) -> None:
    data = json.loads(Path(args.data).read_text())
    base = args.base_url.rstrip("/")
    headers = {"Authorization": f"Token {data['viewer_token']}", "Accept": "application/json"}
    targets = {
        "GET /api/v1/route (cache on)": (f"{base}/api/v1/route", lambda c, k: {"model": "route-model", "unit_id": f"unit-{c:02d}-{k:06d}"}),
        "GET /api/v1/me (token auth, no routing)": (f"{base}/api/v1/me", lambda c, k: None),
        "GET /healthz (the floor)": (f"{base}/healthz", lambda c, k: None),
    }
    per_client = args.requests // args.clients
    found = {label: {"latencies": [], "wall": 0.0} for label in targets}
    for round_ in range(args.rounds):
        order = list(targets) if round_ % 2 == 0 else list(reversed(targets))  # alternate: outside load hits them alike
        for label in order:
            url, params = targets[label]
            latencies, wall = _phase(url, headers, args.clients, per_client, params)
            found[label]["latencies"] += latencies
            found[label]["wall"] += wall
            print(f"  round {round_ + 1}, {label}: {len(latencies) / wall:,.0f} requests/s, p99 {percentile(latencies, 99) * 1000:.1f} ms")
    rows = [{"label": label, "requests": len(f["latencies"]), "per_s": len(f["latencies"]) / f["wall"],
             "p50_ms": percentile(f["latencies"], 50) * 1000, "p99_ms": percentile(f["latencies"], 99) * 1000} for label, f in found.items()]
    write_json(args.out, {"clients": args.clients, "workers": args.workers, "rounds": args.rounds, "rows": rows})


def cmd_spike_setup(args) -> None:
    django_setup()
    from django.utils import timezone

    from experiments.models import Rollout
    from mlops_site.roles import user_set_role
    from monitoring.services import events_ingest

    editor, approver = user_set_role(username=EDITOR, role="editor"), user_set_role(username=APPROVER, role="approver")
    rollout = _canary("spike-model", editor, approver, percent_index=1)
    start = timezone.now() - timedelta(minutes=5)
    Rollout.objects.filter(pk=rollout.pk).update(stage_started_at=start)
    events_ingest(payload={"events": _events("spike-model", 1, 100, start=start, prefix="ok") + _events("spike-model", 2, 100, start=start, prefix="ok")},
                  actor=editor)
    write_json(args.out, {"rollout_id": rollout.pk})


def cmd_spike(args) -> None:
    """Post the spike to gunicorn, then poll the database (read-only) until the worker's beat rolled the rollout back."""
    import requests

    django_setup()
    from django.utils import timezone

    from experiments.models import Rollout
    from mlops_site.settings import CELERY_BEAT_SCHEDULE

    data, setup = json.loads(Path(args.data).read_text()), json.loads(Path(args.setup).read_text())
    rollout_id = setup["rollout_id"]
    beat_s = float(CELERY_BEAT_SCHEDULE["experiments-rollouts-tick"]["schedule"])
    start = timezone.now() - timedelta(seconds=30)
    spike = _events("spike-model", 2, 40, start=start, errors=40, prefix="spike")
    for e in spike:  # 40 failures within the last 30 s
        e["timestamp"] = (start + timedelta(seconds=0.5 * int(e["event_id"].rsplit("-", 1)[1]))).isoformat()
    t0, posted_at = time.perf_counter(), timezone.now()
    response = requests.post(f"{args.base_url.rstrip('/')}/api/v1/events", json={"events": spike},
                             headers={"Authorization": f"Token {data['editor_token']}"}, timeout=60)
    response.raise_for_status()
    # Every tick of this rollout stamps last_tick_at (a hold too): polled 5 times a second, each tick after the spike
    # is seen (beat ticks a minute apart), so "within one tick" means the first tick after the spike rolled it back.
    ticks: set = set()
    deadline = t0 + args.timeout
    while time.perf_counter() < deadline:
        rollout = Rollout.objects.get(pk=rollout_id)
        if rollout.last_tick_at is not None and rollout.last_tick_at >= posted_at:
            ticks.add(rollout.last_tick_at)
        if rollout.status == "rolled_back":
            seconds = time.perf_counter() - t0
            decision = rollout.decisions.get(action="rollback")
            print(f"  rolled back {seconds:.1f} s after the spike by tick {len(ticks)} after it (beat every {beat_s:g} s): {decision.reason}")
            write_json(args.out, {"seconds": seconds, "beat_s": beat_s, "ticks_after_spike": len(ticks), "within_one_tick": len(ticks) == 1,
                                  "reason": decision.reason})
            return
        time.sleep(0.2)
    raise SystemExit(f"no rollback within {args.timeout} s of the spike")


def cmd_report(args) -> None:
    work = Path(args.work)
    env, tick, http, spike = (load_json(work / f) for f in ("env.json", "tick.json", "http.json", "spike.json"))
    if env:
        print_environment({**env, "load": loadavg()})
    rows = []
    for row in (http or {}).get("rows", []):
        rows.append([f"{row['label']}, {http['clients']} clients, gunicorn -w {http['workers']}", f"{row['per_s']:,.0f}/s",
                     f"{row['p50_ms']:.1f} ms", f"{row['p99_ms']:.1f} ms"])
    if tick:
        runs = tick["runs"]
        seconds = sorted(r["seconds"] for r in runs)
        rows.append([f"rollouts_tick, {tick['rollouts']} active rollouts (median of {len(runs)})", f"{seconds[len(seconds) // 2]:.2f} s",
                     f"{runs[0]['queries']} queries", f"{runs[0]['acted']} acted"])
    if spike:
        rows.append(["error spike in the events -> rollback (worker + beat)", f"{spike['seconds']:.1f} s",
                     f"beat every {spike['beat_s']:g} s", f"tick {spike['ticks_after_spike']} after the spike"
                     + (": within one tick" if spike["within_one_tick"] else ": LATER than one tick")])
    print_table(["rollouts", "rate or time", "p50 or count", "p99 or verdict"], rows)
    write_results(args.results, {"env": env, "tick": tick, "http": http, "spike": spike})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("data")
    p.add_argument("--out", required=True)
    p = sub.add_parser("tick")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", required=True)
    p = sub.add_parser("http")
    p.add_argument("--base-url", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", required=True)
    p = sub.add_parser("spike-setup")
    p.add_argument("--out", required=True)
    p = sub.add_parser("spike")
    p.add_argument("--base-url", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--setup", required=True)
    p.add_argument("--timeout", type=float, default=180)
    p.add_argument("--out", required=True)
    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--results", required=True)
    args = parser.parse_args()
    {"data": cmd_data, "tick": cmd_tick, "http": cmd_http, "spike-setup": cmd_spike_setup, "spike": cmd_spike, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    main()
