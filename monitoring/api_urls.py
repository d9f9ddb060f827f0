from django.urls import re_path

from registry.api_urls import NAME, N

from . import api, api_costs

app_name = "monitoring-api"

urlpatterns = [
    re_path(r"^events/?$", api.EventIngestApi.as_view(), name="event-ingest"),
    re_path(rf"^models/{NAME}/versions/{N}/reference/?$", api.ReferenceApi.as_view(), name="reference"),
    re_path(rf"^models/{NAME}/versions/{N}/drift-reports/?$", api.DriftReportsApi.as_view(), name="drift-report-list"),
    re_path(r"^drift-reports/(?P<report_id>[0-9]+)/?$", api.DriftReportDetailApi.as_view(), name="drift-report-detail"),
    re_path(r"^labels/?$", api.LabelsApi.as_view(), name="labels"),
    re_path(r"^budgets/?$", api.BudgetListApi.as_view(), name="budget-list"),
    re_path(r"^budgets/(?P<name>[^/]+)/?$", api.BudgetDetailApi.as_view(), name="budget-detail"),
    re_path(r"^alerts/?$", api.AlertListApi.as_view(), name="alert-list"),
    re_path(r"^alerts/(?P<rule_id>[0-9]+)/acknowledge/?$", api.AlertAcknowledgeApi.as_view(), name="alert-acknowledge"),
    re_path(r"^alerts/(?P<rule_id>[0-9]+)/silence/?$", api.AlertSilenceApi.as_view(), name="alert-silence"),
    re_path(r"^prices/?$", api_costs.PriceListApi.as_view(), name="price-list"),
    re_path(r"^otel/?$", api_costs.OtelTracesApi.as_view(), name="otel-traces"),
]
