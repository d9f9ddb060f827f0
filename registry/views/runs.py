"""Pages of training runs: the run groups (MLflow's experiments), a group's runs, runs side by side, one run, and a
run's artifact files.

Every page reads a fixed number of queries whatever the number of runs, params or metric points: params, latest
metrics and produced versions are read for the whole page at once. Metric histories can hold tens of thousands of
points per key; they are read as plain tuples and each chart line is thinned to MAX_POINTS.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from mlops_site.charts import MAX_POINTS
from mlops_site.exceptions import NotFound, ValidationFailed
from mlops_site.formatting import number_text
from mlops_site.pages import get_or_404, paginate, querystring

from .. import charts, selectors
from ..models import Run, RunStatus
from ..models.runs import Lifecycle
from ..services.run_artifacts import artifact_open, folder_files

MAX_COMPARE = 20  # runs on the compare page: more lines than that make no readable chart
MAX_COLUMNS = 8  # param and metric columns each in a group's runs table; every key is on the run's own page
MAX_CHARTS = 30  # metric charts on a page; the tables list every key
MAX_ARTIFACTS = 500  # files listed on a run's page
SYSTEM_TAG_PREFIX = "mlflow."


# --- what the pages show ----------------------------------------------------------------------------------------------


def _time(ms: int | None) -> datetime | None:
    """A client's milliseconds since the epoch as a UTC time (None when unknown or out of range)."""
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _duration(run: Run) -> str:
    if run.start_time is None or run.end_time is None or run.end_time < run.start_time:
        return ""
    seconds = (run.end_time - run.start_time) / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _columns(maps: list[dict], limit: int = MAX_COLUMNS) -> tuple[list[str], int]:
    """The keys to show as columns: those whose values differ between the rows first (what tells runs apart), then
    the rest, alphabetically, at most `limit`; and how many keys were left out."""
    keys = sorted({k for m in maps for k in m})
    missing = object()
    differing = [k for k in keys if len({repr(m.get(k, missing)) for m in maps}) > 1]
    ordered = differing + [k for k in keys if k not in differing]
    return sorted(ordered[:limit]), max(0, len(keys) - limit)


def _metric_text(latest: tuple[float, int] | None) -> str:
    if latest is None:
        return "—"
    value = latest[0]
    return str(value).lower() if not math.isfinite(value) else number_text(value)


def _run_label(run: Run, duplicated: set[str]) -> str:
    name = run.name or run.run_id[:8]
    return f"{name} ({run.run_id[:8]})" if run.name in duplicated else name


# --- pages ------------------------------------------------------------------------------------------------------------


def run_group_list(request: HttpRequest) -> HttpResponse:
    """Every run group with its number of active runs and the start of its latest run."""
    page = paginate(request, selectors.run_group_list())
    for group in page:
        group.last_run_at = _time(group.last_run)
    return render(request, "registry/runs/run_group_list.html", {"page": page, "deleted": Lifecycle.DELETED})


def run_group_detail(request: HttpRequest, group_id: int) -> HttpResponse:
    """A group's active runs, newest first: key params and latest metrics as columns, the versions each produced."""
    group = get_or_404(selectors.run_group_get, group_id=group_id)
    status = request.GET.get("status", "")
    status = status if status in RunStatus.values else ""
    page = paginate(request, selectors.run_list(group=group, status=status))
    shown = list(page)
    params, latest, versions = selectors.run_params(runs=shown), selectors.run_latest_values(runs=shown), selectors.run_versions(runs=shown)
    param_keys, params_left = _columns(list(params.values()))
    metric_keys, metrics_left = _columns([{k: v for k, (v, _) in m.items()} for m in latest.values()])
    rows = [
        {
            "run": run,
            "start": _time(run.start_time),
            "duration": _duration(run),
            "params": [params[run.pk].get(k, "—") for k in param_keys],
            "metrics": [_metric_text(latest[run.pk].get(k)) for k in metric_keys],
            "versions": versions.get(run.pk, []),
        }
        for run in shown
    ]
    context = {
        "group": group,
        "page": page,
        "rows": rows,
        "param_keys": param_keys,
        "metric_keys": metric_keys,
        "params_left": params_left,
        "metrics_left": metrics_left,
        "colspan": 7 + len(param_keys) + len(metric_keys),
        "status": status,
        "statuses": RunStatus.values,
        "qs": querystring(request),
        "max_compare": MAX_COMPARE,
    }
    return render(request, "registry/runs/run_group_detail.html", context)


def _diff_rows(keys: list[str], maps: list[dict], text=str) -> list[dict]:
    missing = object()
    rows = []
    for key in keys:
        values = [m.get(key, missing) for m in maps]
        rows.append(
            {
                "key": key,
                "values": ["—" if v is missing else text(v) for v in values],
                "differs": len({repr(v) for v in values}) > 1,
            }
        )
    return rows


