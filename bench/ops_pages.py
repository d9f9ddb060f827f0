"""The cost, operations and quality pages timed in-process as a viewer, and the /metrics scrape beside the read it
replaced: `pages` of ops_bench.py."""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path

from common import django_setup, loadavg, percentile, profile_summary, write_json

GOAL_PAGE_MS = 200.0


def _targets(data: dict, ranges: list[str]) -> dict[str, str] | str:
    """{label: path} of the pages to time; a string saying why when the pages are not there yet."""
    from django.urls import NoReverseMatch, reverse

    model = max((s for s in data["subjects"] if s["kind"] == "model"), key=lambda s: s["share"])["name"]
    prompt = max((s for s in data["subjects"] if s["kind"] == "prompt"), key=lambda s: s["share"])["name"]
    try:
        paths = {
            f"operations: model {model}": reverse("monitoring:operations", args=["model", model]),
            f"operations: prompt {prompt}": reverse("monitoring:operations", args=["prompt", prompt]),
            "costs": reverse("monitoring:costs"),
            f"quality: {prompt}": reverse("monitoring:quality", args=[prompt]),
        }
    except NoReverseMatch as exc:
        return f"the pages are not routed yet ({exc})"
    return {f"{label} @{r}": f"{path}?range={r}" for r in ranges for label, path in paths.items()}


def cmd_pages(args) -> None:
    """Warm up, count queries, then time every page N times, interleaved (round i requests each page once, rotating order)."""
    django_setup()
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    data = json.loads(Path(args.data).read_text())
    targets = _targets(data, args.ranges)
    if isinstance(targets, str):
        write_json(args.out, {"skipped": targets})
        print(f"  pages: SKIPPED, {targets}")
        return
    client = Client()
    # force_login: the login lockout (django-axes) needs a request, which the test client's login() does not pass.
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username=data["viewer"]))
    out: dict = {"requests": args.requests, "warmup": args.warmup, "loadavg_before": loadavg(), "pages": {}, "order": list(targets)}
    for label, path in targets.items():
        for _ in range(args.warmup):
            response = client.get(path)
            if response.status_code != 200:
                raise SystemExit(f"{path}: HTTP {response.status_code}: {response.content[:500]!r}")
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        sqls = [q["sql"] for q in captured.captured_queries]
        out["pages"][label] = {"path": path, "queries": len(sqls), "sql": sqls, "bytes": len(response.content), "samples_ms": []}
    labels = list(targets)
    started = time.perf_counter()
    for i in range(args.requests):
        for label in labels[i % len(labels):] + labels[: i % len(labels)]:
            t = time.perf_counter()
            response = client.get(targets[label])
            out["pages"][label]["samples_ms"].append((time.perf_counter() - t) * 1000)
            assert response.status_code == 200, (label, response.status_code)
        # A page that reads raw events can take seconds at 10M events: the rounds stop at the time limit (10 at least).
        if i + 1 >= 10 and time.perf_counter() - started > args.max_seconds:
            print(f"  pages: stopped after {i + 1} rounds ({args.max_seconds:.0f} s limit)")
            break
    out["rounds"] = i + 1
    out["loadavg_after"] = loadavg()
    for label, page in out["pages"].items():
        ms = page.pop("samples_ms")
        page.update({"median_ms": round(statistics.median(ms), 1), "p95_ms": round(percentile(ms, 95), 1), "min_ms": round(min(ms), 1),
                     "max_ms": round(max(ms), 1)})
        print(f"  {label}: median {page['median_ms']} ms, p95 {page['p95_ms']} ms, {page['queries']} queries, "
              f"{page['bytes'] / 1024:.0f} KiB")
    slow = [label for label, page in out["pages"].items() if "@30d" in label and page["median_ms"] >= GOAL_PAGE_MS]
    if args.profile == "always":
        slow = [label for label in out["pages"] if "@30d" in label]
    if args.profile != "0" and slow:
        import cProfile

        out["profiles"] = {}
        for k, label in enumerate(slow):
            profiler = cProfile.Profile()
            t = time.perf_counter()
            profiler.enable()
            client.get(targets[label])
            profiler.disable()
            text = Path(args.profile_dir) / f"profile-page-{k}.txt"
            out["profiles"][label] = profile_summary(profiler, str(text), time.perf_counter() - t)
        print(f"  cProfile of {len(slow)} page(s) (one request each): text in {args.profile_dir}/profile-page-*.txt")
    out["metrics_scrape"] = _scrape_compare(args.requests)
    write_json(args.out, out)


