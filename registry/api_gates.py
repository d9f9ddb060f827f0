"""REST API of quality gates (`/api/v1/`): evaluations, gate status, gate policies, dataset schemas."""

import json

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import NotFound, ValidationFailed
from mlops_site.roles import IsApprover, IsEditor, IsViewer

from . import selectors
from .models import DatasetSchema, Evaluation, EvaluationKind, GatePolicy
from .services import evaluations, gates, schemas

ROW_LIMIT = 200


def evaluation_out(e: Evaluation, *, rows: bool = False) -> dict:
    out = {
        "id": e.pk, "kind": e.kind, "status": e.status, "model": e.model_version.model.name if e.model_version_id else None,
        "prompt": e.prompt_version.prompt.name if e.prompt_version_id else None,
        "version": (e.model_version or e.prompt_version).version, "source": e.source, "input_sha256": e.input_sha256,
        "options": e.options, "requested_by": e.requested_by.username if e.requested_by_id else None, "requested_at": e.requested_at,
        "started_at": e.started_at, "finished_at": e.finished_at, "attempts": e.attempts, "error": e.error, "metrics": e.metrics,
        "details": e.details,
    }
    if rows:
        out["rows"] = [
            {"index": r.index, "input": r.input, "output": r.output, "expected": r.expected, "checks": r.checks, "latency_ms": r.latency_ms,
             "cost_usd": r.cost_usd, "error": r.error}
            for r in e.rows.all()[:ROW_LIMIT]
        ]
    return out


def gates_out(state: gates.GateStatus) -> dict:
    return {
        "policy": state.policy is not None, "enforced": state.enforced, "passed": state.passed if state.policy else None,
        "checks": [
            {"check": c.check, "op": c.op, "threshold": c.threshold, "status": c.status, "value": c.value, "evaluation_id": c.evaluation_id,
             "kind": c.kind, "ran_at": c.ran_at, "source": c.source}
            for c in state.checks
        ],
    }


def _upload(request) -> tuple[bytes, str, dict]:
    """The file and the fields of a multipart form (`file`, `kind`, `options` as JSON), or a raw body (`?kind=`, `?filename=`)."""
    if request.content_type.startswith("multipart/"):
        upload = request.FILES.get("file")
        raw = request.data.get("options") or "{}"
        try:
            options = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise ValidationFailed("options: a JSON object.", fields={"options": ["not JSON"]}) from None
        fields = {"kind": request.data.get("kind", EvaluationKind.MODEL), "options": options}
        return (upload.read() if upload else b""), (upload.name if upload else ""), fields
    query = request.query_params
    try:
        options = json.loads(query.get("options", "{}"))
    except ValueError:
        raise ValidationFailed("options: a JSON object.", fields={"options": ["not JSON"]}) from None
    return request.body, query.get("filename", ""), {"kind": query.get("kind", EvaluationKind.MODEL), "options": options}


class ModelEvaluationsApi(generics.GenericAPIView):
    """GET: a model version's evaluations, newest first. POST: run one: `kind` model (predictions and labels: columns
    `label`, `prediction`, optional `score` and a `group_column` for fairness) or data (validation against the model's
    schema); the file as multipart `file` (with `kind` and `options` fields) or the raw body (`?kind=&filename=`). 202."""

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "POST" else [IsViewer()]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, name, version):
        found = selectors.version_get(model_name=name, version=version)
        rows = Evaluation.objects.filter(model_version=found).select_related("model_version__model", "requested_by").defer("data")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([evaluation_out(e) for e in page])

    @extend_schema(request={"multipart/form-data": inline_serializer("EvaluationUpload", {
        "file": serializers.FileField(), "kind": serializers.ChoiceField(["model", "data"]), "options": serializers.CharField(required=False)})},
        responses={202: OpenApiTypes.OBJECT})
    def post(self, request, name, version):
        found = selectors.version_get(model_name=name, version=version)
        data, filename, fields = _upload(request)
        if fields["kind"] == EvaluationKind.PROMPT:
            raise ValidationFailed("kind: model or data for a model version.", fields={"kind": ["model or data"]})
        created = evaluations.evaluation_request(kind=fields["kind"], model_version=found, data=data, filename=filename,
                                                 options=fields["options"], actor=request.user)
        return Response(evaluation_out(evaluations.evaluation_get(evaluation_id=created.pk)), status=status.HTTP_202_ACCEPTED)


