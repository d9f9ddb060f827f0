"""A model version's performance page: accuracy, F1 and ROC AUC of its labelled windows beside its baseline and
the alert line, how much of its traffic is labelled and how late the labels come, and the rules that read them.

The windows are the hourly ones of services/performance.py (each the 24 hours before its end); the page shows
those that end in the chosen time range (`?range=24h|7d|30d` or `?start=&end=`, as the operations pages).
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from mlops_site.pages import get_or_404
from registry import selectors as registry_selectors

from .. import charts, selectors
from ..services.ops_alerts import DROP_FIELD, MODEL_DEFAULTS
from ..services.performance import WINDOW, baseline_of
from .operations import chart_entry, range_picker, window_from

METRICS = [("accuracy", "Accuracy"), ("f1", "F1"), ("roc_auc", "ROC AUC")]
RULE_OF = {field: metric for metric, field in DROP_FIELD.items()}  # "accuracy" -> accuracy_drop
TABLE_ROWS = 48


def performance(request: HttpRequest, name: str, version: int) -> HttpResponse:
    found = get_or_404(registry_selectors.version_get, model_name=name, version=version)
    window = window_from(request, timezone.now())
    windows = selectors.performance_window_list(model_version_id=found.pk, start=window.start, end=window.end)
    rules = selectors.performance_rule_list(version=found, metrics=DROP_FIELD)
    baseline = baseline_of(found)
    defaults = {metric: threshold for _, metric, _, threshold in MODEL_DEFAULTS}
    limits = {
        key: next((r.threshold for r in rules if r.enabled and r.metric == RULE_OF[key]), defaults[RULE_OF[key]]) for key, _ in METRICS
    }
    labelled = [w for w in windows if w.labelled]
    x = [w.window_end for w in windows]
    figures, unmeasured = [], []
    if labelled:
        for key, title in METRICS:
            values = [getattr(w, key) for w in windows]
            if all(v is None for v in values):
                unmeasured.append(title)
                continue
            figures.append(
                chart_entry(
                    key, charts.performance_metric(title=title, x=x, values=values, baseline=baseline.get(key), drop_limit=limits[key])
                )
            )
        figures += [
            chart_entry(
                "labelled-share",
                charts.time_series(
                    title="Labelled share",
                    x=x,
                    series={"labelled / events": [w.labelled_share for w in windows]},
                    y_title="",
                    y_format=".0%",
                ),
            ),
            chart_entry(
                "label-delay",
                charts.time_series(
                    title="Label delay (hours)",
                    x=x,
                    y_title="hours",
                    series={
                        "median": [_hours(w.label_delay_p50_s) for w in windows],
                        "P95": [_hours(w.label_delay_p95_s) for w in windows],
                    },
                ),
            ),
        ]
    context = {
        "version": found,
        "baseline": [
            (title, baseline.get(key), limits[key], baseline[key] * (1 - limits[key]) if key in baseline else None)
            for key, title in METRICS
        ],
        "has_baseline": bool(baseline),
        "windows": windows,
        "labelled": len(labelled),
        "latest": labelled[-1] if labelled else None,
        "table": windows[::-1][:TABLE_ROWS],
        "table_rows": TABLE_ROWS,
        "charts": figures,
        "unmeasured": unmeasured,
        "rules": rules,
        "window_hours": int(WINDOW.total_seconds() // 3600),
        **range_picker(request, window, None, None, []),
    }
    return render(request, "monitoring/performance.html", context)


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600
