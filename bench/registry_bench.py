"""Benchmark of the registry's read paths; driven by bench/run.sh (`make bench`).

Subcommands (each one step of run.sh, results as JSON files in a work folder):

  seed     fill the database named by SQLITE_PATH through the real services
  queries  count the SQL queries of the three reads in-process (django.test.Client)
  http     time the three reads over real HTTP against a running gunicorn
  report   merge the JSON files, print the table, write bench/results/registry.json
  port     print a free TCP port on 127.0.0.1
  wait     wait until a URL answers 200 (or the server's process dies)

Only `seed`, `queries` and `env` import Django; `http` needs only `requests`. The steps live in
registry_seed.py (seed, queries) and registry_http.py (http); what every bench shares in common.py.
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

from common import (
    BENCH_DIR,
    django_setup,
    free_port,
    load_json,
    print_environment,
    print_table,
    wait_for_url,
    write_json,
    write_results,
)
from registry_http import cmd_http
from registry_seed import DETAIL_MODEL, cmd_queries, cmd_seed


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def cmd_report(args) -> None:
    work = Path(args.work)
    http = load_json(work / "http.json") or {}
    q_small = load_json(work / "queries-small.json") or {}
    q_large = load_json(work / "queries-large.json") or {}
    seed_small = load_json(work / "seed-small.json") or {}
    seed_large = load_json(work / "seed-large.json") or {}
    mlflow = load_json(work / "mlflow.json")
    env = load_json(work / "env.json") or {}
    timings = load_json(work / "timings.json") or {}
    skipped = (work / "mlflow-skipped.txt").read_text().strip() if (work / "mlflow-skipped.txt").is_file() else ""
    if skipped:
        mlflow = None

    def size(seed: dict) -> str:
        counts = seed.get("counts", {})
        models, versions = counts.get("models"), counts.get("versions")
        return f"{models}x{versions // models}" if models and versions else "?"

    big, small = size(seed_large), size(seed_small)
    anchor_client = http.get("mlflow_client", {}).get("median_ms") if mlflow else None
    anchor_rest = http.get("mlflow_rest", {}).get("median_ms") if mlflow else None
    labels = {
        "models_page": "ours: models page /models/ (page of 50)",
        "model_page": f"ours: model page /models/{DETAIL_MODEL}/",
        "api_models": "ours: GET /api/v1/models (page of 50)",
    }
    rows = []
    for key, label in labels.items():
        h = http.get(key, {})
        median = h.get("median_ms")
        rows.append({
            "row": label, "key": key, "median_ms": median, "p95_ms": h.get("p95_ms"),
            f"queries_{big}": q_large.get(key, {}).get("queries"), f"queries_{small}": q_small.get(key, {}).get("queries"),
            "ratio_mlflow_client_over_ours": round(anchor_client / median, 2) if anchor_client and median else None,
            "ratio_mlflow_rest_over_ours": round(anchor_rest / median, 2) if anchor_rest and median else None,
            "bytes": h.get("bytes"),
        })
    for key, label in (("mlflow_client", "MLflow: MlflowClient.search_registered_models(max_results=25)"),
                       ("mlflow_rest", "MLflow: GET /api/2.0/mlflow/registered-models/search?max_results=25")):
        m = http.get(key, {}) if mlflow else {}
        rows.append({"row": label, "key": key, "median_ms": m.get("median_ms"), "p95_ms": m.get("p95_ms"),
                     f"queries_{big}": None, f"queries_{small}": None,
                     "ratio_mlflow_client_over_ours": None, "ratio_mlflow_rest_over_ours": None, "bytes": m.get("bytes")})

    meta = http.get("_meta", {})
    print_environment(env)
    print(f"Load average while timing (this machine is shared): before {meta.get('loadavg_before')}, after {meta.get('loadavg_after')}")
    if mlflow:
        print(f"MLflow {mlflow.get('mlflow_version')} ({mlflow.get('installed')}): {mlflow.get('server')}; seeded {mlflow.get('models')} models x "
              f"{mlflow.get('versions_per_model')} versions ({mlflow.get('runs')} runs) with {mlflow.get('seed_calls')} REST calls "
              f"in {mlflow.get('seed_seconds')} s ({mlflow.get('seed_ms_per_call')} ms a call).")
    else:
        print(f"MLflow anchor SKIPPED: {skipped or 'no result'}")
    print(f"Ours: gunicorn -w 1 (sync), DJANGO_DEBUG=0, SQLite; seeded {big} in {seed_large.get('seconds')} s and {small} in "
          f"{seed_small.get('seconds')} s through the services.")
    print(f"Timing: {http.get('models_page', {}).get('n', '?')} requests per row, interleaved round-robin over all rows, "
          f"after {meta.get('warmup_per_target', '?')} warm-up requests each; queries counted in-process (django.test.Client).")
    print()
    header = ["", "median ms", "p95 ms", f"queries {big}", f"queries {small}", "MLflow client / ours", "MLflow REST / ours"]
    table = [[r["row"], _fmt(r["median_ms"], 2), _fmt(r["p95_ms"], 2), _fmt(r[f"queries_{big}"]), _fmt(r[f"queries_{small}"]),
              _fmt(r["ratio_mlflow_client_over_ours"], 2), _fmt(r["ratio_mlflow_rest_over_ours"], 2)] for r in rows]
    print_table(header, table)
    print()

    constant = {k: q_small.get(k, {}).get("queries") is not None and q_small.get(k, {}).get("queries") == q_large.get(k, {}).get("queries")
                for k in labels}
    for key in labels:
        a, b = q_small.get(key, {}).get("queries"), q_large.get(key, {}).get("queries")
        ta, tb = http.get(f"{key}@small", {}), http.get(key, {})
        print(f"Queries, {labels[key]}: {a} at {small}, {b} at {big} -> {'constant' if constant[key] else 'GROWS WITH DATA'}; "
              f"median {_fmt(ta.get('median_ms'), 2)} ms / {ta.get('bytes')} bytes at {small}, "
              f"{_fmt(tb.get('median_ms'), 2)} ms / {tb.get('bytes')} bytes at {big}")
        for shape, n in (q_large.get(key, {}).get("repeated_shapes") or {}).items():
            print(f"    the same statement {n}x in one request: {shape[:160]}")
    if anchor_client:
        print(f"Aim, at least 2x faster than MLflow's search ({anchor_client:.2f} ms median client, {anchor_rest:.2f} ms REST here):")
        for key in labels:
            median = http.get(key, {}).get("median_ms")
            verdicts = [f"{anchor / median:.2f}x {what} ({'met' if anchor / median >= 2 else 'NOT met'})"
                        for anchor, what in ((anchor_client, "the client"), (anchor_rest, "REST"))]
            print(f"    {labels[key]}: {median:.2f} ms -> " + ", ".join(verdicts))

    result = {
        "environment": env,
        "rows": rows,
        "ours": {"http": {k: v for k, v in http.items() if not k.startswith("mlflow")}, f"queries_{big}": q_large, f"queries_{small}": q_small,
                 f"seed_{big}": _strip(seed_large), f"seed_{small}": _strip(seed_small), "query_count_constant": constant},
        "mlflow": {**mlflow, "http": {k: v for k, v in http.items() if k.startswith("mlflow")}} if mlflow else None,
        "mlflow_skipped": skipped or None,
        "timings": timings,
    }
    write_results(args.results, result)


def _strip(seed: dict) -> dict:
    return {k: v for k, v in seed.items() if k not in ("token", "viewer_password")}


def cmd_env(args) -> None:
    django_setup()
    import sqlite3

    import django
    import gunicorn
    import rest_framework

    env = {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "djangorestframework": rest_framework.VERSION,
        "gunicorn": gunicorn.__version__,
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
    }
    write_json(args.out, env)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cmd_port(args) -> None:
    print(free_port())


def cmd_wait(args) -> None:
    wait_for_url(args.url, pid=args.pid, timeout=args.timeout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("seed")
    p.add_argument("--models", type=int, default=200)
    p.add_argument("--versions", type=int, default=10)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_seed)
    p = sub.add_parser("queries")
    p.add_argument("--seed", required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_queries)
    p = sub.add_parser("http")
    p.add_argument("--base-url", required=True)
    p.add_argument("--seed", required=True)
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--mlflow-url", help="also time MLflow's registry search there (needs the mlflow package)")
    p.add_argument("--small-base-url", help="also time our reads on a server of the small database")
    p.add_argument("--small-seed")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_http)
    p = sub.add_parser("env")
    p.add_argument("--out", required=True)
    p.set_defaults(fn=cmd_env)
    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--results", default=str(BENCH_DIR / "results" / "registry.json"))
    p.set_defaults(fn=cmd_report)
    p = sub.add_parser("port")
    p.set_defaults(fn=cmd_port)
    p = sub.add_parser("wait")
    p.add_argument("--url", required=True)
    p.add_argument("--pid", type=int)
    p.add_argument("--timeout", type=float, default=60)
    p.set_defaults(fn=cmd_wait)
    args = parser.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
