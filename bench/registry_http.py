"""The registry reads timed over real HTTP against a running gunicorn: `http` of registry_bench.py.

Needs only `requests` (and `mlflow` with --mlflow-url): it runs in bench/.venv-mlflow when MLflow is timed.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

from common import percentile, time_interleaved, write_json
from registry_seed import api_targets


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

    targets = api_targets()
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
    samples, timing = time_interleaved(plan, requests=args.requests, warmup_rounds=args.warmup - 1)  # the size check was one round
    out = {"_meta": {"interleaved": True, "warmup_per_target": args.warmup, **timing}}
    for key in keys:
        out[key] = {"path": targets.get(key.split("@")[0], "registered-models/search?max_results=25"), **summarise(samples[key]),
                    ("bytes" if key != "mlflow_client" else "models"): sizes[key]}
        print(f"  {key:<14} median {out[key]['median_ms']:7.2f} ms  p95 {out[key]['p95_ms']:7.2f} ms  ({len(samples[key])} requests)")

    write_json(args.out, out)
