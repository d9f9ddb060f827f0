"""Pages of drift monitoring: which versions drift, a version's monitoring page (its reference and reports),
one drift report with its charts, and the buttons that set a reference or queue a report."""

from __future__ import annotations

from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from mlops_site.exceptions import ValidationFailed
from mlops_site.pages import call_and_redirect, get_or_404
from mlops_site.roles import EDITOR, require_role
from mlops_site.uploads import read_upload
from registry import selectors as registry_selectors
from registry import tables

from .. import charts, selectors, services
from ..drift import Severity
from ..models import Reference


def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "monitoring/overview.html", {"versions": list(selectors.monitored_versions())})


def report_detail(request: HttpRequest, report_id: int) -> HttpResponse:
    report = get_or_404(selectors.report_get, report_id=report_id)
    history = [{"end": r.window_end.isoformat(), "results": r.results} for r in selectors.report_history(model_version_id=report.model_version_id)]
    results = report.results
    chosen = request.GET.get("column") or (results[0]["column"] if results else "")
    selected = next((r for r in results if r["column"] == chosen), None)
    order = {severity: rank for rank, severity in enumerate(Severity)}  # most severe first
    context = {
        "report": report,
        "version": report.model_version,
        "results": sorted(results, key=lambda r: (order.get(r["severity"], 4), -(r.get("psi") or 0))),
        "selected": selected,
        "heatmap": charts.psi_heatmap(history) if history else None,
        "histogram": charts.histogram_overlay(selected) if selected and selected.get("bins") else None,
        "column_history": charts.column_history(history, selected["column"]) if selected and history else None,
    }
    return render(request, "monitoring/report_detail.html", context)


def version_monitoring(request: HttpRequest, name: str, version: int) -> HttpResponse:
    found = get_or_404(registry_selectors.version_get, model_name=name, version=version)
    context = {
        "version": found,
        "reference": Reference.objects.filter(model_version=found).first(),
        "reports": selectors.report_history(model_version_id=found.pk, limit=20)[::-1],  # newest first
        "events": selectors.event_count(model_version_id=found.pk),
    }
    return render(request, "monitoring/version.html", context)


@require_POST
def reference_upload(request: HttpRequest, name: str, version: int) -> HttpResponse:
    found = get_or_404(registry_selectors.version_get, model_name=name, version=version)
    upload = request.FILES.get("reference")

    def set_reference():
        require_role(request.user, EDITOR, "Setting a reference")  # before the upload is read: a viewer's is never opened
        if upload is None:
            raise ValidationFailed("Choose a reference file: CSV with a header row, Parquet or JSON lines.")
        return services.reference_set_from_file(model_version=found, data=read_upload(upload, limit=tables.MAX_TABLE_BYTES), actor=request.user, filename=upload.name)

    return call_and_redirect(
        request, set_reference, success=lambda reference: f"Reference set: {reference.rows} rows, {len(reference.columns)} columns.",
        fallback=reverse("monitoring:version", args=[name, version]),
    )


@require_POST
def reference_from_window(request: HttpRequest, name: str, version: int) -> HttpResponse:
    """The version's own traffic of the last N hours becomes its reference."""
    found = get_or_404(registry_selectors.version_get, model_name=name, version=version)
    raw = request.POST.get("hours", "")
    hours = int(raw) if raw.isascii() and raw.isdigit() else 0
    end = timezone.now()

    def set_reference():
        require_role(request.user, EDITOR, "Setting a reference")  # before the window is judged: a viewer hears of the role
        if not 1 <= hours <= 24 * 90:
            raise ValidationFailed("Choose a window of 1 hour to 90 days.")
        return services.reference_set_from_window(model_version=found, start=end - timedelta(hours=hours), end=end, actor=request.user)

    return call_and_redirect(
        request, set_reference, success=lambda reference: f"Reference set from the last {hours} hours of traffic: {reference.rows} rows.",
        fallback=reverse("monitoring:version", args=[name, version]),
    )


@require_POST
def report_request(request: HttpRequest, name: str, version: int) -> HttpResponse:
    found = get_or_404(registry_selectors.version_get, model_name=name, version=version)
    raw = request.POST.get("hours", "24")
    hours = max(1, min(int(raw) if raw.isascii() and raw.isdigit() else 24, 24 * 90))
    end = timezone.now()
    return call_and_redirect(
        request,
        lambda: services.drift_report_request(model_version=found, start=end - timedelta(hours=hours), end=end, actor=request.user),
        success=lambda report: f"Drift report #{report.pk} queued; a worker computes it.",
        fallback=reverse("monitoring:version", args=[name, version]),
        then=lambda report: reverse("monitoring:report", args=[report.pk]),
    )
