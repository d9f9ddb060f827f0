"""Drift reports: a row per report, computed by a Celery worker, over a window of a version's traffic.

Requested by the "Run drift report now" button, the API, or hourly and daily by beat
(`drift_reports_schedule`). A worker claims the row with a conditional UPDATE, so a second delivery
of the same message does nothing; a report left `running` by a dead worker for more than STALE_RUN
may be claimed again (services/sweeps.py queues it). A finished report's alerts are evaluated in the
same transaction as its result.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from mlops_site.exceptions import DomainError, ValidationFailed
from mlops_site.queue import enqueue_on_commit
from mlops_site.roles import EDITOR, require_role
from mlops_site.runs import run_time_out, runs_give_up
from registry import validation
from registry.models import DatasetSchema, ModelVersion

from .. import columnar, drift
from ..models import DriftReport, FeatureBatch, Reference, ReportStatus
from ..selectors.drift import reference_columns, window_columns
from .alerts import alerts_evaluate

STALE_RUN = timedelta(minutes=10)
PREDICTION_PSI_THRESHOLD = 0.2  # the default: prediction drift is PSI > 0.2 (features: 0.25)
OUTPUT_COLUMNS = {columnar.PREDICTION: "prediction", columnar.LABEL: "label"}


def drift_report_run(*, report_id: int) -> DriftReport | None:
    """Compute one report. Claimed with a conditional UPDATE, so a second delivery of a finished report does nothing.

    A report left `running` by a worker that died (started more than 10 minutes
    ago) may be claimed again: `stuck_work_sweep` (services/sweeps.py) queues it.
    """
    now = timezone.now()
    drift_reports_give_up(DriftReport.objects.filter(pk=report_id), now=now)
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
                alerts_evaluate(report=DriftReport.objects.select_related("model_version__model").get(pk=report_id))
    except DomainError as exc:  # bad input (no reference): say so, nothing to retry
        DriftReport.objects.filter(pk=report_id).update(status=ReportStatus.FAILED, finished_at=timezone.now(), error=exc.message[:2000])
    except Exception as exc:  # the report says what went wrong; the task decides on retries
        DriftReport.objects.filter(pk=report_id).update(status=ReportStatus.FAILED, finished_at=timezone.now(), error=str(exc)[:2000])
        raise
    return DriftReport.objects.select_related("model_version__model").get(pk=report_id)


def drift_report_time_out(*, report_id: int) -> None:
    """A report interrupted at its soft time limit (the task catches it): failed for good, saying so."""
    run_time_out(DriftReport.objects.filter(pk=report_id), soft_limit_s=settings.CELERY_TASK_SOFT_TIME_LIMIT)


def drift_reports_give_up(reports: QuerySet, *, now: datetime | None = None) -> int:
    """Reports that lost their worker MAX_ATTEMPTS times (mlops_site.runs): failed instead of claimed again."""
    return runs_give_up(reports, stale_after=STALE_RUN, time_limit_s=settings.CELERY_TASK_TIME_LIMIT, now=now)


def _schema_check(report: DriftReport, current: dict[str, np.ndarray]) -> dict:
    """The window's features against the model's dataset schema (upstream drift: new, missing or mistyped
    columns, values out of range, unknown categories, too many nulls); {} when the model has none."""
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
    """Queue one report over the last `hours` for each version that has a reference and events in that window."""
    end = now or timezone.now()
    start = end - timedelta(hours=hours)
    version_ids = set(Reference.objects.values_list("model_version_id", flat=True)) & set(
        FeatureBatch.objects.filter(last_ts__gte=start, first_ts__lt=end).values_list("model_version_id", flat=True)
    )
    for version in ModelVersion.objects.filter(pk__in=version_ids).select_related("model"):
        drift_report_request(model_version=version, start=start, end=end)
    return len(version_ids)
