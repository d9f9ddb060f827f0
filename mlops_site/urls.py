from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import JsonResponse
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from monitoring.api.metrics import MetricsApi
from registry.mlflow_api.server import ServerInfo
from registry.views import models as registry_pages

handler404 = "mlops_site.exceptions.json_404"
handler500 = "mlops_site.exceptions.json_500"


def healthz(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("", registry_pages.home, name="home"),
    path("healthz", healthz, name="healthz"),
    path("metrics", MetricsApi.as_view(), name="metrics"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("favicon.ico", RedirectView.as_view(url="/static/favicon.svg", permanent=True)),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file of its own: the CSP allows no inline script.
    path("api/v1/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("registry.api.urls")),
    path("api/v1/", include("monitoring.api.urls")),
    path("api/v1/", include("experiments.api.urls")),
    # MLflow's REST API, for MLflow clients (MLFLOW_TRACKING_URI pointed at this site)
    path("api/2.0/", include("registry.mlflow_api.urls")),
    path("api/3.0/mlflow/server-info", ServerInfo.as_view(), name="mlflow-server-info"),
    path("", include("registry.urls")),
    path("", include("monitoring.urls")),
    path("", include("experiments.urls")),
]
