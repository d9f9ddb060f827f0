"""Benchmark of the registry's read paths; driven by bench/run.sh (`make bench`).

Subcommands (each one step of run.sh, results as JSON files in a work folder):

  seed     fill the database named by SQLITE_PATH through the real services
  queries  count the SQL queries of the three reads in-process (django.test.Client)
  http     time the three reads over real HTTP against a running gunicorn
  report   merge the JSON files, print the table, write bench/results/registry.json
  port     print a free TCP port on 127.0.0.1
  wait     wait until a URL answers 200 (or the server's process dies)

Only `seed`, `queries` and `env` import Django; `http` needs only `requests`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent

VIEWER = ("bench-viewer", "bench-viewer-pw")
EDITOR = ("bench-editor", "bench-editor-pw")
APPROVERS = (("bench-approver-1", "bench-approver-pw"), ("bench-approver-2", "bench-approver-pw"))
# The model whose page is measured: it has stage history and a pending request at every scale.
DETAIL_MODEL = "bench-model-000"


def model_name(i: int) -> str:
    return f"bench-model-{i:03d}"


def write_json(path: str | Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def django_setup() -> None:
    sys.path.insert(0, str(REPO_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_site.settings")
    import django

    django.setup()


# --- seed ---------------------------------------------------------------------------------


def cmd_seed(args) -> None:
    """`models` x `versions` through model_version_register; every 10th model is promoted, every 7th has a pending request."""
    django_setup()
    import random

    from django.db import transaction

    from registry import services
    from registry.models import ModelVersion, PromotionRequest, RegisteredModel, StageChange
    from registry.roles_admin import user_set_role, user_token_refresh

    started = time.perf_counter()
    viewer = user_set_role(username=VIEWER[0], role="viewer", password=VIEWER[1])
    editor = user_set_role(username=EDITOR[0], role="editor", password=EDITOR[1])
    approvers = [user_set_role(username=u, role="approver", password=p) for u, p in APPROVERS]
    rng = random.Random(42)
    for i in range(args.models):
        name = model_name(i)
        with transaction.atomic():
            base = {"accuracy": 0.80, "f1": 0.75, "auc": 0.85, "precision": 0.78, "recall": 0.72}
            for n in range(1, args.versions + 1):
                metrics = {k: round(v * (1 + rng.uniform(-0.01, 0.02) * n / args.versions), 4) for k, v in base.items()}
                services.model_version_register(
                    model_name=name,
                    actor=editor,
                    params={
                        "learning_rate": rng.choice([0.01, 0.03, 0.1]),
                        "max_depth": rng.randint(3, 10),
                        "n_estimators": rng.choice([100, 200, 400]),
                        "subsample": 0.8,
                        "seed": n,
                    },
                    metrics=metrics,
                    tags={"team": ("risk", "growth", "search")[i % 3], "framework": rng.choice(["xgboost", "lightgbm", "sklearn"]), "bench": "1"},
                    code_commit=f"{rng.getrandbits(160):040x}",
                    data_version=f"s3://bench-data/{name}/snapshot-{n:03d}",
                    image_tag=f"registry.local/{name}:1.{n}.0",
                    description=f"Bench version {n} of {name}.",
                    artifact_uri=f"s3://bench-artifacts/{name}/v{n}/model.pkl",
                )
            if i % 10 == 0 and args.versions >= 3:
                # v(N-2) goes staging -> production, v(N-1) into staging: real requests, approved by a second person.
                for number, stages in ((args.versions - 2, ("staging", "production")), (args.versions - 1, ("staging",))):
                    version = ModelVersion.objects.get(model__name=name, version=number)
                    for stage in stages:
                        request = services.promotion_request_create(version=version, to_stage=stage, reason="Bench: beats the current one.", actor=editor)
                        services.promotion_approve(promotion_id=request.pk, actor=approvers[number % 2], comment="Bench approval.")
            if i % 7 == 0:
                last = ModelVersion.objects.get(model__name=name, version=args.versions)
                services.promotion_request_create(version=last, to_stage="production", reason="Bench: pending request.", actor=editor)
    token = user_token_refresh(user=viewer)
    seconds = time.perf_counter() - started
    counts = {
        "models": RegisteredModel.objects.count(),
        "versions": ModelVersion.objects.count(),
        "in_production": ModelVersion.objects.filter(stage="production").count(),
        "in_staging": ModelVersion.objects.filter(stage="staging").count(),
        "pending_promotions": PromotionRequest.objects.filter(status="pending").count(),
        "stage_changes": StageChange.objects.count(),
    }
    write_json(args.out, {"seconds": round(seconds, 2), "counts": counts, "token": token, "viewer": VIEWER[0], "viewer_password": VIEWER[1]})
    print(f"  seeded {counts['models']} models, {counts['versions']} versions "
          f"({counts['in_production']} in production, {counts['in_staging']} in staging, "
          f"{counts['pending_promotions']} pending) in {seconds:.1f} s")


# --- queries ----------------------------------------------------------------------------------


def _normalise_sql(sql: str) -> str:
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "?", sql)
    return re.sub(r"\s+", " ", sql).strip()


def _targets(api_base: str = "/api/v1/models") -> dict[str, str]:
    return {"models_page": "/models/", "model_page": f"/models/{DETAIL_MODEL}/", "api_models": api_base}


def cmd_queries(args) -> None:
    """Run each read once warm, then count its queries with CaptureQueriesContext (in-process, same DB)."""
    django_setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    seed = json.loads(Path(args.seed).read_text())
    page_client = Client()
    if not page_client.login(username=seed["viewer"], password=seed["viewer_password"]):
        raise SystemExit("in-process login failed")
    api_client = Client(HTTP_AUTHORIZATION=f"Token {seed['token']}")
    out = {}
    for key, path in _targets().items():
        client = api_client if key == "api_models" else page_client
        warm = client.get(path)
        if warm.status_code != 200:
            raise SystemExit(f"{path}: HTTP {warm.status_code}")
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        sqls = [q["sql"] for q in captured.captured_queries]
        shapes: dict[str, int] = {}
        for sql in sqls:
            shapes[_normalise_sql(sql)] = shapes.get(_normalise_sql(sql), 0) + 1
        out[key] = {
            "path": path,
            "queries": len(sqls),
            "sql": sqls,
            # The same statement shape run more than once in one request is the mark of an N+1.
            "repeated_shapes": {s: n for s, n in shapes.items() if n > 1},
        }
    write_json(args.out, out)
    print("  queries: " + ", ".join(f"{k} {v['queries']}" for k, v in out.items()))


# --- http --------------------------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarise(samples_s: list[float]) -> dict:
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "min_ms": round(min(ms), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def _loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def cmd_http(args) -> None:
    """Time every target over HTTP, interleaved: round i requests each target once, in a rotating order.

    The machine is shared (2 cores), so a burst of outside load hits every target alike instead of
    whichever happened to be measured at that moment. With --mlflow-url (run from bench/.venv-mlflow)
    MLflow's two searches are among the targets; without it only ours are timed.
    """
    import requests

    def sessions(base: str, seed: dict):
        """A browser-like session logged in through the login form (CSRF token), and a token session for the API."""
        pages = requests.Session()
        login_page = pages.get(f"{base}/accounts/login/", timeout=30)
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text)
        if not match:
            raise SystemExit("no CSRF token on the login page")
        done = pages.post(
            f"{base}/accounts/login/",
            data={"username": seed["viewer"], "password": seed["viewer_password"], "csrfmiddlewaretoken": match.group(1), "next": "/models/"},
            headers={"Referer": f"{base}/accounts/login/"},
            allow_redirects=False,
            timeout=30,
        )
        if done.status_code != 302 or "sessionid" not in pages.cookies:
            raise SystemExit(f"login failed: HTTP {done.status_code}")
        api = requests.Session()
        api.headers["Authorization"] = f"Token {seed['token']}"
        return pages, api

    def http_target(session, url: str, marker: bytes | None = None):
        def call() -> int:
            response = session.get(url, allow_redirects=False, timeout=30)
            body = response.content  # the whole body is read inside the timing
            if response.status_code != 200 or (marker is not None and marker not in body):
                raise SystemExit(f"{url}: HTTP {response.status_code}" + (f", {marker!r} missing" if marker else ""))
            return len(body)
        return call

    def our_targets(base: str, seed: dict, suffix: str = "") -> dict:
        pages, api = sessions(base, seed)
        return {
            "models_page" + suffix: http_target(pages, base + targets["models_page"], b'id="model-table"'),
            "model_page" + suffix: http_target(pages, base + targets["model_page"], b'id="version-table"'),
            "api_models" + suffix: http_target(api, base + targets["api_models"]),
        }

    targets = _targets()
    base = args.base_url.rstrip("/")
    plan = our_targets(base, json.loads(Path(args.seed).read_text()))
    if args.small_base_url:
        # The same reads on the small database, in the same interleaved loop: does the time grow with the data?
        plan.update(our_targets(args.small_base_url.rstrip("/"), json.loads(Path(args.small_seed).read_text()), "@small"))
    if args.mlflow_url:
        import logging

        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)
        client = MlflowClient(tracking_uri=args.mlflow_url, registry_uri=args.mlflow_url)

        def client_search() -> int:
            found = client.search_registered_models(max_results=25)
            if len(found) != 25:
                raise SystemExit(f"search_registered_models returned {len(found)} models, expected 25")
            return len(found)

        plan["mlflow_client"] = client_search
        plan["mlflow_rest"] = http_target(requests.Session(), args.mlflow_url.rstrip("/") + "/api/2.0/mlflow/registered-models/search?max_results=25")

    keys = list(plan)
    sizes = {key: plan[key]() for key in keys}
    for _ in range(args.warmup - 1):
        for key in keys:
            plan[key]()
    samples: dict[str, list[float]] = {key: [] for key in keys}
    load_before = _loadavg()
    started = time.perf_counter()
    for i in range(args.requests):
        for key in keys[i % len(keys):] + keys[: i % len(keys)]:
            t0 = time.perf_counter()
            plan[key]()
            samples[key].append(time.perf_counter() - t0)
    out = {"_meta": {"interleaved": True, "warmup_per_target": args.warmup, "seconds": round(time.perf_counter() - started, 1),
                     "loadavg_before": load_before, "loadavg_after": _loadavg()}}
    for key in keys:
        out[key] = {"path": targets.get(key.split("@")[0], "registered-models/search?max_results=25"), **summarise(samples[key]),
                    ("bytes" if key != "mlflow_client" else "models"): sizes[key]}
        print(f"  {key:<14} median {out[key]['median_ms']:7.2f} ms  p95 {out[key]['p95_ms']:7.2f} ms  ({len(samples[key])} requests)")

    write_json(args.out, out)


# --- report ------------------------------------------------------------------------------------


def _load(path: str | None) -> dict | None:
    if path and Path(path).is_file():
        return json.loads(Path(path).read_text())
    return None


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def cmd_report(args) -> None:
    work = Path(args.work)
    http = _load(work / "http.json") or {}
    q_small = _load(work / "queries-small.json") or {}
    q_large = _load(work / "queries-large.json") or {}
    seed_small = _load(work / "seed-small.json") or {}
    seed_large = _load(work / "seed-large.json") or {}
    mlflow = _load(work / "mlflow.json")
    env = _load(work / "env.json") or {}
    timings = _load(work / "timings.json") or {}
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
    print()
    print("=" * 100)
    print("Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
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
    widths = [max(len(str(line[i])) for line in [header, *table]) for i in range(len(header))]
    print("  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)))
    print("  ".join("-" * w for w in widths))
    for line in table:
        print("  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(line)))
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
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"Written: {out.relative_to(REPO_DIR) if out.is_relative_to(REPO_DIR) else out}")


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
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        print(sock.getsockname()[1])


def cmd_wait(args) -> None:
    import urllib.request

    deadline = time.monotonic() + args.timeout
    started = time.monotonic()
    while time.monotonic() < deadline:
        if args.pid and not Path(f"/proc/{args.pid}").exists():
            raise SystemExit(f"server process {args.pid} exited before {args.url} answered")
        try:
            with urllib.request.urlopen(args.url, timeout=2) as response:
                if response.status == 200:
                    print(f"  {args.url} answered after {time.monotonic() - started:.1f} s")
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{args.url} did not answer within {args.timeout} s")


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
