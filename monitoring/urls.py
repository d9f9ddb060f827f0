from django.urls import path

from . import views

app_name = "monitoring"

urlpatterns = [
    path("monitoring/", views.overview, name="overview"),
    path("monitoring/reports/<int:report_id>/", views.report_detail, name="report"),
    path("monitoring/alerts/", views.alert_list, name="alerts"),
    path("monitoring/alerts/<int:rule_id>/acknowledge/", views.alert_acknowledge, name="alert-acknowledge"),
    path("monitoring/alerts/<int:rule_id>/silence/", views.alert_silence, name="alert-silence"),
    path("monitoring/models/<str:name>/versions/<int:version>/", views.version_monitoring, name="version"),
    path("monitoring/models/<str:name>/versions/<int:version>/reference/", views.reference_upload, name="reference-upload"),
    path("monitoring/models/<str:name>/versions/<int:version>/reports/", views.report_request, name="report-request"),
    path("monitoring/models/<str:name>/versions/<int:version>/reference/window/", views.reference_from_window, name="reference-window"),
]
