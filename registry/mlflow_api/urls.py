"""The MLflow REST paths, mounted at `/api/2.0/` (and `/api/3.0/mlflow/server-info`)."""

from django.urls import path, re_path

from . import artifacts, models, search, tracking

app_name = "mlflow"

M = "mlflow/"
urlpatterns = [
    path(f"{M}experiments/create", tracking.ExperimentCreate.as_view(), name="experiment-create"),
    path(f"{M}experiments/get", tracking.ExperimentGet.as_view(), name="experiment-get"),
    path(f"{M}experiments/get-by-name", tracking.ExperimentGetByName.as_view(), name="experiment-get-by-name"),
    path(f"{M}runs/create", tracking.RunCreate.as_view(), name="run-create"),
    path(f"{M}runs/get", tracking.RunGet.as_view(), name="run-get"),
    path(f"{M}runs/update", tracking.RunUpdate.as_view(), name="run-update"),
    path(f"{M}runs/log-batch", tracking.RunLogBatch.as_view(), name="run-log-batch"),
    path(f"{M}runs/outputs", tracking.RunOutputs.as_view(), name="run-outputs"),
    path(f"{M}runs/log-metric", tracking.RunLogMetric.as_view(), name="run-log-metric"),
    path(f"{M}runs/log-parameter", tracking.RunLogParam.as_view(), name="run-log-parameter"),
    path(f"{M}runs/set-tag", tracking.RunSetTag.as_view(), name="run-set-tag"),
    path(f"{M}runs/delete-tag", tracking.RunDeleteTag.as_view(), name="run-delete-tag"),
    path(f"{M}runs/delete", tracking.RunDelete.as_view(), name="run-delete"),
    path(f"{M}runs/restore", tracking.RunRestore.as_view(), name="run-restore"),
    path(f"{M}runs/search", search.RunSearch.as_view(), name="run-search"),
    path(f"{M}experiments/search", search.ExperimentSearch.as_view(), name="experiment-search"),
    path(f"{M}metrics/get-history", tracking.MetricHistory.as_view(), name="metric-history"),
    path(f"{M}logged-models", tracking.LoggedModelCreate.as_view(), name="logged-model-create"),
    re_path(rf"^{M}logged-models/(?P<model_id>[^/]+)/tags$", tracking.LoggedModelTags.as_view(), name="logged-model-tags"),
    re_path(rf"^{M}logged-models/(?P<model_id>[^/]+)$", tracking.LoggedModelDetail.as_view(), name="logged-model-detail"),
    path(f"{M}registered-models/create", models.RegisteredModelCreate.as_view(), name="registered-model-create"),
    path(f"{M}registered-models/get", models.RegisteredModelGet.as_view(), name="registered-model-get"),
    path(f"{M}registered-models/search", models.RegisteredModelSearch.as_view(), name="registered-model-search"),
    path(f"{M}registered-models/get-latest-versions", models.LatestVersions.as_view(), name="latest-versions"),
    path(f"{M}registered-models/alias", models.Alias.as_view(), name="alias"),
    path(f"{M}model-versions/create", models.VersionCreate.as_view(), name="version-create"),
    path(f"{M}model-versions/get", models.VersionGet.as_view(), name="version-get"),
    path(f"{M}model-versions/get-download-uri", models.VersionDownloadUri.as_view(), name="version-download-uri"),
    path(f"{M}model-versions/transition-stage", models.VersionTransition.as_view(), name="version-transition"),
    path("mlflow-artifacts/artifacts", artifacts.ArtifactList.as_view(), name="artifact-list"),
    re_path(r"^mlflow-artifacts/artifacts/(?P<path>.+)$", artifacts.ArtifactFile.as_view(), name="artifact-file"),
    re_path(rf"^{M}(?P<rest>.*)$", tracking.EndpointNotFound.as_view(), name="endpoint-not-found"),
]
