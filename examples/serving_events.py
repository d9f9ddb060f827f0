"""Sending events from serving code: every prediction becomes one monitoring event, sent in the background.

`Client.log_events` only appends to an in-memory queue and returns, so a request never waits for the control
plane: a background thread sends batches (1,000 events, or whatever waited 5 s), retries a down server or a 429
with backoff, and drops the oldest events rather than grow without bound. Each event gets an `event_id`, so a
batch retried after a lost answer is stored once. Fields: docs/monitoring.md#sending-events.

    pip install ./mlops_client          # or copy mlops_client/ (it needs only requests)
    export MLOPS_URL=http://127.0.0.1:8000 MLOPS_TOKEN=<an editor's token>
    python examples/serving_events.py --model fraud-detector --requests 200

The "model" here is a stand-in that scores a random transaction; put your own predict() in its place.
The version must be registered (`GET /api/v1/models/fraud-detector` lists them); the event carries it, so a
canary and production are told apart on the monitoring pages.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from mlops_client import Client  # noqa: E402


def predict(features: dict) -> tuple[int, float]:
    """Your model. Returns (prediction, score)."""
    score = min(1.0, features["amount"] / 5_000 + (0.3 if features["country"] != "DE" else 0.0))
    return int(score > 0.5), round(score, 4)


def serve_one(client: Client, *, model: str, version: int, request_id: str, features: dict, user: str) -> int:
    """A request handler: predict, answer, and hand the event to the client's queue (it never blocks)."""
    started = time.perf_counter()
    error = False
    prediction = None
    try:
        prediction, _score = predict(features)
    except Exception:  # noqa: BLE001 - a failed request is an event too (error rate)
        error = True
    latency_ms = (time.perf_counter() - started) * 1000
    client.log_events([{
        "event_id": request_id,  # your request id: a request logged twice is stored once
        "model": model,
        "version": version,
        "latency_ms": round(latency_ms, 3),
        "error": error,
        "unit_id": user,  # the user or session: canaries and A/B tests count units by it
        "features": features,  # the inputs, for drift against the version's reference
        "prediction": prediction,
    }])
    return prediction


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", default="fraud-detector")
    parser.add_argument("--version", type=int, help="the version this process serves (default: what production runs)")
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()

    # One client per process, made at start-up. batch_size / flush_interval trade latency to the dashboards
    # against requests to the server; max_queue bounds memory while the server is unreachable.
    with Client(batch_size=500, flush_interval=2.0, max_queue=50_000) as client:
        version = args.version or client.api.get(f"models/{args.model}/stages/production")["version"]
        for number in range(args.requests):
            features = {"amount": round(random.lognormvariate(4, 1), 2), "country": random.choice(["DE", "FR", "US"])}
            serve_one(client, model=args.model, version=version, request_id=f"req-{time.time_ns()}-{number}",
                      features=features, user=f"user-{random.randrange(1_000)}")
        # Leaving the block sends what is queued (up to close_timeout); a web server would do this at shutdown.
        client.flush(timeout=30)
        stats = client.events_stats()
    print(f"sent {stats['sent']}, duplicates {stats['duplicates']}, rejected {stats['rejected']}, "
          f"failed {stats['failed']}, dropped {stats['dropped']}" + (f"; last error: {stats['last_error']}" if stats["last_error"] else ""))
    return 0 if stats["rejected"] == stats["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
