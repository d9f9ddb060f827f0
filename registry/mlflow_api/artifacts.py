"""The artifact proxy (`/api/2.0/mlflow-artifacts/artifacts`): MLflow clients upload and download the files of runs
and logged models through the site, which keeps them in its storage (services.run_artifacts)."""

from __future__ import annotations

import mimetypes
import posixpath

from django.http import FileResponse
from rest_framework.parsers import BaseParser
from rest_framework.response import Response

from ..services import run_artifacts
from .base import MlflowView


class RawBody(BaseParser):
    """Leaves the body unread: the upload view streams it to storage itself."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return None


class ArtifactList(MlflowView):
    """GET ?path=<folder>: the files and folders directly inside it."""

    def get(self, request):
        path = request.query_params.get("path", "")
        return Response({"files": run_artifacts.artifact_list(path)})


class ArtifactFile(MlflowView):
    """PUT stores the request body as the file; GET streams it back."""

    parser_classes = [RawBody]

    def put(self, request, path: str):
        length = request.META.get("CONTENT_LENGTH") or ""
        run_artifacts.artifact_put(path=path, body=request, actor=request.user,
                                   length=int(length) if length.strip().isdigit() else None)
        return Response({})

    def get(self, request, path: str):
        handle, where = run_artifacts.artifact_open(path)
        kind = mimetypes.guess_type(where.path)[0] or "application/octet-stream"
        response = FileResponse(handle, content_type=kind, as_attachment=True, filename=posixpath.basename(where.path))
        response["X-Content-Type-Options"] = "nosniff"
        return response