class PromptEvaluationsApi(generics.GenericAPIView):
    """GET: a prompt version's evaluations. POST `{"provider": "replay"|"openai"}`: run it over its eval set (202)."""

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "POST" else [IsViewer()]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, name, version):
        found = selectors.prompt_version_get(prompt_name=name, version=version)
        rows = Evaluation.objects.filter(prompt_version=found).select_related("prompt_version__prompt", "requested_by").defer("data")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response([evaluation_out(e) for e in page])

    @extend_schema(request=inline_serializer("PromptEvaluationInput", {"provider": serializers.ChoiceField(["replay", "openai"], required=False),
                                                                       "responses": serializers.DictField(required=False)}),
                   responses={202: OpenApiTypes.OBJECT})
    def post(self, request, name, version):
        found = selectors.prompt_version_get(prompt_name=name, version=version)
        options = request.data if isinstance(request.data, dict) else None
        if options is None:
            raise ValidationFailed("Send a JSON object, e.g. {\"provider\": \"replay\"}.")
        created = evaluations.evaluation_request(kind=EvaluationKind.PROMPT, prompt_version=found, options=dict(options), actor=request.user)
        return Response(evaluation_out(evaluations.evaluation_get(evaluation_id=created.pk)), status=status.HTTP_202_ACCEPTED)


class EvaluationDetailApi(APIView):
    """One evaluation with its figures, details and (prompt evaluations) the first 200 per-row results."""

    permission_classes = [IsViewer]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, evaluation_id):
        return Response(evaluation_out(evaluations.evaluation_get(evaluation_id=evaluation_id), rows=True))


class ModelGatesApi(APIView):
    """The gate card of a model version: each check, its value, threshold, pass / fail / not run, from which evaluation."""

    permission_classes = [IsViewer]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, name, version):
        return Response(gates_out(gates.gate_status(version=selectors.version_get(model_name=name, version=version))))


class PromptGatesApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, name, version):
        return Response(gates_out(gates.gate_status(version=selectors.prompt_version_get(prompt_name=name, version=version))))


def policy_out(policy: GatePolicy | None) -> dict:
    if policy is None:
        return {"checks": [], "enforced": False, "exists": False}
    return {"checks": policy.checks, "enforced": policy.enforced, "exists": True, "updated_at": policy.updated_at,
            "updated_by": policy.updated_by.username if policy.updated_by_id else None}


class _PolicyApi(APIView):
    """GET: the gate policy. PUT `{"checks": [{"check", "op", "threshold"}], "enforced": true}` (approvers) replaces it;
    `{"checks": "default"}` sets the brief's defaults."""

    def get_permissions(self):
        return [IsApprover()] if self.request.method == "PUT" else [IsViewer()]

    def subject(self, name) -> dict:
        raise NotImplementedError

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, name):
        subject = self.subject(name)
        return Response(policy_out(GatePolicy.objects.filter(**subject).select_related("updated_by").first()))

    @extend_schema(request=inline_serializer("GatePolicyInput", {"checks": serializers.JSONField(), "enforced": serializers.BooleanField(required=False)}),
                   responses=OpenApiTypes.OBJECT)
    def put(self, request, name):
        subject = self.subject(name)
        data = request.data if isinstance(request.data, dict) else {}
        checks = data.get("checks")
        if checks == "default":
            checks = gates.DEFAULT_MODEL_CHECKS if "model" in subject else gates.DEFAULT_PROMPT_CHECKS
        policy = gates.gate_policy_set(**subject, checks=checks, enforced=data.get("enforced", True) is not False, actor=request.user)
        return Response(policy_out(policy))


class ModelPolicyApi(_PolicyApi):
    def subject(self, name):
        return {"model": selectors.model_get(name=name)}


class PromptPolicyApi(_PolicyApi):
    def subject(self, name):
        return {"prompt": selectors.prompt_get(name=name)}


class ModelSchemaApi(APIView):
    """GET: the model's dataset schema. PUT: a schema as JSON (`{"columns": [...]}`), or a reference file
    (CSV, JSON lines, Parquet: multipart `file` or raw body) to infer it from."""

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "PUT" else [IsViewer()]

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request, name):
        row = DatasetSchema.objects.filter(model=selectors.model_get(name=name)).first()
        if row is None:
            raise NotFound(f"Model {name} has no dataset schema yet.")
        return Response({"schema": row.schema, "source": row.source, "updated_at": row.updated_at})

    @extend_schema(request={"application/json": OpenApiTypes.OBJECT, "multipart/form-data": inline_serializer("SchemaReference", {"file": serializers.FileField()})},
                   responses=OpenApiTypes.OBJECT)
    def put(self, request, name):
        model = selectors.model_get(name=name)
        if request.content_type == "application/json":
            body = request.data if isinstance(request.data, dict) else None
            if body is None:
                raise ValidationFailed("Send the schema as a JSON object with `columns`.")
            row = schemas.dataset_schema_set(model=model, schema=body, actor=request.user)
        else:
            data, filename, _ = _upload(request)
            row = schemas.dataset_schema_infer(model=model, data=data, filename=filename, actor=request.user)
        return Response({"schema": row.schema, "source": row.source, "updated_at": row.updated_at})
