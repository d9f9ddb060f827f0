"""Benchmark of model evaluation: 1,000,000 predictions with 5 sensitive groups.

    .venv/bin/python bench/evaluation_bench.py            # about 3 min; writes bench/results/evaluation.json

The figures:

1. In memory, on the same arrays, each side in its own fresh subprocess (wall time and peak
   RSS from resource.getrusage): ours, `registry.evaluation.classification_metrics` +
   `fairness_metrics` (numpy/scipy), against scikit-learn (accuracy_score, precision_score,
   recall_score, f1_score, roc_auc_score, confusion_matrix) plus fairlearn
   (demographic_parity_difference, equalized_odds_difference, and a MetricFrame of
   selection_rate / true_positive_rate / false_positive_rate / accuracy_score by group). Each
   side runs once cold (first call in the process) and `--repeat` times warm; the table shows
   the warm median, the ratio is reference / ours, also per part (classification, fairness).
   Most of fairlearn 0.15's time is its own overhead: each metric, per group, receives columns
   rebuilt with np.stack over their values one by one (to allow 2-D labels); passing pandas
   objects instead of numpy arrays does not avoid it. "Extra MB" is the peak RSS minus the RSS
   once the libraries are imported and the arrays loaded: the working memory of the computation.
   Every number (5 metrics, the confusion matrix, both fairness differences, 4 figures x 5 groups)
   must agree to a relative 1e-9; the script exits 1 if one does not.
2. End to end, as a Celery worker runs it: `registry.services.evaluations.evaluation_run` on an
   Evaluation holding the 1M-row CSV (label, prediction, score, group; about 21 MB), in a
   throwaway SQLite database (migrated in the subprocess), with the part spent in
   `registry.tables.read_table` (CSV parsing) and in the two metric functions measured inside the
   same run. Run twice: in a fresh process (first import of pyarrow and scipy included) and again
   (a warm worker). Its figures must equal the in-memory ones (relative 1e-9).

The data (seeded): groups A-E with shares 30/25/20/15/10 % and base rates 30-50 %; the score is
a noisy function of the label and the group, rounded to 1/10,000 (many ties, which ROC AUC must
count half); the prediction is score >= 0.5. The CSV written for the end-to-end run reads back to
exactly the same arrays (checked).

Subcommands (run by the default `all`; each writes a JSON file in the work folder):

  data        the arrays (.npy) and predictions.csv
  ours        registry.evaluation on the arrays (no Django)
  reference   scikit-learn + fairlearn on the arrays
  e2e         migrate a throwaway SQLite database, request the evaluation, run it (SQLITE_PATH set by `all`)
  report      compare, print the table, write bench/results/evaluation.json

Options of `all`: --rows (1,000,000), --repeat (3), --work (default: a temporary folder, deleted
afterwards unless --keep), --results. Not wired into bench/run.sh yet; it needs nothing but the
project's venv (scikit-learn and fairlearn are test dependencies).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import BENCH_DIR, REPO_DIR, peak_rss_mb, write_json
from evaluation_report import cmd_report

SEED = 20_240_607
GROUPS = ("A", "B", "C", "D", "E")
GROUP_SHARES = (0.30, 0.25, 0.20, 0.15, 0.10)
BASE_RATES = (0.30, 0.35, 0.40, 0.45, 0.50)
SCORE_SHIFT = (0.00, 0.02, 0.04, 0.06, 0.10)  # the model favours later groups a little: a visible parity difference
MODEL = "bench-evaluation"


def load_arrays(work: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.load(work / f"{name}.npy") for name in ("y_true", "y_pred", "scores", "groups"))


# --- data ----------------------------------------------------------------------------------------


def cmd_data(args) -> None:
    import io

    import pyarrow as pa
    import pyarrow.csv as pa_csv

    sys.path.insert(0, str(REPO_DIR))
    from registry import tables

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    n = args.rows
    codes = rng.choice(len(GROUPS), size=n, p=GROUP_SHARES)
    groups = np.asarray(GROUPS)[codes]
    y_true = (rng.random(n) < np.asarray(BASE_RATES)[codes]).astype(np.int64)
    raw = 0.3 + 0.35 * y_true + np.asarray(SCORE_SHIFT)[codes] + rng.normal(0, 0.18, n)
    # k / 10000 is the double nearest to the decimal k/10000, as a CSV reader parses it: the CSV reads back exactly.
    scores = np.clip(np.rint(raw * 10_000), 0, 10_000) / 10_000
    y_pred = (scores >= 0.5).astype(np.int64)
    for name, array in (("y_true", y_true), ("y_pred", y_pred), ("scores", scores), ("groups", groups)):
        np.save(work / f"{name}.npy", array)

    buffer = io.BytesIO()
    pa_csv.write_csv(pa.table({"label": y_true, "prediction": y_pred, "score": scores, "group": groups}), buffer)
    data = buffer.getvalue()
    (work / "predictions.csv").write_bytes(data)
    back = tables.read_table(data, filename="predictions.csv")
    same = (np.array_equal(back.columns["label"], y_true) and np.array_equal(back.columns["prediction"], y_pred)
            and np.array_equal(back.columns["score"], scores) and np.array_equal(back.columns["group"], groups))
    if not same:
        raise SystemExit("predictions.csv does not read back to the same arrays")
    meta = {
        "rows": n, "seed": SEED, "groups": dict(zip(GROUPS, np.bincount(codes, minlength=len(GROUPS)).tolist(), strict=True)),
        "base_rates": dict(zip(GROUPS, BASE_RATES, strict=True)), "positives": int(y_true.sum()), "predicted_positives": int(y_pred.sum()),
        "distinct_scores": int(len(np.unique(scores))), "csv_mb": round(len(data) / 1024 / 1024, 1), "csv_reads_back_identical": True,
    }
    write_json(work / "data.json", meta)
    print(f"  data: {n:,} rows, {len(GROUPS)} groups, {meta['distinct_scores']:,} distinct scores; predictions.csv {meta['csv_mb']} MiB")


# --- the two in-memory sides ----------------------------------------------------------------------


def ours_figures(y_true, y_pred, scores, groups) -> tuple[dict, dict]:
    """registry.evaluation, as the evaluation task calls it (positive label chosen by default: 1)."""
    from registry.evaluation import classification_metrics, fairness_metrics

    parts = {}
    t = time.perf_counter()
    c = classification_metrics(y_true, y_pred, scores)
    parts["classification_s"] = time.perf_counter() - t
    t = time.perf_counter()
    f = fairness_metrics(y_true, y_pred, groups)
    parts["fairness_s"] = time.perf_counter() - t
    figures = {
        "accuracy": c.accuracy, "precision": c.precision, "recall": c.recall, "f1": c.f1, "roc_auc": c.roc_auc,
        "confusion": [list(row) for row in c.confusion],
        "demographic_parity_difference": f.demographic_parity_difference, "equalized_odds_difference": f.equalized_odds_difference,
        "by_group": {g.group: {"selection_rate": g.selection_rate, "tpr": g.tpr, "fpr": g.fpr, "accuracy": g.accuracy} for g in f.by_group},
    }
    return figures, parts


def reference_figures(y_true, y_pred, scores, groups) -> tuple[dict, dict]:
    """scikit-learn for the classification metrics, fairlearn for the group figures."""
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn import metrics as sk

    parts = {}
    t = time.perf_counter()
    figures = {
        "accuracy": sk.accuracy_score(y_true, y_pred), "precision": sk.precision_score(y_true, y_pred),
        "recall": sk.recall_score(y_true, y_pred), "f1": sk.f1_score(y_true, y_pred), "roc_auc": sk.roc_auc_score(y_true, scores),
        "confusion": sk.confusion_matrix(y_true, y_pred).tolist(),
    }
    parts["classification_s"] = time.perf_counter() - t
    t = time.perf_counter()
    figures["demographic_parity_difference"] = demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
    figures["equalized_odds_difference"] = equalized_odds_difference(y_true, y_pred, sensitive_features=groups)
    frame = MetricFrame(
        metrics={"selection_rate": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate, "accuracy": sk.accuracy_score},
        y_true=y_true, y_pred=y_pred, sensitive_features=groups,
    )
    by_group = frame.by_group
    parts["fairness_s"] = time.perf_counter() - t
    figures["by_group"] = {str(g): {k: float(by_group.loc[g, k]) for k in ("selection_rate", "tpr", "fpr", "accuracy")} for g in by_group.index}
    return figures, parts


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.item() if isinstance(value, np.generic) else value


def cmd_side(args) -> None:
    """One side, alone in this process: import, load the arrays, one cold run, `repeat` warm runs."""
    sys.path.insert(0, str(REPO_DIR))
    t = time.perf_counter()
    if args.side == "ours":
        import registry.evaluation  # noqa: F401

        compute = ours_figures
    else:
        import fairlearn.metrics  # noqa: F401
        import sklearn.metrics  # noqa: F401

        compute = reference_figures
    import_s = time.perf_counter() - t
    arrays = load_arrays(Path(args.work))
    rss_loaded = peak_rss_mb()
    runs = []
    for _ in range(1 + args.repeat):
        t = time.perf_counter()
        figures, parts = compute(*arrays)
        runs.append({"wall_s": time.perf_counter() - t, **parts})
    warm = runs[1:] or runs
    out = {
        "side": args.side, "import_s": round(import_s, 3), "rss_after_load_mb": rss_loaded, "peak_rss_mb": peak_rss_mb(),
        "cold_s": round(runs[0]["wall_s"], 4), "warm_s": [round(r["wall_s"], 4) for r in warm],
        "median_s": round(statistics.median(r["wall_s"] for r in warm), 4),
        "classification_median_s": round(statistics.median(r["classification_s"] for r in warm), 4),
        "fairness_median_s": round(statistics.median(r["fairness_s"] for r in warm), 4),
        "figures": _plain(figures),
    }
    out["extra_mb"] = round(out["peak_rss_mb"] - rss_loaded, 1)
    write_json(args.out, out)
    print(f"  {args.side}: cold {out['cold_s']:.3f} s, warm median {out['median_s']:.3f} s "
          f"(classification {out['classification_median_s']:.3f} + fairness {out['fairness_median_s']:.3f}); "
          f"peak RSS {out['peak_rss_mb']:.0f} MB (+{out['extra_mb']:.0f} over the loaded arrays); imports {out['import_s']:.2f} s")


# --- end to end -----------------------------------------------------------------------------------


def cmd_e2e(args) -> None:
    """evaluation_request (stores the CSV; the Celery enqueue is left out), then evaluation_run twice, timed by parts."""
    from unittest import mock

    sys.path.insert(0, str(REPO_DIR))
    # Always a throwaway SQLite database in the work folder, never the project's or a configured one.
    os.environ["SQLITE_PATH"] = str(Path(args.work).resolve() / "bench.sqlite3")
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_site.settings")
    import django

    t = time.perf_counter()
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    setup_s = time.perf_counter() - t

    from mlops_site.roles import user_set_role
    from registry import evaluation as numbers
    from registry import tables
    from registry.services import evaluations, model_version_register

    editor = user_set_role(username="bench-editor", role="editor")
    version = model_version_register(model_name=MODEL, actor=editor, description="evaluation bench")
    data = (Path(args.work) / "predictions.csv").read_bytes()

    spent = {"read_table_s": 0.0, "classification_s": 0.0, "fairness_s": 0.0}

    def timed(function, key):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                spent[key] += time.perf_counter() - t
        return wrapper

    # The service looks these up on their modules at call time, so wrapping the module attributes times them inside the run.
    tables.read_table = timed(tables.read_table, "read_table_s")
    numbers.classification_metrics = timed(numbers.classification_metrics, "classification_s")
    numbers.fairness_metrics = timed(numbers.fairness_metrics, "fairness_s")

    runs = []
    rss_before = peak_rss_mb()
    for label in ("fresh process", "again"):
        t = time.perf_counter()
        with mock.patch.object(evaluations, "enqueue_on_commit"):  # no broker: this process runs it itself, timed apart
            requested = evaluations.evaluation_request(kind="model", model_version=version, data=data, filename="predictions.csv",
                                                       options={"group_column": "group"}, actor=editor)
        request_s = time.perf_counter() - t
        for key in spent:
            spent[key] = 0.0
        t = time.perf_counter()
        done = evaluations.evaluation_run(evaluation_id=requested.pk)
        run_s = time.perf_counter() - t
        if done is None or done.status != "done":
            raise SystemExit(f"evaluation {requested.pk} did not finish: {getattr(done, 'status', None)} {getattr(done, 'error', '')}")
        parts = {k: round(v, 4) for k, v in spent.items()}
        parts["other_s"] = round(run_s - sum(spent.values()), 4)  # claim, load the stored CSV, column checks, save the result
        runs.append({"label": label, "request_s": round(request_s, 4), "run_s": round(run_s, 4), **parts})
        print(f"  e2e ({label}): evaluation_request {request_s:.2f} s; evaluation_run {run_s:.2f} s = read_table {parts['read_table_s']:.2f} "
              f"+ classification {parts['classification_s']:.2f} + fairness {parts['fairness_s']:.2f} + other {parts['other_s']:.2f}")
    classification = done.details["classification"]
    fairness = done.details["fairness"]
    figures = {
        **{k: classification[k] for k in ("accuracy", "precision", "recall", "f1", "roc_auc")}, "confusion": classification["confusion"],
        "demographic_parity_difference": fairness["demographic_parity_difference"],
        "equalized_odds_difference": fairness["equalized_odds_difference"],
        "by_group": {g["group"]: {k: g[k] for k in ("selection_rate", "tpr", "fpr", "accuracy")} for g in fairness["by_group"]},
    }
    write_json(args.out, {"setup_s": round(setup_s, 2), "csv_mb": round(len(data) / 1024 / 1024, 1), "rss_before_runs_mb": rss_before,
                          "peak_rss_mb": peak_rss_mb(), "runs": runs, "figures": figures, "database": os.environ.get("SQLITE_PATH")})


# --- all ------------------------------------------------------------------------------------------


def cmd_all(args) -> int:
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="mlops-evaluation-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, str(Path(__file__).resolve())]
    try:
        steps = [
            ["data", "--work", str(work), "--rows", str(args.rows)],
            ["side", "ours", "--work", str(work), "--repeat", str(args.repeat), "--out", str(work / "ours.json")],
            ["side", "reference", "--work", str(work), "--repeat", str(args.repeat), "--out", str(work / "reference.json")],
            ["e2e", "--work", str(work), "--out", str(work / "e2e.json")],
        ]
        for step in steps:
            subprocess.run(me + step, check=True, cwd=REPO_DIR)
        return cmd_report(argparse.Namespace(work=str(work), results=args.results))
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("all")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--work")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--results", default=str(BENCH_DIR / "results" / "evaluation.json"))
    p = sub.add_parser("data")
    p.add_argument("--work", required=True)
    p.add_argument("--rows", type=int, default=1_000_000)
    p = sub.add_parser("side")
    p.add_argument("side", choices=("ours", "reference"))
    p.add_argument("--work", required=True)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", required=True)
    p = sub.add_parser("e2e")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--results", default=str(BENCH_DIR / "results" / "evaluation.json"))
    args = parser.parse_args(sys.argv[1:] or ["all"])
    if args.command == "all":
        return cmd_all(args)
    if args.command == "report":
        return cmd_report(args)
    {"data": cmd_data, "side": cmd_side, "e2e": cmd_e2e}[args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
