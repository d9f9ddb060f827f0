"""Model performance once labels arrive (services/labels.py joins them to events by event_id): accuracy / F1 / ROC AUC
per window beside the version's evaluation baseline. A drop of more than 5 % is concept drift.

Beside the metrics each window keeps how much of it is labelled (labelled events / events) and how
long labels took (from an event's timestamp to the moment its label was stored, or the event received
when the label came inside it: median and P95).

Predictions that are probabilities (numbers in [0, 1]) against 0/1 labels are scored as a binary
task: the class is prediction >= 0.5 and the probability is the ROC AUC score. Anything else
(class names, numbers outside [0, 1]) is compared as labels, with macro averages for more than two.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
from django.db.models import Count
from django.db.models.functions import Coalesce
from django.utils import timezone

from registry.evaluation import EvaluationError, classification_metrics
from registry.models import ModelVersion

from ..models import Event, PerformanceWindow

BASELINE_KEYS = {"accuracy": ("accuracy", "acc"), "f1": ("f1", "f1_score"), "roc_auc": ("roc_auc", "auc")}
WINDOW = timedelta(hours=24)


def _as_task(predictions: list, labels: list) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in predictions)
    label_values = {int(v) if isinstance(v, bool) else v for v in labels}
    if numeric and label_values <= {0, 1} and all(0 <= v <= 1 for v in predictions):
        scores = np.asarray(predictions, dtype=np.float64)
        return np.asarray([int(v) for v in labels]), (scores >= 0.5).astype(int), scores
    return np.asarray([str(v) for v in labels]), np.asarray([str(v) for v in predictions]), None


def baseline_of(version: ModelVersion) -> dict[str, float]:
    """The version's registered metrics that a window is compared with (accuracy, f1, roc_auc or auc)."""
    metrics = version.metrics or {}
    out = {}
    for key, names in BASELINE_KEYS.items():
        for name in names:
            value = metrics.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
                out[key] = float(value)
                break
    return out


def _label_delays(pairs: list[tuple[datetime, datetime | None]]) -> dict[str, float | None]:
    """Median and P95 (numpy's default linear interpolation) of label time - event time, in seconds, over the
    labels whose time is known. A label can only follow a stored event, so a negative delay is a client
    clock ahead of ours: counted as 0."""
    delays = np.asarray([max((at - ts).total_seconds(), 0.0) for ts, at in pairs if at is not None], dtype=np.float64)
    if not delays.size:
        return {"label_delay_p50_s": None, "label_delay_p95_s": None}
    p50, p95 = np.quantile(delays, [0.5, 0.95])
    return {"label_delay_p50_s": float(p50), "label_delay_p95_s": float(p95)}


def performance_compute(*, model_version: ModelVersion, start: datetime, end: datetime) -> PerformanceWindow:
    """Accuracy, F1 and ROC AUC of the version's labelled events in [start, end), and the relative
    drop from its baseline for each metric both have. Stored (replacing a row for the same window)."""
    in_window = Event.objects.filter(model_version=model_version, timestamp__gte=start, timestamp__lt=end)
    events = in_window.aggregate(n=Count("pk"))["n"]
    # A label sent inside its event was known when the event was received.
    labelled = in_window.filter(label__isnull=False, prediction__isnull=False)
    rows = list(labelled.values_list("prediction", "label", "timestamp", Coalesce("labelled_at", "received_at")))
    fields = {"events": events, "labelled": len(rows), "accuracy": None, "f1": None, "roc_auc": None, "drops": {}, "note": "",
              "computed_at": timezone.now(), **_label_delays([(ts, at) for _, _, ts, at in rows])}
    baseline = baseline_of(model_version)
    fields["baseline"] = baseline
    if not rows:
        fields["note"] = "no labelled events in the window"
    else:
        y_true, y_pred, scores = _as_task([row[0] for row in rows], [row[1] for row in rows])
        try:
            result = classification_metrics(y_true, y_pred, scores)
        except EvaluationError as exc:
            fields["note"] = str(exc)
        else:
            fields.update(accuracy=result.accuracy, f1=result.f1, roc_auc=result.roc_auc, note=result.roc_auc_note if scores is not None else "")
            fields["drops"] = {key: (base - fields[key]) / base for key, base in baseline.items() if fields[key] is not None}
    window, _ = PerformanceWindow.objects.update_or_create(model_version=model_version, window_start=start, window_end=end, defaults=fields)
    return window


def performance_windows_schedule(*, now: datetime | None = None) -> int:
    """Beat, hourly: the last 24 hours of every model version that has labelled events in them."""
    end = (now or timezone.now()).replace(second=0, microsecond=0)
    start = end - WINDOW
    version_ids = set(
        Event.objects.filter(timestamp__gte=start, timestamp__lt=end, label__isnull=False, model_version__isnull=False)
        .values_list("model_version_id", flat=True).distinct()
    )
    for version in ModelVersion.objects.filter(pk__in=version_ids).select_related("model"):
        performance_compute(model_version=version, start=start, end=end)
    return len(version_ids)
