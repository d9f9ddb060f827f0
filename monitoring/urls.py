from django.urls import path

from . import views, views_costs, views_ops

app_name = "monitoring"

urlpatterns = [
    path("monitoring/", views.overview, name="overview"),
    path("monitoring/reports/<int:report_id>/", views.report_detail, name="report"),
    path("monitoring/alerts/", views.alert_list, name="alerts"),
    path("monitoring/alerts/<int:rule_id>/acknowledge/", views.alert_acknowledge, name="alert-acknowledge"),
    path("monitoring/alerts/<int:rule_id>/silence/", views.alert_silence, name="alert-silence"),
    path("monitoring/prices/", views_costs.price_list, name="prices"),
    path("monitoring/operations/<str:kind>/<str:name>/", views_ops.operations, name="operations"),
    path("monitoring/costs/", views_ops.costs, name="costs"),
    path("monitoring/costs/budgets/", views_ops.budget_save, name="budget-save"),
    path("monitoring/quality/<str:name>/", views_ops.quality, name="quality"),
    path("monitoring/models/<str:name>/versions/<int:version>/", views.version_monitoring, name="version"),
    path("monitoring/models/<str:name>/versions/<int:version>/reference/", views.reference_upload, name="reference-upload"),
    path("monitoring/models/<str:name>/versions/<int:version>/reports/", views.report_request, name="report-request"),
    path("monitoring/models/<str:name>/versions/<int:version>/reference/window/", views.reference_from_window, name="reference-window"),
]
