"""The anchor of `make bench`: MLflow's registry search on this machine.

Runs inside bench/.venv-mlflow (never the project's venv) against an `mlflow server`
that bench/run.sh started on 127.0.0.1. Seeds the same shape as ours (models x
versions, tags, a few aliases for staging/production) through MlflowClient and
writes what it did as JSON. The timing itself is `registry_bench.py http
--mlflow-url`, interleaved with ours.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path


def seed(client, args) -> tuple[float, int, int]:
    """Registered models with versions; with --runs each version gets a run holding its params and metrics."""
    from mlflow.entities import Metric, Param

    rng = random.Random(42)
    calls = 0
    runs = 0
    experiment_id = None
    if args.runs:
        experiment_id = client.create_experiment("bench")
        calls += 1
    started = time.perf_counter()
    for i in range(args.models):
        name = f"bench-model-{i:03d}"
        client.create_registered_model(name, tags={"team": ("risk", "growth", "search")[i % 3]}, description=f"Bench model {i}.")
        calls += 1
        for n in range(1, args.versions + 1):
            run_id = None
            if args.runs:
                now = int(time.time() * 1000)
                run = client.create_run(experiment_id)
                run_id = run.info.run_id
                client.log_batch(
                    run_id,
                    params=[Param("learning_rate", str(rng.choice([0.01, 0.03, 0.1]))), Param("max_depth", str(rng.randint(3, 10))),
                            Param("n_estimators", str(rng.choice([100, 200, 400]))), Param("subsample", "0.8"), Param("seed", str(n))],
                    metrics=[Metric(k, round(0.8 * (1 + rng.uniform(-0.01, 0.02)), 4), now, 0) for k in ("accuracy", "f1", "auc", "precision", "recall")],
                )
                calls += 2
                runs += 1
            client.create_model_version(
                name,
                source=f"s3://bench-artifacts/{name}/v{n}/model.pkl",
                run_id=run_id,
                tags={"framework": rng.choice(["xgboost", "lightgbm", "sklearn"]), "bench": "1"},
                description=f"Bench version {n} of {name}.",
                await_creation_for=0,  # a SQL store creates versions READY; skip the client's polling call
            )
            calls += 1
        if i % 10 == 0 and args.versions >= 3:
            client.set_registered_model_alias(name, "production", str(args.versions - 2))
            client.set_registered_model_alias(name, "staging", str(args.versions - 1))
            calls += 2
    return time.perf_counter() - started, calls, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--models", type=int, default=200)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--runs", action="store_true", help="also create one run per version with its params and metrics")
    parser.add_argument("--installed", default="", help="how the venv was installed (for the report)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    import logging

    import mlflow
    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    client = MlflowClient(tracking_uri=args.url, registry_uri=args.url)
    seed_seconds, calls, runs = seed(client, args)
    print(f"  MLflow: seeded {args.models} models x {args.versions} versions ({runs} runs) with {calls} REST calls in {seed_seconds:.1f} s")
    out = {
        "mlflow_version": mlflow.__version__,
        "installed": args.installed,
        "python": sys.version.split()[0],
        "server": "mlflow server (uvicorn) --workers 1, SQLite backend, job execution off",
        "models": args.models,
        "versions_per_model": args.versions,
        "runs": runs,
        "seed_seconds": round(seed_seconds, 2),
        "seed_calls": calls,
        "seed_ms_per_call": round(seed_seconds * 1000 / calls, 2),
    }
    Path(args.out).write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
