"""REST API of drift: a version's reference, its drift reports (queue one, list them, read one)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import IsEditor, IsViewer
from mlops_site.uploads import read_body, read_upload
from registry import selectors as registry_selectors
from registry import tables

from .. import selectors, services
from .serializers import DriftReportDetailOut, DriftReportOut, ReferenceOut, ReferenceUploadIn, ReferenceWindowIn, WindowIn


def _time(value, field: str) -> datetime:
    parsed = None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None:
        raise ValidationFailed(f"{field}: an ISO 8601 date and time.", fields={field: ["an ISO 8601 date and time"]})
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _window(data) -> tuple[datetime, datetime]:
    """`{"hours": N}` (the last N hours, default 24) or `{"start", "end"}` (WindowIn)."""
    if not isinstance(data, dict):
        raise ValidationFailed("Send a JSON object: {\"hours\": N} or {\"start\", \"end\"}.")
    if "start" in data or "end" in data:
        return _time(data.get("start"), "start"), _time(data.get("end"), "end")
    hours = data.get("hours", 24)
    if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 24 * 90:
        raise ValidationFailed("hours: a whole number of 1 to 2160 (90 days).", fields={"hours": ["1 to 2160"]})
    end = timezone.now()
    return end - timedelta(hours=hours), end


class ReferenceApi(APIView):
    """GET: the version's reference (columns, kinds, missing shares). PUT: set or replace it, from a file
    (CSV, JSON lines or Parquet; multipart field `file` or the raw body) or from a window of its own
    traffic (`{"window": {"hours": N}}` or `{"window": {"start", "end"}}`)."""

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "PUT" else [IsViewer()]

    @extend_schema(responses=ReferenceOut)
    def get(self, request, name, version):
        found = registry_selectors.version_get(model_name=name, version=version)
        return Response(ReferenceOut(selectors.reference_get(model_version=found)).data)

    @extend_schema(
        request={"multipart/form-data": ReferenceUploadIn, "text/csv": bytes, "application/vnd.apache.parquet": bytes,
                 "application/x-ndjson": bytes, "application/json": ReferenceWindowIn},
        parameters=[OpenApiParameter("filename", str, description="name of a raw-body upload (its extension says JSON lines)")],
        responses=ReferenceOut,
    )
    def put(self, request, name, version):
        found = registry_selectors.version_get(model_name=name, version=version)
        if request.content_type == "application/json":
            start, end = _window((request.data or {}).get("window") if isinstance(request.data, dict) else None)
            reference = services.reference_set_from_window(model_version=found, start=start, end=end, actor=request.user)
        elif request.content_type.startswith("multipart/"):
            upload = request.FILES.get("file")
            if upload is None:
                raise ValidationFailed("Send the reference as the multipart field 'file'.", fields={"file": ["required"]})
            reference = services.reference_set_from_file(model_version=found, data=read_upload(upload, limit=tables.MAX_TABLE_BYTES), actor=request.user, filename=upload.name)
        else:
            reference = services.reference_set_from_file(
                model_version=found, data=read_body(request, limit=tables.MAX_TABLE_BYTES, what="The reference file"), actor=request.user,
                filename=request.query_params.get("filename", ""),
            )
        return Response(ReferenceOut(reference).data)


class DriftReportListApi(generics.GenericAPIView):
    """GET: a version's drift reports, newest window first (paginated, without per-column results).
    POST: queue one over `{"hours": N}` (default 24) or `{"start", "end"}`; a worker computes it (202)."""

    serializer_class = DriftReportOut

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "POST" else [IsViewer()]

    @extend_schema(responses=DriftReportOut(many=True))
    def get(self, request, name, version):
        found = registry_selectors.version_get(model_name=name, version=version)
        page = self.paginate_queryset(selectors.report_list(model_version_id=found.pk))
        return self.get_paginated_response(DriftReportOut(page, many=True).data)

    @extend_schema(request=WindowIn, responses={202: DriftReportDetailOut})
    def post(self, request, name, version):
        found = registry_selectors.version_get(model_name=name, version=version)
        start, end = _window(request.data if request.data else {})
        report = services.drift_report_request(model_version=found, start=start, end=end, actor=request.user)
        return Response(DriftReportDetailOut(report).data, status=status.HTTP_202_ACCEPTED)


class DriftReportDetailApi(APIView):
    """One drift report with its per-column results (statistics, decision and reason)."""

    permission_classes = [IsViewer]

    @extend_schema(responses=DriftReportDetailOut)
    def get(self, request, report_id):
        return Response(DriftReportDetailOut(selectors.report_get(report_id=report_id)).data)
