"""Writes of the monitoring app: set a reference, run a drift report. Event ingestion is in ingestion.py."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict
from datetime import timedelta

import numpy as np
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from mlops_site.exceptions import DomainError, ValidationFailed
from mlops_site.queue import enqueue_on_commit
from mlops_site.roles import EDITOR, require_role
from registry import tables
from registry.models import ModelVersion

from . import columnar, drift

# Ingestion moved to ingestion.py; its names stay importable from here because views, the API, commands,
# tests and bench/ call `services.events_ingest` (and bench/ops_bench.py reads EVENT_COLUMNS).
from .ingestion import (  # noqa: F401
    CHUNK,
    EVENT_COLUMNS,
    IngestResult,
    _event_rows,
    _feature_batches,
    _insert_events,
    _invalid,
    _known_event_ids,
    _resolve_versions,
    _row_adapters,
    events_ingest,
)
from .models import DriftReport, FeatureBatch, Reference, ReferenceSource, ReportStatus


def _profile(columns: dict[str, np.ndarray]) -> tuple[dict, bytes]:
    """Prepare each column once (sorted values or category counts) and pack them for storage."""
    meta, arrays = {}, {}
    for name, values in columns.items():
        if name == columnar.TS:
            continue
        kind = "categorical" if values.dtype.kind in "US" else "numeric"
        prepared = drift.prepare_reference(values if kind == "numeric" else np.where(values == "", None, values).astype(object), kind)
        meta[name] = {"kind": kind, "missing": prepared.missing, "n": prepared.n, "std": prepared.std}
        if kind == "numeric":
            arrays[f"{name}::sorted"] = prepared.sorted_values if prepared.sorted_values is not None else np.array([], float)
            if prepared.cuts is not None:
                arrays[f"{name}::cuts"] = prepared.cuts
        else:
            arrays[f"{name}::categories"] = np.asarray(prepared.categories, dtype=str)
            arrays[f"{name}::counts"] = np.asarray(prepared.counts if prepared.counts is not None else [], dtype=np.int64)
    return meta, columnar.encode(arrays)


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


def window_columns(*, model_version_id: int, start, end) -> dict[str, np.ndarray]:
    """Every stored feature (and prediction) value of a version in [start, end), one array per column."""
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
        names = set(columns) - {columnar.TS}
        for name in names:
            kinds[name] = "categorical" if columns[name].dtype.kind in "US" else "numeric"
        for name in names | set(parts):
            if name in columns:
                parts[name].append(columns[name][keep])
            else:  # a column this batch did not have: missing values for its rows
                rows = len(columns[columnar.TS][keep])
                parts[name].append(np.full(rows, "" if kinds.get(name) == "categorical" else np.nan))
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}


def reference_set_from_columns(*, model_version: ModelVersion, columns: dict[str, np.ndarray], source: str, description: str, actor) -> Reference:
    """Set (or replace) the reference distribution of a model version, prepared once now.

    Columns named `prediction` and `label` are the model's output and the
    ground truth: they are compared with the events' `prediction` (prediction
    drift) and `label` (label drift, once labels arrive).
    """
    require_role(actor, EDITOR, "Setting a reference")
    renames = {"prediction": columnar.PREDICTION, "label": columnar.LABEL}
    columns = {(renames[k] if k in renames and renames[k] not in columns else k): v for k, v in columns.items()}
    rows = max((len(v) for v in columns.values()), default=0)
    if rows == 0:
        raise ValidationFailed("The reference has no rows.")
    meta, profile = _profile(columns)
    from .alerts import default_rules_ensure

    with transaction.atomic():
        Reference.objects.filter(model_version=model_version).delete()
        reference = Reference.objects.create(model_version=model_version, source=source, description=description[:300], rows=rows, columns=meta, profile=profile)
        default_rules_ensure(model=model_version.model)
    return reference


def reference_set_from_file(*, model_version: ModelVersion, data: bytes, actor, filename: str = "") -> Reference:
    """A reference file: CSV with a header row, JSON lines or Parquet (registry.tables reads them).
    Numbers become numeric columns, anything else categorical; empty cells are missing."""
    require_role(actor, EDITOR, "Setting a reference")
    try:
        table = tables.read_table(data, filename=filename)
    except tables.TableError as exc:
        raise ValidationFailed(f"Reference file refused: {exc}") from None
    return reference_set_from_columns(
        model_version=model_version, columns=table.columns, source=ReferenceSource.UPLOAD, description=filename or f"{table.format} upload", actor=actor
    )


STALE_RUN = timedelta(minutes=10)
PREDICTION_PSI_THRESHOLD = 0.2  # METRICS.md: prediction drift PSI > 0.2 (features: 0.25)
OUTPUT_COLUMNS = {columnar.PREDICTION: "prediction", columnar.LABEL: "label"}


def reference_set_from_window(*, model_version: ModelVersion, start, end, actor) -> Reference:
    """Use a window of the version's own past traffic as its reference (e.g. the first week in production)."""
    columns = window_columns(model_version_id=model_version.pk, start=start, end=end)
    if not columns:
        raise ValidationFailed("No traffic of this version in that window.")
    return reference_set_from_columns(
        model_version=model_version, columns=columns, source=ReferenceSource.WINDOW,
        description=f"traffic {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC", actor=actor,
    )


