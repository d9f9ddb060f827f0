"""REST API of monitoring (`/api/v1/`): ingestion, references, drift reports and alerts."""

from datetime import UTC, datetime, timedelta

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import NotFound, ValidationFailed
from mlops_site.roles import IsEditor, IsViewer
from registry import selectors as registry_selectors

from . import selectors, services
from .events import validate_body
from .models import AlertRule, Reference


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
        events = validate_body(request.body) if request.content_type == "application/json" else None
        if events is None:
            result = services.events_ingest(payload=request.data, actor=request.user)
        else:
            result = services.events_ingest(events=events, actor=request.user)
        return Response({"accepted": result.accepted, "duplicates": result.duplicates}, status=status.HTTP_202_ACCEPTED)


def reference_out(reference: Reference) -> dict:
    return {
        "source": reference.source, "description": reference.description, "rows": reference.rows,
        "created_at": reference.created_at, "columns": reference.columns,
    }


def report_out(report, *, results: bool) -> dict:
    out = {
        "id": report.pk, "model": report.model_version.model.name, "version": report.model_version.version,
        "window_start": report.window_start, "window_end": report.window_end, "status": report.status,
        "requested_at": report.requested_at, "started_at": report.started_at, "finished_at": report.finished_at,
        "error": report.error, "rows": report.rows, "drifted_columns": report.drifted_columns, "max_psi": report.max_psi,
    }
    if results:
        out["results"] = report.results
    return out


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
    """`{"hours": N}` (the last N hours, default 24) or `{"start", "end"}`."""
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

    @extend_schema(responses=inline_serializer("ReferenceOut", {"source": serializers.CharField(), "rows": serializers.IntegerField(),
                                                                  "columns": serializers.DictField()}))
    def get(self, request, name, version):
        found = registry_selectors.version_get(model_name=name, version=version)
        reference = Reference.objects.filter(model_version=found).first()
        if reference is None:
            raise NotFound(f"Version {found.version} of '{name}' has no reference yet.")
        return Response(reference_out(reference))

    @extend_schema(
        request={"multipart/form-data": inline_serializer("ReferenceUpload", {"file": serializers.FileField()}),
                 "text/csv": bytes, "application/vnd.apache.parquet": bytes, "application/x-ndjson": bytes,
                 "application/json": inline_serializer("ReferenceWindow", {"window": serializers.DictField()})},
        parameters=[OpenApiParameter("filename", str, description="name of a raw-body upload (its extension says JSON lines)")],
        responses=inline_serializer("ReferenceSet", {"source": serializers.CharField(), "rows": serializers.IntegerField()}),
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
            reference = services.reference_set_from_file(model_version=found, data=upload.read(), actor=request.user, filename=upload.name)
        else:
            reference = services.reference_set_from_file(
                model_version=found, data=request.body, actor=request.user, filename=request.query_params.get("filename", "")
            )
        return Response(reference_out(reference))


class DriftReportsApi(generics.GenericAPIView):
    """GET: a version's drift reports, newest window first (paginated, without per-column results).
    POST: queue one over `{"hours": N}` (default 24) or `{"start", "end"}`; a worker computes it (202)."""

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "POST" else [IsViewer()]

    @extend_schema(responses=OpenApiTypes.OBJECT, description="paginated: count, next, previous, results")
    def get(self, request, name, version):
        found = registry_selectors.version_get(model_name=name, version=version)
        page = self.paginate_queryset(selectors.report_list(model_version_id=found.pk))
        return self.get_paginated_response([report_out(r, results=False) for r in page])

    @extend_schema(request=inline_serializer("DriftReportWindow", {"hours": serializers.IntegerField(required=False), "start": serializers.DateTimeField(required=False), "end": serializers.DateTimeField(required=False)}), responses={202: OpenApiTypes.OBJECT})
    def post(self, request, name, version):
        found = registry_selectors.version_get(model_name=name, version=version)
        start, end = _window(request.data if request.data else {})
        report = services.drift_report_request(model_version=found, start=start, end=end, actor=request.user)
        return Response(report_out(report, results=True), status=status.HTTP_202_ACCEPTED)


class DriftReportDetailApi(APIView):
    """One drift report with its per-column results (statistics, decision and reason)."""

    permission_classes = [IsViewer]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, report_id):
        return Response(report_out(selectors.report_get(report_id=report_id), results=True))


def rule_out(rule: AlertRule) -> dict:
    return {
        "id": rule.pk, "name": rule.name, "model": rule.model.name if rule.model_id else None,
        "prompt": rule.prompt.name if rule.prompt_id else None, "window_minutes": rule.window_minutes, "metric": rule.metric, "comparison": rule.comparison,
        "threshold": rule.threshold, "warning_threshold": rule.warning_threshold, "enabled": rule.enabled, "state": rule.state,
        "state_since": rule.state_since, "last_value": rule.last_value, "silenced_until": rule.silenced_until,
        "acknowledged_by": rule.acknowledged_by.username if rule.acknowledged_by else None, "acknowledged_at": rule.acknowledged_at,
    }


