"""The report step of the evaluation bench (bench/evaluation_bench.py): ours against scikit-learn + fairlearn,
numbers compared to a relative 1e-9, the tables, bench/results/evaluation.json."""

from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path

import numpy as np
from common import REPO_DIR, loadavg, print_table, write_json

REL_TOL = 1e-9


def compare(a: dict, b: dict, path: str = "") -> tuple[list[str], float]:
    """Mismatches beyond REL_TOL between two figure trees, and the largest relative difference seen."""
    mismatches, worst = [], 0.0
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path or 'figures'}: keys {sorted(a)} vs {sorted(b)}"], math.inf
        for key in a:
            found, rel = compare(a[key], b[key], f"{path}.{key}" if path else key)
            mismatches += found
            worst = max(worst, rel)
        return mismatches, worst
    if isinstance(a, list) and isinstance(b, list):
        if a != b:
            return [f"{path}: {a} vs {b}"], math.inf
        return [], 0.0
    if a is None or b is None:
        return ([] if a is b else [f"{path}: {a} vs {b}"]), (0.0 if a is b else math.inf)
    rel = 0.0 if a == b else abs(a - b) / max(abs(a), abs(b))
    return ([f"{path}: {a!r} vs {b!r} (relative {rel:.1e})"] if rel > REL_TOL else []), rel


def _environment() -> dict:
    import fairlearn
    import pandas
    import pyarrow
    import scipy
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
            "fairlearn": fairlearn.__version__, "pandas": pandas.__version__, "pyarrow": pyarrow.__version__, "cpus": os.cpu_count(),
            "machine": platform.machine(), "loadavg": loadavg()}


def cmd_report(args) -> int:
    work = Path(args.work)
    data = json.loads((work / "data.json").read_text())
    ours = json.loads((work / "ours.json").read_text())
    ref = json.loads((work / "reference.json").read_text())
    e2e = json.loads((work / "e2e.json").read_text())
    mismatches, worst = compare(ours["figures"], ref["figures"])
    e2e_mismatches, e2e_worst = compare(ours["figures"], e2e["figures"])
    ratio = ref["median_s"] / ours["median_s"] if ours["median_s"] else None
    memory_ratio = ref["extra_mb"] / ours["extra_mb"] if ours["extra_mb"] > 0 else None
    env = _environment()

    print()
    print("=" * 100)
    print("Environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    print(f"Evaluation benchmark: {data['rows']:,} predictions, {len(data['groups'])} groups "
          f"({', '.join(f'{g} {n:,}' for g, n in data['groups'].items())}), {data['distinct_scores']:,} distinct scores (ties).")
    print()
    print_table(
        ["in memory, same arrays, own process each", "warm s", "cold s", "classif. s", "fairness s", "peak MB", "extra MB", "import s"],
        [["ours: registry.evaluation (numpy/scipy)", f"{ours['median_s']:.3f}", f"{ours['cold_s']:.3f}", f"{ours['classification_median_s']:.3f}",
          f"{ours['fairness_median_s']:.3f}", f"{ours['peak_rss_mb']:.0f}", f"{ours['extra_mb']:.0f}", f"{ours['import_s']:.2f}"],
         [f"scikit-learn {env['scikit-learn']} + fairlearn {env['fairlearn']}", f"{ref['median_s']:.3f}", f"{ref['cold_s']:.3f}",
          f"{ref['classification_median_s']:.3f}", f"{ref['fairness_median_s']:.3f}", f"{ref['peak_rss_mb']:.0f}", f"{ref['extra_mb']:.0f}",
          f"{ref['import_s']:.2f}"]],
    )
    print(f"reference / ours: {ratio:.1f}x wall time (warm median of {len(ours['warm_s'])}), "
          + (f"{memory_ratio:.1f}x working memory" if memory_ratio else "working memory not comparable (ours added nothing measurable)"))
    print(f"  by part: scikit-learn / ours classification_metrics {ref['classification_median_s'] / ours['classification_median_s']:.1f}x; "
          f"fairlearn / ours fairness_metrics {ref['fairness_median_s'] / ours['fairness_median_s']:.1f}x (fairlearn calls each metric per "
          f"group through np.stack over the column's values, element by element; most of its time)")
    count = sum(1 for _ in _leaves(ours["figures"]))
    print(f"Numbers agree to relative {REL_TOL:g}: {'yes' if not mismatches else 'NO'} ({count} numbers; largest relative difference {worst:.1e})")
    for line in mismatches[:20]:
        print(f"  MISMATCH {line}")
    print()
    rows = []
    for run in e2e["runs"]:
        rows.append([f"evaluation_run, {run['label']}", f"{run['run_s']:.2f}", f"{run['read_table_s']:.2f}",
                     f"{100 * run['read_table_s'] / run['run_s']:.0f} %", f"{run['classification_s'] + run['fairness_s']:.2f}",
                     f"{run['other_s']:.2f}", f"{run['request_s']:.2f}"])
    print_table(["end to end, SQLite, " + f"{e2e['csv_mb']} MiB CSV", "run s", "read CSV s", "CSV share", "metrics s", "other s", "request s"], rows)
    print(f"peak RSS {e2e['peak_rss_mb']:.0f} MB ({e2e['rss_before_runs_mb']:.0f} MB before the runs, Django loaded and the CSV in memory); "
          f"'other': claim, load the stored CSV, column checks, save; 'request': evaluation_request storing the file (no broker). "
          f"Figures equal to in memory: {'yes' if not e2e_mismatches else 'NO'} (largest relative difference {e2e_worst:.1e})")
    for line in e2e_mismatches[:20]:
        print(f"  MISMATCH {line}")

    result = {
        "environment": env, "data": data, "ours": ours, "reference": ref, "ratio_reference_over_ours": round(ratio, 2) if ratio else None,
        "ratio_working_memory": round(memory_ratio, 2) if memory_ratio else None, "numbers_agree": not mismatches,
        "max_relative_difference": worst, "mismatches": mismatches, "end_to_end": e2e, "end_to_end_agrees": not e2e_mismatches,
        "end_to_end_max_relative_difference": e2e_worst, "relative_tolerance": REL_TOL,
    }
    out = Path(args.results)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, result)
    print(f"Written: {out.relative_to(REPO_DIR) if out.is_relative_to(REPO_DIR) else out}")
    return 1 if mismatches or e2e_mismatches else 0


def _leaves(tree):
    if isinstance(tree, dict):
        for value in tree.values():
            yield from _leaves(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _leaves(value)
    else:
        yield tree


