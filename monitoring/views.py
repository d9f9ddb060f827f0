"""HTML pages of monitoring: which versions drift, one drift report with its charts."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from mlops_site.exceptions import DomainError, NotFound
from mlops_site.roles import EDITOR, has_role
from registry import selectors as registry_selectors

from . import alerts, charts, selectors, services
from .models import AlertEvent, AlertRule, Reference


def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "monitoring/overview.html", {"versions": list(selectors.monitored_versions())})


def report_detail(request: HttpRequest, report_id: int) -> HttpResponse:
    try:
        report = selectors.report_get(report_id=report_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    history = [{"end": r.window_end.isoformat(), "results": r.results} for r in selectors.report_history(model_version_id=report.model_version_id)]
    results = report.results
    chosen = request.GET.get("column") or (results[0]["column"] if results else "")
    selected = next((r for r in results if r["column"] == chosen), None)
    order = {"significant": 0, "moderate": 1, "none": 2, "no_data": 3}
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
    try:
        found = registry_selectors.version_get(model_name=name, version=version)
    except NotFound as exc:
        raise Http404(exc.message) from None
    context = {
        "version": found,
        "reference": Reference.objects.filter(model_version=found).first(),
        "reports": selectors.report_history(model_version_id=found.pk, limit=20)[::-1],  # newest first
        "events": selectors.event_count(model_version_id=found.pk),
    }
    return render(request, "monitoring/version.html", context)


@require_POST
def reference_upload(request: HttpRequest, name: str, version: int) -> HttpResponse:
    found = registry_selectors.version_get(model_name=name, version=version)
    upload = request.FILES.get("reference")
    try:
        if upload is None:
            raise DomainError("Choose a reference file: CSV with a header row, Parquet or JSON lines.")
        reference = services.reference_set_from_file(model_version=found, data=upload.read(), actor=request.user, filename=upload.name)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Reference set: {reference.rows} rows, {len(reference.columns)} columns.")
    return redirect("monitoring:version", name=name, version=version)


@require_POST
def reference_from_window(request: HttpRequest, name: str, version: int) -> HttpResponse:
    """The version's own traffic of the last N hours becomes its reference."""
    found = registry_selectors.version_get(model_name=name, version=version)
    raw = request.POST.get("hours", "")
    hours = int(raw) if raw.isascii() and raw.isdigit() else 0
    end = timezone.now()
    try:
        if not 1 <= hours <= 24 * 90:
            raise DomainError("Choose a window of 1 hour to 90 days.")
        reference = services.reference_set_from_window(model_version=found, start=end - timedelta(hours=hours), end=end, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Reference set from the last {hours} hours of traffic: {reference.rows} rows.")
    return redirect("monitoring:version", name=name, version=version)


@require_POST
def report_request(request: HttpRequest, name: str, version: int) -> HttpResponse:
    found = registry_selectors.version_get(model_name=name, version=version)
    if not has_role(request.user, EDITOR):
        messages.error(request, "Running a report needs the editor role.")
        return redirect("monitoring:version", name=name, version=version)
    hours = int(request.POST.get("hours", "24")) if request.POST.get("hours", "24").isdigit() else 24
    end = timezone.now()
    try:
        report = services.drift_report_request(model_version=found, start=end - timedelta(hours=max(1, min(hours, 24 * 90))), end=end, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("monitoring:version", name=name, version=version)
    messages.success(request, f"Drift report #{report.pk} queued; a worker computes it.")
    return redirect("monitoring:report", report_id=report.pk)


def alert_list(request: HttpRequest) -> HttpResponse:
    from .ops_alerts import OPS_METRICS

    rules = list(AlertRule.objects.select_related("model", "prompt", "acknowledged_by").order_by("model__name", "prompt__name", "name"))
    events = list(AlertEvent.objects.select_related("rule__model", "rule__prompt").order_by("-at", "-id")[:100])
    return render(request, "monitoring/alerts.html", {"rules": rules, "events": events, "now": timezone.now(), "ops_metrics": OPS_METRICS})


@require_POST
def alert_acknowledge(request: HttpRequest, rule_id: int) -> HttpResponse:
    try:
        alerts.alert_acknowledge(rule_id=rule_id, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Acknowledged.")
    return redirect("monitoring:alerts")


@require_POST
def alert_silence(request: HttpRequest, rule_id: int) -> HttpResponse:
    raw = request.POST.get("hours", "")
    try:
        rule = alerts.alert_silence(rule_id=rule_id, hours=int(raw) if raw.isascii() and raw.isdigit() else -1, actor=request.user)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Silenced until {rule.silenced_until:%Y-%m-%d %H:%M} UTC." if rule.silenced_until else "Silence ended.")
    return redirect("monitoring:alerts")
