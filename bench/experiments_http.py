"""Assignment over HTTP, for the experiments bench (`experiments_bench.py http`): against gunicorn, with the editor's token.

- Batches of 10,000 units: first new units (their exposures are written), then the same units again (read only: the
  repeat path serving code takes on every request), sequentially on one connection; units per second.
- Single units under 50 concurrent clients: each client a thread with its own keep-alive session, every request timed
  (latency as the client sees it: queueing in gunicorn's backlog included); half the units new, half seen before.
Standard library + requests only (no Django in this process).
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from common import percentile, write_json

KEY = "checkout-ab"


def _post(session, url: str, body: dict, headers: dict) -> dict:
    response = session.post(url, data=json.dumps(body), headers=headers, timeout=300)
    if response.status_code != 200:
        raise SystemExit(f"HTTP {response.status_code}: {response.text[:500]}")
    return response.json()


def cmd_http(args) -> None:
    import requests

    data = json.loads(Path(args.data).read_text())
    url = args.base_url.rstrip("/") + f"/api/v1/experiments/{KEY}/assign"
    headers = {"Authorization": f"Token {data['token']}", "Content-Type": "application/json", "Accept": "application/json"}
    rows = []

    # 1. Batches of 10,000.
    session = requests.Session()
    _post(session, url, {"unit_ids": [f"warm-{i}" for i in range(100)]}, headers)
    for label, prefix in (("batch of 10,000, new units", "new"), ("batch of 10,000, seen before", "new")):
        latencies = []
        started = time.perf_counter()
        for b in range(args.batches):
            units = [f"http-{prefix}-{b:03d}-{i:05d}" for i in range(10_000)]
            t = time.perf_counter()
            answer = _post(session, url, {"unit_ids": units}, headers)
            latencies.append(time.perf_counter() - t)
            assert len(answer["assignments"]) == 10_000 and answer["assignments"][0]["unit_id"] == units[0]
        wall = time.perf_counter() - started
        rows.append({"label": label, "requests": args.batches, "units": args.batches * 10_000, "wall_s": round(wall, 2),
                     "units_per_s": args.batches * 10_000 / wall, "p50_ms": percentile(latencies, 50) * 1000,
                     "p99_ms": percentile(latencies, 99) * 1000})
        print(f"  {label}: {args.batches} requests, {args.batches * 10_000 / wall:,.0f} units/s, median {percentile(latencies, 50) * 1000:.0f} ms")

    # 2. Single units, 50 concurrent clients. Units: half new, half assigned in step 1.
    per_client = args.single_requests // args.clients
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    gate = threading.Barrier(args.clients)

    def client(c: int) -> None:
        mine = []
        s = requests.Session()
        s.post(url, data=json.dumps({"unit_id": f"warm-{c}"}), headers=headers, timeout=60)
        gate.wait()
        for k in range(per_client):
            unit = f"single-{c:02d}-{k:05d}" if k % 2 == 0 else f"http-new-000-{(c * per_client + k) % 10_000:05d}"
            t = time.perf_counter()
            response = s.post(url, data=json.dumps({"unit_id": unit}), headers=headers, timeout=60)
            mine.append(time.perf_counter() - t)
            if response.status_code != 200:
                failures.append(f"HTTP {response.status_code}: {response.text[:200]}")
                return
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(args.clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} failed requests, first: {failures[0]}")
    rows.append({"label": f"single unit, {args.clients} concurrent clients", "requests": len(latencies), "units": len(latencies),
                 "wall_s": round(wall, 2), "units_per_s": len(latencies) / wall, "p50_ms": percentile(latencies, 50) * 1000,
                 "p99_ms": percentile(latencies, 99) * 1000})
    print(f"  single unit, {args.clients} clients: {len(latencies)} requests, {len(latencies) / wall:,.0f}/s, "
          f"p50 {percentile(latencies, 50) * 1000:.1f} ms, p99 {percentile(latencies, 99) * 1000:.1f} ms")

    # 3. One client alone: the cost of a call without queueing.
    alone = []
    for k in range(args.alone_requests):
        unit = f"alone-{k:05d}" if k % 2 == 0 else f"http-new-001-{k:05d}"
        t = time.perf_counter()
        session.post(url, data=json.dumps({"unit_id": unit}), headers=headers, timeout=60).raise_for_status()
        alone.append(time.perf_counter() - t)
    rows.append({"label": "single unit, one client", "requests": len(alone), "units": len(alone), "wall_s": round(sum(alone), 2),
                 "units_per_s": len(alone) / sum(alone), "p50_ms": percentile(alone, 50) * 1000, "p99_ms": percentile(alone, 99) * 1000})
    print(f"  single unit, one client: p50 {percentile(alone, 50) * 1000:.1f} ms, p99 {percentile(alone, 99) * 1000:.1f} ms")
    write_json(args.out, {"workers": args.workers, "exposures_before": data["exposures"], "rows": rows})
