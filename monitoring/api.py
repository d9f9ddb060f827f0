"""REST API of monitoring (`/api/v1/`): ingestion."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.permissions import IsEditor

from . import ingest, services


class EventIngestApi(APIView):
    """`{"events": [...]}`, up to 10,000 served requests. 202 `{"accepted", "duplicates"}`; a bad batch is refused whole."""

    permission_classes = [IsEditor]

    @extend_schema(
        request=inline_serializer("EventBatch", {"events": serializers.ListField(child=serializers.DictField())}),
        responses={202: inline_serializer("IngestResult", {"accepted": serializers.IntegerField(), "duplicates": serializers.IntegerField()})},
    )
    def post(self, request):
        # The fast path reads the raw body; a body it cannot vouch for goes through DRF's strict
        # parser and the full validation, which name every problem.
        events = ingest.validate_body(request.body) if request.content_type == "application/json" else None
        if events is None:
            result = services.events_ingest(payload=request.data, actor=request.user)
        else:
            result = services.events_ingest(events=events, actor=request.user)
        return Response({"accepted": result.accepted, "duplicates": result.duplicates}, status=status.HTTP_202_ACCEPTED)
