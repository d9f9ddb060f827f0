"""Read queries of the monitoring pages."""

from __future__ import annotations

from django.db.models import Count, OuterRef, Q, QuerySet, Subquery

from mlops_site.exceptions import NotFound
from registry.models import ModelVersion

from .models import DriftReport, Event, FeatureBatch, Reference


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
    rows = list(DriftReport.objects.filter(model_version_id=model_version_id, status="done").order_by("-window_end")[:limit])
    return rows[::-1]


def event_count(*, model_version_id: int) -> int:
    return Event.objects.filter(model_version_id=model_version_id).aggregate(n=Count("pk"))["n"]
