"""Event ingestion over HTTP, for the monitoring bench: `ingest-setup` and `ingest-http` of monitoring_bench.py."""

from __future__ import annotations

import json
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from common import django_setup, loadavg, mib, percentile, write_json
from monitoring_drift import EDITOR, SEED

INGEST_MODEL = "bench-ingest-model"


def cmd_ingest_setup(args) -> None:
    django_setup()
    from mlops_site.roles import user_set_role, user_token_refresh
    from registry.services import model_version_register

    editor = user_set_role(username=EDITOR, role="editor")
    version = model_version_register(model_name=INGEST_MODEL, actor=editor, description="monitoring bench")
    write_json(args.out, {"user": EDITOR, "token": user_token_refresh(user=editor), "model": INGEST_MODEL, "version": version.version})


def make_events(prefix: str, start: int, count: int, model: str, version: int, features: int, rng: np.random.Generator) -> list[dict]:
    """`count` events with `features` numeric features each (full float64 precision), timestamps in the last day."""
    names = [f"f{j:02d}" for j in range(features)]
    values = rng.normal(0, 1, (count, features)).tolist()
    latency = np.round(rng.gamma(2, 20, count), 3).tolist()
    prediction = np.round(rng.uniform(0, 1, count), 6).tolist()
    base = datetime.now(UTC) - timedelta(days=1)
    return [
        {
            "event_id": f"{prefix}-{start + i:08d}", "model": model, "version": version,
            "timestamp": (base + timedelta(milliseconds=start + i)).isoformat(), "latency_ms": latency[i], "error": False,
            "unit_id": f"user-{(start + i) % 5000}", "features": dict(zip(names, values[i], strict=True)), "prediction": prediction[i],
        }
        for i in range(count)
    ]


def cmd_ingest_http(args) -> None:
    """For each batch size: build and encode every body first (timed: the client's share), then POST them on N threads."""
    import requests

    setup = json.loads(Path(args.setup).read_text())
    url = args.base_url.rstrip("/") + "/api/v1/events"
    headers = {"Authorization": f"Token {setup['token']}", "Content-Type": "application/json", "Accept": "application/json"}
    rng = np.random.default_rng(SEED)

    def post_all(bodies: list[bytes], expected: list[int]) -> tuple[float, list[float]]:
        latencies: list[float] = [0.0] * len(bodies)
        next_index = iter(range(len(bodies)))
        lock = threading.Lock()
        failures: list[str] = []

        def worker() -> None:
            session = requests.Session()
            while not failures:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                t = time.perf_counter()
                response = session.post(url, data=bodies[i], headers=headers, timeout=600)
                latencies[i] = time.perf_counter() - t
                if response.status_code != 202 or response.json().get("accepted") != expected[i]:
                    failures.append(f"request {i}: HTTP {response.status_code} {response.text[:500]}")

        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        if failures:
            raise SystemExit(f"POST {url} failed: {failures[0]}")
        return wall, latencies

    # Warm-up: each worker loads the code and opens its database connection; not timed.
    warm = [json.dumps({"events": make_events("warmup", k * 100, 100, setup["model"], setup["version"], args.features, rng)}).encode()
            for k in range(2 * args.threads)]
    post_all(warm, [100] * len(warm))

    out: dict = {"url": url, "threads": args.threads, "features": args.features, "runs": {}, "loadavg_before": loadavg()}
    for size in args.batch_sizes:
        n_batches = max(1, args.events // size)
        started = time.perf_counter()
        payloads = [make_events(f"b{size}", k * size, size, setup["model"], setup["version"], args.features, rng) for k in range(n_batches)]
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        bodies = [json.dumps({"events": events}).encode() for events in payloads]
        encode_s = time.perf_counter() - started
        del payloads
        wall, latencies = post_all(bodies, [size] * n_batches)
        total = size * n_batches
        ms = [x * 1000 for x in latencies]
        run = {
            "batch_size": size, "requests": n_batches, "events": total, "wall_s": round(wall, 2), "events_per_s": round(total / wall),
            "request_ms_median": round(statistics.median(ms), 1), "request_ms_p95": round(percentile(ms, 95), 1),
            "request_ms_sum": round(sum(ms)), "server_events_per_s_per_request": round(total / (sum(latencies) / args.threads)),
            "body_mb_each": mib(len(bodies[0])), "body_mb_total": mib(sum(len(b) for b in bodies)),
            "client_build_s": round(build_s, 2), "client_json_dumps_s": round(encode_s, 2),
            "client_events_per_s": round(total / (build_s + encode_s)),
        }
        out["runs"][str(size)] = run
        print(f"  batches of {size:,}: {total:,} events in {n_batches} requests, {wall:.1f} s -> {run['events_per_s']:,} events/s "
              f"({args.threads} client threads; request median {run['request_ms_median']} ms, p95 {run['request_ms_p95']} ms, "
              f"{run['body_mb_each']} MiB each); client side, not timed above: build {build_s:.1f} s + json.dumps {encode_s:.1f} s")
        del bodies
    out["loadavg_after"] = loadavg()

    django_setup()
    from monitoring.models import Event, FeatureBatch

    expected = sum(r["events"] for r in out["runs"].values()) + 100 * 2 * args.threads
    out["events_in_db"] = Event.objects.count()
    out["feature_batches_in_db"] = FeatureBatch.objects.count()
    if out["events_in_db"] != expected:
        raise SystemExit(f"{out['events_in_db']} events in the database, {expected} expected")
    write_json(args.out, out)
