"""`/api/3.0/mlflow/server-info`: what MLflow 3 clients ask a server before downloading a model."""

from rest_framework.response import Response

from .base import MlflowView


class ServerInfo(MlflowView):
    def get(self, request):
        # Files go through the artifact proxy one request each: no multipart transfers, no presigned URLs.
        return Response({"store_type": "SqlStore", "workspaces_enabled": False, "multipart_uploads_enabled": False,
                         "multipart_downloads_enabled": False, "features_enabled": {}})
