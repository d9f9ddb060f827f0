"""Reads of drift monitoring: monitored versions, drift reports, and the stored feature values and reference profiles a report compares."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from mlops_site.exceptions import NotFound
from registry.models import ModelVersion

from .. import columnar, drift
from ..models import DriftReport, Event, FeatureBatch, Reference, ReportStatus


def monitored_versions() -> QuerySet[ModelVersion]:
    """Model versions that have a reference or events, with their latest report (subqueries, no N+1)."""
    latest = DriftReport.objects.filter(model_version=OuterRef("pk")).order_by("-window_end", "-id")
    return (
        ModelVersion.objects.filter(Q(pk__in=Reference.objects.values("model_version")) | Q(pk__in=FeatureBatch.objects.values("model_version")))
        .select_related("model")
        .annotate(
            report_id=Subquery(latest.values("pk")[:1]),
            report_status=Subquery(latest.values("status")[:1]),
            report_end=Subquery(latest.values("window_end")[:1]),
            report_drifted=Subquery(latest.values("drifted_columns")[:1]),
            report_max_psi=Subquery(latest.values("max_psi")[:1]),
            report_finished=Subquery(latest.values("finished_at")[:1]),
        )
        .order_by("model__name", "-version")
    )


def reference_get(*, model_version: ModelVersion) -> Reference:
    """The version's reference; NotFound before one is set."""
    reference = Reference.objects.filter(model_version=model_version).first()
    if reference is None:
        raise NotFound(f"Version {model_version.version} of '{model_version.model.name}' has no reference yet.")
    return reference


def report_get(*, report_id: int) -> DriftReport:
    try:
        return DriftReport.objects.select_related("model_version__model").get(pk=report_id)
    except DriftReport.DoesNotExist:
        raise NotFound(f"No drift report {report_id}.") from None


def report_list(*, model_version_id: int) -> QuerySet[DriftReport]:
    """Every report of a version, newest window first (any status)."""
    return DriftReport.objects.filter(model_version_id=model_version_id).select_related("model_version__model").order_by("-window_end", "-id")


def report_history(*, model_version_id: int, limit: int = 48) -> list[DriftReport]:
    """The latest finished reports of a version, oldest first (for the heatmap and the history chart)."""
    rows = list(DriftReport.objects.filter(model_version_id=model_version_id, status=ReportStatus.DONE).order_by("-window_end")[:limit])
    return rows[::-1]


def event_count(*, model_version_id: int) -> int:
    return Event.objects.filter(model_version_id=model_version_id).aggregate(n=Count("pk"))["n"]


def reference_columns(reference: Reference) -> dict[str, drift.ReferenceColumn]:
    """The stored profile back as drift.ReferenceColumn objects (no re-sorting)."""
    arrays = columnar.decode(reference.profile)
    out = {}
    for name, meta in reference.columns.items():
        if meta["kind"] == "numeric":
            values = arrays[f"{name}::sorted"]
            if values.size == 0:
                out[name] = drift.ReferenceColumn(kind="numeric", n=0, missing=meta["missing"])
                continue
            # Cuts and std were computed when the reference was set; older profiles compute them here.
            cuts = arrays[f"{name}::cuts"] if f"{name}::cuts" in arrays else drift.quantile_cuts(values)
            std = meta["std"] if "std" in meta else float(np.std(values))
            out[name] = drift.ReferenceColumn(
                kind="numeric", n=int(values.size), missing=meta["missing"], sorted_values=values, cuts=cuts,
                proportions=drift.bin_proportions(values, cuts), std=std,
            )
        else:
            out[name] = drift.ReferenceColumn(
                kind="categorical", n=meta["n"], missing=meta["missing"],
                categories=tuple(arrays[f"{name}::categories"].tolist()), counts=arrays[f"{name}::counts"],
            )
    return out


def window_labels(*, model_version_id: int, start, end) -> np.ndarray | None:
    """The labels a version received in [start, end), in the events table: sent inside an event (counted at the
    event's time) or later through the labels API (counted when they arrived, `labelled_at`), so late labels feed
    label drift as they feed the performance windows. None when there are none. Two indexed queries."""
    events = Event.objects.filter(model_version_id=model_version_id, label__isnull=False)
    in_events = events.filter(timestamp__gte=start, timestamp__lt=end, labelled_at__isnull=True).values_list("label", flat=True)
    late = events.filter(labelled_at__gte=start, labelled_at__lt=end).values_list("label", flat=True)
    values = [int(v) if isinstance(v, bool) else v for v in [*in_events, *late]]
    return columnar.to_array(values, columnar.column_kind(values)) if values else None


def window_columns(*, model_version_id: int, start, end) -> dict[str, np.ndarray]:
    """Every stored feature and prediction value of a version in [start, end), one array per column, and the labels
    received in the window (`window_labels`: a label column of its own length)."""
    parts: dict[str, list[np.ndarray]] = defaultdict(list)
    kinds: dict[str, str] = {}
    lo, hi = start.timestamp(), end.timestamp()
    batches = FeatureBatch.objects.filter(model_version_id=model_version_id, first_ts__lt=end, last_ts__gte=start).only("data", "columns", "rows")
    for batch in batches.iterator():
        columns = columnar.decode(batch.data)
        keep = (columns[columnar.TS] >= lo) & (columns[columnar.TS] < hi)
        if not keep.any():
            continue
        if keep.all():
            keep = slice(None)  # the whole batch is inside the window: no copy
        names = set(columns) - {columnar.TS, columnar.LABEL}  # labels: from the events table, below
        for name in names:
            kinds[name] = "categorical" if columns[name].dtype.kind in "US" else "numeric"
        for name in names | set(parts):
            if name in columns:
                parts[name].append(columns[name][keep])
            else:  # a column this batch did not have: missing values for its rows
                rows = len(columns[columnar.TS][keep])
                parts[name].append(np.full(rows, "" if kinds.get(name) == "categorical" else np.nan))
    columns = {name: np.concatenate(arrays) for name, arrays in parts.items() if name != columnar.LABEL}
    labels = window_labels(model_version_id=model_version_id, start=start, end=end)
    if labels is not None:
        columns[columnar.LABEL] = labels
    return columns
