"""What the bench scripts share: paths, Django start-up, JSON files, percentiles, the machine's load and memory,
free ports, tables and cProfile summaries.

Standard library only, and nothing of the project imported at module level: `registry_bench.py http` runs in
bench/.venv-mlflow and `monitoring_bench.py evidently` in bench/.venv-evidently, which have neither Django nor the
project's packages.
"""

from __future__ import annotations

import io
import json
import os
import re
import resource
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent


# --- files and Django ------------------------------------------------------------------------------


def write_json(path: str | Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_json(path: str | Path | None) -> dict | None:
    """The JSON file at `path`; None when there is none (a step that did not run)."""
    if path and Path(path).is_file():
        return json.loads(Path(path).read_text())
    return None


def write_results(path: str | Path, result: dict) -> None:
    """A report's JSON (bench/results/<step>.json by default), and the line that says where it went."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"Written: {out.relative_to(REPO_DIR) if out.is_relative_to(REPO_DIR) else out}")


def django_setup() -> None:
    sys.path.insert(0, str(REPO_DIR))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_site.settings")
    import django

    django.setup()


# --- figures and the machine -----------------------------------------------------------------------


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def loadavg() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def time_interleaved(plan: dict, *, requests: int, warmup_rounds: int) -> tuple[dict[str, list[float]], dict]:
    """Call every target of `plan` (name -> no-argument callable) `warmup_rounds` times untimed, then `requests` times
    each, timed, the targets in a rotating order so that a burst of outside load hits them all alike. Returns the
    seconds per call by target, and {seconds, loadavg_before, loadavg_after}."""
    keys = list(plan)
    for _ in range(warmup_rounds):
        for key in keys:
            plan[key]()
    samples: dict[str, list[float]] = {key: [] for key in keys}
    load_before = loadavg()
    started = time.perf_counter()
    for i in range(requests):
        for key in keys[i % len(keys):] + keys[: i % len(keys)]:
            t0 = time.perf_counter()
            plan[key]()
            samples[key].append(time.perf_counter() - t0)
    return samples, {"seconds": round(time.perf_counter() - started, 1), "loadavg_before": load_before, "loadavg_after": loadavg()}


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def mib(n_bytes: float, digits: int = 1) -> float:
    return round(n_bytes / 1024 / 1024, digits)


def normalise_sql(sql: str) -> str:
    """A statement's shape: literals as ?, whitespace collapsed (the same shape run twice in a request marks an N+1)."""
    sql = re.sub(r"'(?:[^']|'')*'", "?", sql)
    sql = re.sub(r"\b\d+(\.\d+)?\b", "?", sql)
    return re.sub(r"\s+", " ", sql).strip()


# --- servers -----------------------------------------------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_url(url: str, *, pid: int | None, timeout: float) -> None:
    """Return once `url` answers 200; SystemExit when the server's process `pid` dies or `timeout` seconds pass."""
    import urllib.request

    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while time.monotonic() < deadline:
        if pid and not Path(f"/proc/{pid}").exists():
            raise SystemExit(f"server process {pid} exited before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    print(f"  {url} answered after {time.monotonic() - started:.1f} s")
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{url} did not answer within {timeout} s")


# --- reports -----------------------------------------------------------------------------------------


def print_environment(env: dict) -> None:
    """The rule and the environment line every report starts with."""
    print()
    print("=" * 100)
    print("Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))


def print_table(header: list[str], rows: list[list]) -> None:
    """The first column left-aligned, the others right-aligned, each as wide as its widest cell."""
    widths = [max(len(str(line[i])) for line in [header, *rows]) for i in range(len(header))]
    print("  ".join(h.ljust(widths[0]) if i == 0 else h.rjust(widths[i]) for i, h in enumerate(header)))
    print("  ".join("-" * w for w in widths))
    for line in rows:
        print("  ".join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(line)))


def profile_summary(profiler, path: str, seconds: float, top: int = 25) -> dict:
    """Write the cProfile text report to `path`; return the top functions by own time and by cumulative time."""
    import pstats

    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(60)
    Path(path).write_text(text.getvalue())
    raw = pstats.Stats(profiler).stats

    def where(func) -> str:
        file, line, name = func
        file = os.path.relpath(file, REPO_DIR) if file.startswith(str(REPO_DIR)) else file
        for marker in ("site-packages/", "lib/python3"):
            if marker in file:
                file = file.split(marker, 1)[1]
        return f"{file}:{line} {name}"

    def rows(key) -> list[dict]:
        ordered = sorted(raw.items(), key=lambda item: item[1][key], reverse=True)[:top]
        return [{"function": where(func), "calls": nc, "own_s": round(tt, 3), "cumulative_s": round(ct, 3)}
                for func, (_cc, nc, tt, ct, _callers) in ordered]

    # The project's own functions (not the venv's) by cumulative time: where in our code the time goes.
    mine = sorted(((f, s) for f, s in raw.items() if f[0].startswith(str(REPO_DIR)) and "/.venv/" not in f[0] and "/bench/" not in f[0]),
                  key=lambda item: item[1][3], reverse=True)[:top]
    ours = [{"function": where(f), "calls": s[1], "own_s": round(s[2], 3), "cumulative_s": round(s[3], 3)} for f, s in mine]
    return {"seconds_profiled": round(seconds, 2), "by_own_time": rows(2), "by_cumulative_time": rows(3), "ours_by_cumulative_time": ours,
            "text": str(path)}
