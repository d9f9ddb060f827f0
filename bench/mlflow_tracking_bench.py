"""Our MLflow REST API beside a local `mlflow server`, through the official client: metric logging with log_batch
(1,000 metrics a call) and the registry search. Driven by bench/run.sh (`BENCH_ONLY=tracking`, and part of
`make bench`); see "MLflow tracking" in bench/README.md.

Subcommands:

  run     against both servers in one process (bench/.venv-mlflow: it needs the mlflow package), interleaved:
          1. log_batch: each round opens a fresh run on each server and times CALLS calls of 1,000 metrics there,
             ours first in even rounds and MLflow first in odd ones, so outside load hits both alike;
          2. the registry: the same models x versions (tags, two aliases on every 10th model) created on both,
             model by model, every call timed; then three searches per server, all six targets interleaved
             round-robin in a rotating order; the pages of both servers must name the same models.
  report  print the table and write bench/results/mlflow_tracking.json (standard library only).

Our server is reached with MLFLOW_TRACKING_TOKEN (an editor's API token, as a user's client would); the variable is
process-wide, so the MLflow server receives the same header and ignores it (it runs without authentication).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

from common import load_json, loadavg, percentile, print_environment, print_table, time_interleaved, write_json, write_results

SIDES = ("ours", "mlflow")
KEYS_PER_CALL = 20  # 1,000 metrics = 20 keys x 50 steps, every value new (a training loop's shape)


def summarise(samples_s: list[float]) -> dict:
    ms = [s * 1000 for s in samples_s]
    return {"n": len(ms), "median_ms": round(statistics.median(ms), 2), "p95_ms": round(percentile(ms, 95), 2),
            "min_ms": round(min(ms), 2), "max_ms": round(max(ms), 2), "mean_ms": round(statistics.fmean(ms), 2),
            "total_s": round(sum(samples_s), 3)}


def clients(args) -> dict:
    import logging

    from mlflow.tracking import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    token = Path(args.ours_token_file).read_text().strip()
    if not token:
        raise SystemExit(f"{args.ours_token_file} holds no token")
    os.environ["MLFLOW_TRACKING_TOKEN"] = token  # read by the client on every request
    urls = {"ours": args.ours_url.rstrip("/"), "mlflow": args.mlflow_url.rstrip("/")}
    return {side: MlflowClient(tracking_uri=url, registry_uri=url) for side, url in urls.items()}


# --- 1. log_batch ------------------------------------------------------------------------------------


def metric_batches(calls: int, per_call: int, seed: int = 7) -> list[list]:
    """`calls` lists of `per_call` Metric objects: KEYS_PER_CALL keys, consecutive steps, built before any timing."""
    from mlflow.entities import Metric

    rng = random.Random(seed)
    steps = per_call // KEYS_PER_CALL
    start = int(time.time() * 1000)
    return [[Metric(f"metric_{k:02d}", rng.random(), start + c, c * steps + s) for s in range(steps) for k in range(KEYS_PER_CALL)]
            for c in range(calls)]


def log_batch_round(client, experiment_id: str, batches: list[list], round_no: int, check: bool) -> list[float]:
    """A fresh run, then every batch timed as one `log_batch` call; with `check` the history of one key is read back."""
    run_id = client.create_run(experiment_id, run_name=f"bench-round-{round_no}").info.run_id
    samples = []
    for batch in batches:
        t0 = time.perf_counter()
        client.log_batch(run_id, metrics=batch, synchronous=True)
        samples.append(time.perf_counter() - t0)
    if check:
        expected = sum(1 for batch in batches for m in batch if m.key == "metric_00")
        got = len(client.get_metric_history(run_id, "metric_00"))
        if got != expected:
            raise SystemExit(f"run {run_id}: {got} values of metric_00 read back, {expected} logged")
    client.update_run(run_id, status="FINISHED")  # set_terminated would also print the run's URL
    return samples


def bench_log_batch(cl: dict, args) -> dict:
    experiment_ids = {side: cl[side].create_experiment(f"bench-tracking-{int(time.time())}") for side in SIDES}
    batches = metric_batches(args.calls, args.metrics)
    warm = batches[: args.warmup_calls]
    for side in SIDES:
        log_batch_round(cl[side], experiment_ids[side], warm, -1, check=False)
    samples: dict[str, list[float]] = {side: [] for side in SIDES}
    load_before = loadavg()
    started = time.perf_counter()
    for r in range(args.rounds):
        order = SIDES if r % 2 == 0 else SIDES[::-1]
        for side in order:
            samples[side].extend(log_batch_round(cl[side], experiment_ids[side], batches, r, check=True))
        print(f"  log_batch round {r + 1}/{args.rounds}: ours median {statistics.median(samples['ours'][-args.calls:]) * 1000:.1f} ms, "
              f"MLflow {statistics.median(samples['mlflow'][-args.calls:]) * 1000:.1f} ms a call")
    out = {"_meta": {"rounds": args.rounds, "calls_per_round": args.calls, "metrics_per_call": args.metrics,
                     "keys_per_call": KEYS_PER_CALL, "warmup_calls": args.warmup_calls, "seconds": round(time.perf_counter() - started, 1),
                     "loadavg_before": load_before, "loadavg_after": loadavg()}}
    for side in SIDES:
        s = summarise(samples[side])
        s["metrics_per_s"] = round(args.metrics * len(samples[side]) / sum(samples[side]))
        s["metrics_per_s_at_median"] = round(args.metrics / (s["median_ms"] / 1000))
        out[side] = s
    return out


# --- 2. the registry ----------------------------------------------------------------------------------


def model_name(prefix: str, i: int) -> str:
    return f"{prefix}{i:03d}"


def seed_registry(cl: dict, args) -> dict:
    """The same models on both servers, model by model (the server order alternating), every call timed."""
    rng = random.Random(42)
    calls: dict[str, dict[str, list[float]]] = {side: {"create_registered_model": [], "create_model_version": [],
                                                      "set_registered_model_alias": []} for side in SIDES}

    def timed(side: str, what: str, fn, *a, **kw):
        t0 = time.perf_counter()
        fn(*a, **kw)
        calls[side][what].append(time.perf_counter() - t0)

    started = time.perf_counter()
    for i in range(args.models):
        name = model_name(args.prefix, i)
        team = ("risk", "growth", "search")[i % 3]
        tags = [{"framework": rng.choice(["xgboost", "lightgbm", "sklearn"]), "bench": "1"} for _ in range(args.versions)]
        for side in (SIDES if i % 2 == 0 else SIDES[::-1]):
            c = cl[side]
            timed(side, "create_registered_model", c.create_registered_model, name, tags={"team": team}, description=f"Bench model {i}.")
            for n in range(1, args.versions + 1):
                timed(side, "create_model_version", c.create_model_version, name, source=f"s3://bench/{name}/v{n}/model.pkl",
                      tags=tags[n - 1], description=f"Bench version {n} of {name}.", await_creation_for=0)
            if i % 10 == 0 and args.versions >= 2:
                # Not production/staging: on our server those names are protected and a move is a promotion request.
                timed(side, "set_registered_model_alias", c.set_registered_model_alias, name, "champion", str(args.versions - 1))
                timed(side, "set_registered_model_alias", c.set_registered_model_alias, name, "challenger", str(args.versions))
    out = {"seconds": round(time.perf_counter() - started, 1), "models": args.models, "versions_per_model": args.versions}
    for side in SIDES:
        out[side] = {what: summarise(samples) for what, samples in calls[side].items() if samples}
    return out


def search_targets(prefix: str, models: int) -> dict:
    """name -> (search arguments, expected number of models on the page)."""
    like_count = sum(1 for i in range(models) if model_name(prefix, i).startswith(f"{prefix}1"))
    risk = sum(1 for i in range(models) if i % 3 == 0)
    return {
        "search_like": ({"filter_string": f"name LIKE '{prefix}1%'", "max_results": 100}, min(like_count, 100)),
        "search_page": ({"max_results": 100}, min(models, 100)),
        "search_tag": ({"filter_string": "tags.team = 'risk'", "max_results": 100}, min(risk, 100)),
    }


def page_view(models) -> list:
    """What a page says, comparable across servers: names, aliases and the latest versions."""
    return [(m.name, sorted((m.aliases or {}).items()), sorted((v.version, v.current_stage) for v in (m.latest_versions or [])))
            for m in models]


PROMPT_FILTER = "tag.`mlflow.prompt.is_prompt` != 'true'"  # what MlflowClient adds to every registered model search


def probe(url: str, kwargs: dict) -> str:
    """'' when the server answers the search as the client will ask it, else what went wrong. Plain REST without
    retries: the client retries a 500 with backoff for minutes before it gives up."""
    import requests

    text = kwargs.get("filter_string")
    params = {"filter": f"{text} AND {PROMPT_FILTER}" if text else PROMPT_FILTER, "max_results": kwargs["max_results"]}
    headers = {"Authorization": f"Bearer {os.environ['MLFLOW_TRACKING_TOKEN']}"}
    response = requests.get(f"{url}/api/2.0/mlflow/registered-models/search", params=params, headers=headers, timeout=60)
    if response.status_code == 200:
        return ""
    return f"HTTP {response.status_code} for filter={params['filter']!r}: {response.text[:300]}"


def bench_search(cl: dict, args) -> dict:
    targets = search_targets(args.prefix, args.models)
    urls = {"ours": args.ours_url.rstrip("/"), "mlflow": args.mlflow_url.rstrip("/")}
    failed = {}
    for what, (kwargs, _expected) in targets.items():
        errors = {side: probe(urls[side], kwargs) for side in SIDES}
        if any(errors.values()):
            failed[what] = {"kwargs": kwargs, "errors": {side: e for side, e in errors.items() if e}}
            print(f"  {what}: NOT TIMED, a server refused it: {failed[what]['errors']}")
    targets = {what: t for what, t in targets.items() if what not in failed}
    plan = {}
    for what, (kwargs, expected) in targets.items():
        for side in SIDES:
            def call(c=cl[side], kwargs=kwargs, expected=expected, key=f"{side}:{what}"):
                found = c.search_registered_models(**kwargs)
                if len(found) != expected:
                    raise SystemExit(f"{key}: {len(found)} models on the page, expected {expected}")
                return found
            plan[f"{side}:{what}"] = call
    for what in targets:
        ours, theirs = page_view(plan[f"ours:{what}"]()), page_view(plan[f"mlflow:{what}"]())
        if ours != theirs:
            diff = next(((a, b) for a, b in zip(ours, theirs, strict=False) if a != b), None)
            raise SystemExit(f"{what}: the two servers answer different pages; first difference: {diff}")
    samples, timing = time_interleaved(plan, requests=args.requests, warmup_rounds=args.warmup - 1)  # the page check was one round
    out = {"_meta": {"requests_per_target": args.requests, "warmup_per_target": args.warmup, "interleaved": True, **timing,
                     "pages_equal": True, "failed": failed}}
    for what, (kwargs, expected) in targets.items():
        out[what] = {"kwargs": kwargs, "models_on_page": expected, **{side: summarise(samples[f"{side}:{what}"]) for side in SIDES}}
        print(f"  {what:<12} ours median {out[what]['ours']['median_ms']:7.2f} ms, MLflow {out[what]['mlflow']['median_ms']:7.2f} ms")
    return out


def cmd_run(args) -> None:
    import mlflow

    cl = clients(args)
    out = {"mlflow_version": mlflow.__version__, "installed": args.installed, "python": sys.version.split()[0],
           "ours_url": args.ours_url, "mlflow_url": args.mlflow_url, "prefix": args.prefix}
    print(f"  log_batch: {args.rounds} rounds x {args.calls} calls x {args.metrics} metrics per server, interleaved")
    out["log_batch"] = bench_log_batch(cl, args)
    print(f"  registry: {args.models} models x {args.versions} versions on both servers, every call timed")
    out["seed"] = seed_registry(cl, args)
    print(f"  registry search: {args.requests} requests per target after {args.warmup} warm-up requests, interleaved")
    out["search"] = bench_search(cl, args)
    write_json(args.out, out)


# --- report -------------------------------------------------------------------------------------------


def _ratio(theirs, ours):
    return round(theirs / ours, 2) if theirs and ours else None


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


SEARCH_LABELS = {
    "search_like": "search_registered_models(filter_string=\"name LIKE '{prefix}1%'\", max_results=100)",
    "search_page": "search_registered_models(max_results=100), no filter",
    "search_tag": "search_registered_models(filter_string=\"tags.team = 'risk'\", max_results=100)",
}


def cmd_report(args) -> None:
    work = Path(args.work)
    env = load_json(work / "env.json") or {}
    data = load_json(work / "tracking.json")
    skipped = (work / "skipped.txt").read_text().strip() if (work / "skipped.txt").is_file() else ""
    print_environment(env)
    if skipped or not data:
        reason = skipped or "no result (the run step failed; see the output above)"
        print(f"MLflow tracking figures SKIPPED: {reason}")
        write_results(args.results, {"environment": env, "skipped": reason})
        return
    lb, seed, search = data["log_batch"], data["seed"], data["search"]
    meta = lb["_meta"]
    print(f"MLflow {data['mlflow_version']} ({data.get('installed')}): mlflow server --workers 1 (uvicorn), SQLite backend, job execution "
          "and telemetry off. Ours: gunicorn -w 1 (sync), DJANGO_DEBUG=0, SQLite, Redis; an editor's token as MLFLOW_TRACKING_TOKEN.")
    print(f"Client: MlflowClient of mlflow {data['mlflow_version']}, one process, sequential calls. Load average: log_batch "
          f"{meta['loadavg_before']} -> {meta['loadavg_after']}, search {search['_meta']['loadavg_before']} -> {search['_meta']['loadavg_after']}.")
    print(f"log_batch: {meta['rounds']} rounds x {meta['calls_per_round']} calls of {meta['metrics_per_call']:,} metrics per server "
          f"({meta['keys_per_call']} keys x {meta['metrics_per_call'] // meta['keys_per_call']} steps, a fresh run per round), "
          "the server order alternating per round.")
    print()
    rows, table = [], []
    entries = [("log_batch, 1,000 metrics a call", lb["ours"], lb["mlflow"])]
    entries += [(SEARCH_LABELS[what].format(prefix=data["prefix"]), search[what]["ours"], search[what]["mlflow"])
                for what in SEARCH_LABELS if what in search]
    for label, ours, theirs in entries:
        row = {"row": label, "ours_median_ms": ours["median_ms"], "ours_p95_ms": ours["p95_ms"], "mlflow_median_ms": theirs["median_ms"],
               "mlflow_p95_ms": theirs["p95_ms"], "n": ours["n"], "ratio_mlflow_over_ours": _ratio(theirs["median_ms"], ours["median_ms"]),
               "ours_metrics_per_s": ours.get("metrics_per_s"), "mlflow_metrics_per_s": theirs.get("metrics_per_s")}
        rows.append(row)
        table.append([label, _fmt(ours["median_ms"]), _fmt(ours["p95_ms"]), _fmt(theirs["median_ms"]), _fmt(theirs["p95_ms"]),
                      _fmt(row["ratio_mlflow_over_ours"]), _fmt(ours.get("metrics_per_s")), _fmt(theirs.get("metrics_per_s")), ours["n"]])
    failed = search["_meta"].get("failed") or {}
    for what, f in failed.items():
        label = SEARCH_LABELS[what].format(prefix=data["prefix"])
        rows.append({"row": label, "failed": f["errors"]})
        table.append([label] + ["FAILED" if side in f["errors"] else "—" for side in ("ours", "ours", "mlflow", "mlflow")] + ["—"] * 4)
    print_table(["", "ours median ms", "ours p95 ms", "MLflow median ms", "MLflow p95 ms", "MLflow / ours", "ours metrics/s",
                 "MLflow metrics/s", "calls"], table)
    print()
    print(f"Throughput (metrics / summed call time): ours {lb['ours']['metrics_per_s']:,}/s, MLflow {lb['mlflow']['metrics_per_s']:,}/s; "
          f"MLflow / ours = {_ratio(lb['mlflow']['total_s'], lb['ours']['total_s'])} (above 1: ours is faster).")
    print(f"Seeding {seed['models']} models x {seed['versions_per_model']} versions on both servers took {seed['seconds']} s "
          "(per call, median / p95 ms):")
    for what in ("create_registered_model", "create_model_version", "set_registered_model_alias"):
        o, m = seed["ours"].get(what), seed["mlflow"].get(what)
        if o and m:
            print(f"    {what:<28} ours {o['median_ms']:7.2f} / {o['p95_ms']:7.2f}   MLflow {m['median_ms']:7.2f} / {m['p95_ms']:7.2f}   "
                  f"MLflow / ours {_ratio(m['median_ms'], o['median_ms'])}  ({o['n']} calls)")
    print(f"Search: {search['_meta']['requests_per_target']} requests per target after {search['_meta']['warmup_per_target']} warm-up "
          "requests, all targets interleaved in a rotating order; both servers answered the same pages (names, aliases, latest versions).")
    for what, f in failed.items():
        for side, error in f["errors"].items():
            print(f"    NOT TIMED: {what} on {'our server' if side == 'ours' else 'MLflow'}: {error}")
    timings = load_json(work / "timings.json") or {}
    write_results(args.results, {"environment": env, "rows": rows, "log_batch": lb, "seed": seed, "search": search,
                                 "mlflow_version": data["mlflow_version"], "installed": data.get("installed"), "timings": timings})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="time both servers (run in bench/.venv-mlflow)")
    p.add_argument("--ours-url", required=True)
    p.add_argument("--ours-token-file", required=True, help="a file holding an editor's API token for our server")
    p.add_argument("--mlflow-url", required=True)
    p.add_argument("--rounds", type=int, default=6, help="log_batch rounds (each server once per round)")
    p.add_argument("--calls", type=int, default=50, help="log_batch calls per server and round")
    p.add_argument("--metrics", type=int, default=1000, help="metrics per log_batch call (MLflow's limit: 1,000)")
    p.add_argument("--warmup-calls", type=int, default=5)
    p.add_argument("--models", type=int, default=200)
    p.add_argument("--versions", type=int, default=5)
    p.add_argument("--prefix", default="bench-model-", help="registered model names: <prefix>000, <prefix>001, ...")
    p.add_argument("--requests", type=int, default=100, help="timed search requests per target")
    p.add_argument("--warmup", type=int, default=10, help="warm-up search requests per target")
    p.add_argument("--installed", default="")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("report", help="print the table, write the results JSON")
    p.add_argument("--work", required=True)
    p.add_argument("--results", default=str(Path(__file__).resolve().parent / "results" / "mlflow_tracking.json"))
    p.set_defaults(func=cmd_report)
    args = parser.parse_args()
    if args.command == "run" and args.metrics % KEYS_PER_CALL:
        parser.error(f"--metrics must be a multiple of {KEYS_PER_CALL}")
    args.func(args)


if __name__ == "__main__":
    main()
