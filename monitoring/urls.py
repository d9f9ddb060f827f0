"""HTML pages of monitoring."""

from django.urls import path

from .views import alerts, costs, drift, operations, performance

app_name = "monitoring"

urlpatterns = [
    path("monitoring/", drift.overview, name="overview"),
    path("monitoring/reports/<int:report_id>/", drift.report_detail, name="report"),
    path("monitoring/alerts/", alerts.alert_list, name="alerts"),
    path("monitoring/alerts/<int:rule_id>/acknowledge/", alerts.alert_acknowledge, name="alert-acknowledge"),
    path("monitoring/alerts/<int:rule_id>/silence/", alerts.alert_silence, name="alert-silence"),
    path("monitoring/alerts/<int:rule_id>/action/", alerts.alert_action, name="alert-action"),
    path("monitoring/prices/", costs.price_list, name="prices"),
    path("monitoring/prices/import/", costs.prices_import, name="prices-import"),
    path("monitoring/operations/<str:kind>/<str:name>/", operations.operations, name="operations"),
    path("monitoring/costs/", costs.costs, name="costs"),
    path("monitoring/costs/budgets/", costs.budget_save, name="budget-save"),
    path("monitoring/quality/<str:name>/", operations.quality, name="quality"),
    path("monitoring/models/<str:name>/versions/<int:version>/", drift.version_monitoring, name="version"),
    path("monitoring/models/<str:name>/versions/<int:version>/performance/", performance.performance, name="performance"),
    path("monitoring/models/<str:name>/versions/<int:version>/reference/", drift.reference_upload, name="reference-upload"),
    path("monitoring/models/<str:name>/versions/<int:version>/reports/", drift.report_request, name="report-request"),
    path("monitoring/models/<str:name>/versions/<int:version>/reference/window/", drift.reference_from_window, name="reference-window"),
]