def drift_report_run(*, report_id: int) -> DriftReport | None:
    """Compute one report. Claimed with a conditional UPDATE, so a second delivery of a finished report does nothing.

    A report left `running` by a worker that died (started more than 10 minutes
    ago) may be claimed again: the sweep in `drift_reports_schedule` queues it.
    """
    now = timezone.now()
    claimable = Q(status__in=[ReportStatus.PENDING, ReportStatus.FAILED]) | Q(status=ReportStatus.RUNNING, started_at__lt=now - STALE_RUN)
    claimed = DriftReport.objects.filter(claimable, pk=report_id).update(status=ReportStatus.RUNNING, started_at=now, attempts=F("attempts") + 1)
    if not claimed:
        return None
    report = DriftReport.objects.get(pk=report_id)
    try:
        reference = Reference.objects.filter(model_version_id=report.model_version_id).first()
        if reference is None:
            raise ValidationFailed("This version has no reference data; set one first.")
        current = window_columns(model_version_id=report.model_version_id, start=report.window_start, end=report.window_end)
        thresholds = {columnar.PREDICTION: PREDICTION_PSI_THRESHOLD}
        profile = reference_columns(reference)
        if columnar.LABEL not in profile:
            current.pop(columnar.LABEL, None)  # no labels in the reference: nothing to compare them with
        results = drift.drift_report(profile, current, thresholds=thresholds) if current else {}
        rows = max((len(v) for v in current.values()), default=0)
        payload = [
            {**asdict(r), "column": OUTPUT_COLUMNS.get(r.column, r.column)}
            for r in sorted(results.values(), key=lambda r: -(r.psi or 0))
        ]
        schema_check = _schema_check(report, current)
        # The result and its alerts commit together: a worker dying between the two would leave a done
        # report whose alerts were never evaluated (the sweep only takes back pending or running ones).
        with transaction.atomic():
            DriftReport.objects.filter(pk=report_id).update(
                status=ReportStatus.DONE, finished_at=timezone.now(), rows=rows, results=payload, error="" if rows else "no data in this window",
                schema_check=schema_check,
                drifted_columns=sum(1 for r in results.values() if r.drifted),
                max_psi=max((r.psi for r in results.values() if r.psi is not None), default=None),
            )
            if rows:
                from .alerts import alerts_evaluate

                alerts_evaluate(report=DriftReport.objects.select_related("model_version__model").get(pk=report_id))
    except DomainError as exc:  # bad input (no reference): say so, nothing to retry
        DriftReport.objects.filter(pk=report_id).update(status=ReportStatus.FAILED, finished_at=timezone.now(), error=exc.message[:2000])
    except Exception as exc:  # the report says what went wrong; the task decides on retries
        DriftReport.objects.filter(pk=report_id).update(status=ReportStatus.FAILED, finished_at=timezone.now(), error=str(exc)[:2000])
        raise
    return DriftReport.objects.select_related("model_version__model").get(pk=report_id)


def _schema_check(report: DriftReport, current: dict[str, np.ndarray]) -> dict:
    """The window's features against the model's dataset schema (upstream drift: new, missing or mistyped
    columns, values out of range, unknown categories, too many nulls); {} when the model has none."""
    from registry import validation
    from registry.models import DatasetSchema

    row = DatasetSchema.objects.filter(model__versions__pk=report.model_version_id).first()
    features = {name: values for name, values in current.items() if not name.startswith("__")}
    if row is None or not features:
        return {}
    return validation.validate_columns(features, row.schema).as_dict()


def drift_report_request(*, model_version: ModelVersion, start, end, actor=None) -> DriftReport:
    """A pending report row; the Celery task runs it after the commit. `actor` None: the scheduler."""
    if actor is not None:
        require_role(actor, EDITOR, "Requesting a drift report")
    if end <= start:
        raise ValidationFailed("The window must end after it starts.")
    report = DriftReport.objects.create(model_version=model_version, window_start=start, window_end=end)
    enqueue_on_commit("monitoring.tasks.drift_report_compute", report.pk)
    return report


def drift_reports_schedule(*, hours: int, now=None) -> int:
    """Queue one report over the last `hours` for each version that has a reference and events in that window.

    Also the sweep for work a broker outage or a dead worker left behind: reports still pending
    after 10 minutes or running for more than 10 minutes, and alert notifications not sent, are
    enqueued again.
    """
    _sweep_stuck_work()
    end = now or timezone.now()
    start = end - timedelta(hours=hours)
    version_ids = set(Reference.objects.values_list("model_version_id", flat=True)) & set(
        FeatureBatch.objects.filter(last_ts__gte=start, first_ts__lt=end).values_list("model_version_id", flat=True)
    )
    for version in ModelVersion.objects.filter(pk__in=version_ids).select_related("model"):
        drift_report_request(model_version=version, start=start, end=end)
    return len(version_ids)


def _sweep_stuck_work() -> None:
    from .models import AlertEvent

    cutoff = timezone.now() - STALE_RUN
    # Pending: its message was lost. Running for longer than STALE_RUN: its worker died (the claim takes it back then).
    stuck = Q(status=ReportStatus.PENDING, requested_at__lt=cutoff) | Q(status=ReportStatus.RUNNING, started_at__lt=cutoff)
    for report_id in DriftReport.objects.filter(stuck).values_list("pk", flat=True)[:500]:
        enqueue_on_commit("monitoring.tasks.drift_report_compute", report_id)
    for event_id in AlertEvent.objects.filter(notified_at__isnull=True, silenced=False, at__lt=cutoff).values_list("pk", flat=True)[:500]:
        enqueue_on_commit("monitoring.tasks.alert_notify", event_id)