def _scrape_compare(requests: int) -> dict:
    """The traffic series of /metrics (monitoring's RollupCollector, rendered as the endpoint renders it) read from the
    lifetime roll-ups, against the same text built as /metrics built it before them: summing every hour roll-up of every
    version and counting every hour sketch's keys into the buckets. Both must give the same samples (the lifetime rows
    are what the hours add up to); timed interleaved, `requests` times each, with their query counts."""
    import numpy as np
    from django.db import connection
    from django.db.models import Sum
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from monitoring.api import metrics
    from monitoring.models import Granularity, Rollup
    from monitoring.sketch import cumulative_counts_by_group

    class FromHours(metrics.RollupCollector):
        def traffic_rows(self):
            hours = Rollup.objects.filter(granularity=Granularity.HOUR)
            names = ("model_version_id", "prompt_version_id", "model_version__model__name", "model_version__version",
                     "prompt_version__prompt__name", "prompt_version__version")
            sums = ("requests", "errors", "latency_sum", "ttft_sum", *metrics.TOKEN_KINDS.values(), "cost_usd")
            rows = list(hours.values(*names).annotate(**{n: Sum(n) for n in sums}).order_by("model_version_id", "prompt_version_id"))
            blobs = list(hours.values_list("model_version_id", "prompt_version_id", "latency_sketch", "ttft_sketch"))
            groups = np.array([mv or -pv for mv, pv, _, _ in blobs], dtype=np.int64)
            bounds_ms = [b * 1000 for b in metrics.BUCKETS]
            return (rows, cumulative_counts_by_group(groups, [b[2] for b in blobs], bounds_ms),
                    cumulative_counts_by_group(groups, [b[3] for b in blobs], bounds_ms))

    def text(collector) -> bytes:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        return generate_latest(registry)

    now = timezone.now()
    sides = {"lifetime roll-ups (ours now)": lambda: text(metrics.RollupCollector(now=now)), "every hour roll-up (before)": lambda: text(FromHours(now=now))}
    texts, queries, samples = {}, {}, {label: [] for label in sides}
    for label, fn in sides.items():
        fn()
        with CaptureQueriesContext(connection) as captured:
            texts[label] = fn()
        queries[label] = len(captured.captured_queries)

    def parsed(raw: bytes) -> dict:
        return {(x.name, tuple(sorted(x.labels.items()))): x.value for f in text_string_to_metric_families(raw.decode()) for x in f.samples}

    # Equal samples; the float sums (latency, cost) may differ in their last digits, having been added in another order.
    ours, before = (parsed(texts[label]) for label in sides)
    same = ours.keys() == before.keys() and all(math.isclose(ours[k], before[k], rel_tol=1e-9) for k in ours)
    labels = list(sides)
    for i in range(requests):
        for label in labels[i % 2:] + labels[: i % 2]:
            t = time.perf_counter()
            sides[label]()
            samples[label].append((time.perf_counter() - t) * 1000)
    hour_rows = Rollup.objects.filter(granularity=Granularity.HOUR).count()
    out = {"hour_rows": hour_rows, "samples": len(ours), "lifetime_rows": Rollup.objects.filter(granularity=Granularity.LIFETIME).count(), "same_samples": same,
           "bytes": len(texts[labels[0]]), "sides": {}}
    for label in labels:
        ms = samples[label]
        out["sides"][label] = {"median_ms": round(statistics.median(ms), 1), "p95_ms": round(percentile(ms, 95), 1), "queries": queries[label]}
        print(f"  /metrics text from {label}: median {out['sides'][label]['median_ms']} ms, {queries[label]} queries")
    out["ratio"] = round(out["sides"][labels[1]]["median_ms"] / out["sides"][labels[0]]["median_ms"], 1)
    print(f"  /metrics: {out['ratio']}x faster over {hour_rows:,} hour roll-ups; the same {len(ours):,} samples: {same}")
    return out
