"""`/api/v1/` routes of monitoring. A trailing slash is optional on every path."""

from django.urls import re_path

from registry.api.urls import NAME, N

from . import alerts, costs, drift, ingestion

app_name = "monitoring-api"

urlpatterns = [
    re_path(r"^events/?$", ingestion.EventIngestApi.as_view(), name="event-ingest"),
    re_path(r"^labels/?$", ingestion.LabelsApi.as_view(), name="labels"),
    re_path(r"^otel/?$", ingestion.OtelTracesApi.as_view(), name="otel-traces"),
    # where an exporter sends with OTEL_EXPORTER_OTLP_ENDPOINT=.../api/v1/otel (it appends /v1/traces)
    re_path(r"^otel/v1/traces/?$", ingestion.OtlpHttpTracesApi.as_view(), name="otlp-http-traces"),
    re_path(rf"^models/{NAME}/versions/{N}/reference/?$", drift.ReferenceApi.as_view(), name="reference"),
    re_path(rf"^models/{NAME}/versions/{N}/drift-reports/?$", drift.DriftReportListApi.as_view(), name="drift-report-list"),
    re_path(r"^drift-reports/(?P<report_id>[0-9]+)/?$", drift.DriftReportDetailApi.as_view(), name="drift-report-detail"),
    re_path(r"^alerts/?$", alerts.AlertListApi.as_view(), name="alert-list"),
    re_path(r"^alerts/(?P<rule_id>[0-9]+)/acknowledge/?$", alerts.AlertAcknowledgeApi.as_view(), name="alert-acknowledge"),
    re_path(r"^alerts/(?P<rule_id>[0-9]+)/silence/?$", alerts.AlertSilenceApi.as_view(), name="alert-silence"),
    re_path(r"^alerts/(?P<rule_id>[0-9]+)/action/?$", alerts.AlertActionApi.as_view(), name="alert-action"),
    re_path(r"^budgets/?$", costs.BudgetListApi.as_view(), name="budget-list"),
    re_path(r"^budgets/(?P<name>[^/]+)/?$", costs.BudgetDetailApi.as_view(), name="budget-detail"),
    re_path(r"^prices/?$", costs.PriceListApi.as_view(), name="price-list"),
    re_path(r"^prices/import/?$", costs.PricesImportApi.as_view(), name="prices-import"),
]