class AlertListApi(generics.GenericAPIView):
    """Alert rules with their current state (`?state=alert` to filter, `?model=` for one model)."""

    permission_classes = [IsViewer]

    @extend_schema(responses=OpenApiTypes.OBJECT, parameters=[OpenApiParameter("state", str), OpenApiParameter("model", str)])
    def get(self, request):
        rules = AlertRule.objects.select_related("model", "prompt", "acknowledged_by").order_by("model__name", "prompt__name", "name", "pk")
        if request.query_params.get("state"):
            rules = rules.filter(state=request.query_params["state"])
        if request.query_params.get("model"):
            rules = rules.filter(model__name=request.query_params["model"])
        if request.query_params.get("prompt"):
            rules = rules.filter(prompt__name=request.query_params["prompt"])
        page = self.paginate_queryset(rules)
        return self.get_paginated_response([rule_out(r) for r in page])


class AlertAcknowledgeApi(APIView):
    permission_classes = [IsEditor]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request, rule_id):
        return Response(rule_out(services.alert_acknowledge(rule_id=rule_id, actor=request.user)))


class AlertSilenceApi(APIView):
    """`{"hours": N}` silences notifications for N hours (0 ends a silence); states still change and are recorded."""

    permission_classes = [IsEditor]

    @extend_schema(request=inline_serializer("AlertSilence", {"hours": serializers.IntegerField()}), responses=OpenApiTypes.OBJECT)
    def post(self, request, rule_id):
        hours = request.data.get("hours") if isinstance(request.data, dict) else None
        if isinstance(hours, bool) or not isinstance(hours, int):
            raise ValidationFailed("hours: a whole number.", fields={"hours": ["a whole number"]})
        return Response(rule_out(services.alert_silence(rule_id=rule_id, hours=hours, actor=request.user)))


class LabelsApi(APIView):
    """`{"labels": [{"event_id", "label"}]}` (up to 10,000): ground truth for served events, joined by event_id."""

    permission_classes = [IsEditor]

    @extend_schema(request=inline_serializer("LabelBatch", {"labels": serializers.ListField(child=serializers.DictField())}), responses={202: inline_serializer("LabelResult", {"updated": serializers.IntegerField(), "unknown": serializers.IntegerField(), "unknown_ids": serializers.ListField(child=serializers.CharField())})})
    def post(self, request):
        return Response(services.labels_attach(payload=request.data, actor=request.user), status=status.HTTP_202_ACCEPTED)


def budget_out(budget) -> dict:
    state = selectors.budget_status(budget=budget)
    return {
        "name": budget.name, "scope": budget.scope, "members": budget.members, "period": budget.period, "amount_usd": budget.amount_usd,
        "thresholds": budget.thresholds, "enabled": budget.enabled, "period_start": state.period_start, "period_end": state.period_end,
        "spent_usd": state.spent_usd, "share": state.share, "forecast_usd": state.forecast_usd, "pricing_missing": state.pricing_missing,
    }


class BudgetListApi(generics.GenericAPIView):
    """GET: budgets with this period's spend, share and forecast. POST: create or change one
    (`name`, `amount_usd`, `period` day|week|month, `scope` all|model|prompt|team, `members`, `thresholds`)."""

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "POST" else [IsViewer()]

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="api_v1_budgets_list")
    def get(self, request):
        page = self.paginate_queryset(selectors.budget_list())
        return self.get_paginated_response([budget_out(b) for b in page])

    @extend_schema(request=inline_serializer("BudgetInput", {"name": serializers.CharField(), "amount_usd": serializers.FloatField(), "period": serializers.ChoiceField(["day", "week", "month"], required=False), "scope": serializers.ChoiceField(["all", "model", "prompt", "team"], required=False), "members": serializers.ListField(child=serializers.CharField(), required=False), "thresholds": serializers.ListField(child=serializers.FloatField(), required=False)}), responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        allowed = {"name", "amount_usd", "period", "scope", "members", "thresholds", "webhook_url", "webhook_secret", "emails"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ValidationFailed(f"Unknown field(s): {', '.join(unknown)}.", fields={k: ["unknown field"] for k in unknown})
        if "name" not in data or "amount_usd" not in data:
            raise ValidationFailed("name and amount_usd are required.", fields={k: ["required"] for k in ("name", "amount_usd") if k not in data})
        budget = services.budget_set(**data, actor=request.user)
        return Response(budget_out(budget), status=status.HTTP_201_CREATED)


class BudgetDetailApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, name):
        return Response(budget_out(selectors.budget_get(name=name)))