def run_compare(request: HttpRequest) -> HttpResponse:
    """Runs side by side (`?run=<run_id>&run=<run_id>`, at most MAX_COMPARE): params and latest metrics with the
    differing rows marked, and one chart per metric with a line per run."""
    ids = list(dict.fromkeys(r.strip() for r in request.GET.getlist("run") if r.strip()))
    context = {"max_compare": MAX_COMPARE, "runs": [], "error": ""}
    if len(ids) > MAX_COMPARE:
        context["error"] = f"{len(ids)} runs were asked for; at most {MAX_COMPARE} runs can be compared at once."
        return render(request, "registry/runs/run_compare.html", context, status=400)
    try:
        runs = selectors.runs_get_many(run_ids=ids)
    except NotFound as exc:
        context["error"] = exc.message
        return render(request, "registry/runs/run_compare.html", context, status=400)
    params, latest = selectors.run_params(runs=runs), selectors.run_latest_values(runs=runs)
    names = [run.name for run in runs]
    duplicated = {n for n in names if n and names.count(n) > 1}
    labels = [_run_label(run, duplicated) for run in runs]
    param_maps = [params[run.pk] for run in runs]
    metric_maps = [latest[run.pk] for run in runs]
    metric_keys = sorted({k for m in metric_maps for k in m})
    chart_keys = metric_keys[:MAX_CHARTS]
    histories = selectors.run_metric_histories(runs=runs, keys=chart_keys)
    figures = []
    for key in chart_keys:
        lines = [(label, *histories[key][run.pk]) for run, label in zip(runs, labels, strict=True) if run.pk in histories[key]]
        figures.append({"key": key, "id": f"metric-figure-{len(figures)}", "figure": charts.metric_steps(key, lines)})
    context.update(
        {
            "runs": list(zip(runs, labels, strict=True)),
            "param_rows": _diff_rows(sorted({k for m in param_maps for k in m}), param_maps),
            "metric_rows": _diff_rows(
                metric_keys, [{k: v for k, (v, _) in m.items()} for m in metric_maps], text=lambda v: _metric_text((v, 0))
            ),
            "figures": figures,
            "charts_left": len(metric_keys) - len(chart_keys),
            "thinned": any(len(steps) > MAX_POINTS for h in histories.values() for steps, _ in h.values()),
            "max_points": MAX_POINTS,
        }
    )
    return render(request, "registry/runs/run_compare.html", context)


def run_detail(request: HttpRequest, run_id: str) -> HttpResponse:
    """One run: what it is, its params, tags, metrics with their history, its files, logged models and versions."""
    run = get_or_404(selectors.run_get, run_id=run_id)
    params = sorted(selectors.run_params(runs=[run])[run.pk].items())
    tags = selectors.run_tags(run=run)
    latest = selectors.run_latest_values(runs=[run])[run.pk]
    keys = sorted(latest)
    histories = selectors.run_metric_histories(runs=[run], keys=keys[:MAX_CHARTS])
    figures = [
        {
            "key": key,
            "id": f"metric-figure-{i}",
            "figure": charts.metric_steps(key, [(run.name or run.run_id[:8], *histories[key][run.pk])]),
        }
        for i, key in enumerate(keys[:MAX_CHARTS])
    ]
    counts = {key: len(h[run.pk][0]) for key, h in histories.items()}
    files = folder_files(run.artifact_folder)
    logged_models = selectors.logged_model_list(run=run)
    context = {
        "run": run,
        "group": run.group,
        "start": _time(run.start_time),
        "end": _time(run.end_time),
        "duration": _duration(run),
        "params": params,
        "user_tags": [(k, v) for k, v in tags if not k.startswith(SYSTEM_TAG_PREFIX)],
        "system_tags": [(k, v) for k, v in tags if k.startswith(SYSTEM_TAG_PREFIX)],
        "metric_rows": [{"key": k, "value": _metric_text(latest[k]), "step": latest[k][1], "points": counts.get(k)} for k in keys],
        "figures": figures,
        "charts_left": len(keys) - len(figures),
        "thinned": any(n > MAX_POINTS for n in counts.values()),
        "max_points": MAX_POINTS,
        "files": files[:MAX_ARTIFACTS],
        "files_left": max(0, len(files) - MAX_ARTIFACTS),
        "logged_models": logged_models,
        "versions": selectors.run_versions(runs=[run]).get(run.pk, []),
    }
    return render(request, "registry/runs/run_detail.html", context)


def run_artifact(request: HttpRequest, run_id: str, path: str) -> HttpResponse:
    """One file of a run's artifacts, as a download. The path is checked by the artifact store's own rules (no `..`,
    no empty or absolute segments), so nothing outside the run's folder can be named."""
    run = get_or_404(selectors.run_get, run_id=run_id)
    try:
        handle, where = artifact_open(f"{run.artifact_folder}/{path}")
    except ValidationFailed:
        raise Http404("Not a path inside this run's artifacts.") from None
    except NotFound:
        raise Http404("No such file in this run's artifacts.") from None
    return FileResponse(handle, as_attachment=True, filename=where.rest.rsplit("/", 1)[-1])
