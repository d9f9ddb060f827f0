"""REST API of quality gates (`/api/v1/`): evaluations, gate status, gate policies, dataset schemas."""

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import NotFound, ValidationFailed
from mlops_site.parsers import StrictJSONError, strict_loads
from mlops_site.roles import IsApprover, IsEditor, IsViewer
from mlops_site.uploads import read_body, read_upload

from .. import selectors
from ..models import DatasetSchema, Evaluation, EvaluationKind, GatePolicy
from ..services import evaluations, gates, schemas
from .serializers import (
    DatasetSchemaOut,
    DatasetSchemaReferenceIn,
    DatasetSchemaSpec,
    EvaluationDetailOut,
    EvaluationOut,
    EvaluationUploadIn,
    GatePolicyIn,
    GatePolicyOut,
    GateStatusOut,
    PromptEvaluationIn,
)


def _options(raw):
    """The `options` field parsed as strict JSON; bad or too deeply nested JSON is a 400 naming the field."""
    try:
        return strict_loads(raw) if isinstance(raw, str | bytes) else raw
    except StrictJSONError as exc:
        raise ValidationFailed(f"options: a JSON object ({exc}).", fields={"options": [str(exc)]}) from None


def _upload(request) -> tuple[bytes, str, dict]:
    """The file and the fields of a multipart form (`file`, `kind`, `options` as JSON), or a raw body (`?kind=`, `?filename=`)."""
    if request.content_type.startswith("multipart/"):
        upload = request.FILES.get("file")
        raw = request.data.get("options") or "{}"
        options = _options(raw)
        fields = {"kind": request.data.get("kind", EvaluationKind.MODEL), "options": options}
        data = read_upload(upload, limit=evaluations.MAX_UPLOAD_MB * 1024 * 1024) if upload else b""
        return data, (upload.name if upload else ""), fields
    query = request.query_params
    options = _options(query.get("options", "{}"))
    data = read_body(request, limit=evaluations.MAX_UPLOAD_MB * 1024 * 1024, what="The file")
    return data, query.get("filename", ""), {"kind": query.get("kind", EvaluationKind.MODEL), "options": options}


class ModelEvaluationsApi(generics.GenericAPIView):
    """GET: a model version's evaluations, newest first. POST: run one: `kind` model (predictions and labels: columns
    `label`, `prediction`, optional `score` and a `group_column` for fairness) or data (validation against the model's
    schema); the file as multipart `file` (with `kind` and `options` fields) or the raw body (`?kind=&filename=`). 202."""

    serializer_class = EvaluationOut

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "POST" else [IsViewer()]

    @extend_schema(responses=EvaluationOut(many=True))
    def get(self, request, name, version):
        found = selectors.version_get(model_name=name, version=version)
        rows = Evaluation.objects.filter(model_version=found).select_related("model_version__model", "requested_by").defer("data")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(EvaluationOut(page, many=True).data)

    @extend_schema(
        request={"multipart/form-data": EvaluationUploadIn, "application/octet-stream": OpenApiTypes.BINARY},
        parameters=[OpenApiParameter("kind", str, enum=[EvaluationKind.MODEL, EvaluationKind.DATA], description="raw body: the kind"),
                    OpenApiParameter("filename", str, description="raw body: the file's name (its extension says the format)"),
                    OpenApiParameter("options", str, description="raw body: the options as JSON")],
        responses={202: EvaluationOut},
    )
    def post(self, request, name, version):
        found = selectors.version_get(model_name=name, version=version)
        data, filename, fields = _upload(request)
        if fields["kind"] == EvaluationKind.PROMPT:
            raise ValidationFailed("kind: model or data for a model version.", fields={"kind": ["model or data"]})
        created = evaluations.evaluation_request(kind=fields["kind"], model_version=found, data=data, filename=filename,
                                                 options=fields["options"], actor=request.user)
        return Response(EvaluationOut(evaluations.evaluation_get(evaluation_id=created.pk)).data, status=status.HTTP_202_ACCEPTED)


class PromptEvaluationsApi(generics.GenericAPIView):
    """GET: a prompt version's evaluations. POST `{"provider": "replay"|"openai"}`: run it over its eval set (202)."""

    serializer_class = EvaluationOut

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "POST" else [IsViewer()]

    @extend_schema(responses=EvaluationOut(many=True))
    def get(self, request, name, version):
        found = selectors.prompt_version_get(prompt_name=name, version=version)
        rows = Evaluation.objects.filter(prompt_version=found).select_related("prompt_version__prompt", "requested_by").defer("data")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(EvaluationOut(page, many=True).data)

    @extend_schema(request=PromptEvaluationIn, responses={202: EvaluationOut})
    def post(self, request, name, version):
        found = selectors.prompt_version_get(prompt_name=name, version=version)
        options = request.data if isinstance(request.data, dict) else None
        if options is None:
            raise ValidationFailed("Send a JSON object, e.g. {\"provider\": \"replay\"}.")
        created = evaluations.evaluation_request(kind=EvaluationKind.PROMPT, prompt_version=found, options=dict(options), actor=request.user)
        return Response(EvaluationOut(evaluations.evaluation_get(evaluation_id=created.pk)).data, status=status.HTTP_202_ACCEPTED)


class EvaluationDetailApi(APIView):
    """One evaluation with its figures, details and (prompt evaluations) the first 200 per-row results."""

    permission_classes = [IsViewer]

    @extend_schema(responses=EvaluationDetailOut)
    def get(self, request, evaluation_id):
        return Response(EvaluationDetailOut(evaluations.evaluation_get(evaluation_id=evaluation_id)).data)


REQUESTER_PARAMETER = OpenApiParameter(
    "requester", str, description="judge the checks for a promotion requested by this user (default: you); matters when the "
                                  "policy needs evidence from someone other than the requester")


def _requester(request):
    """The user whose promotion the gate card is judged for: `?requester=<username>`, else the caller."""
    username = request.query_params.get("requester")
    if username is None:
        return request.user
    found = get_user_model().objects.filter(username=username).first()
    if found is None:
        raise ValidationFailed(f"requester: no user {username!r}.", fields={"requester": ["no such user"]})
    return found


class ModelGatesApi(APIView):
    """The gate card of a model version: each check, its value, threshold, pass / fail / not run, from which evaluation,
    who produced it and how, judged for a promotion requested by the caller (or `?requester=`)."""

    permission_classes = [IsViewer]

    @extend_schema(parameters=[REQUESTER_PARAMETER], responses=GateStatusOut)
    def get(self, request, name, version):
        found = selectors.version_get(model_name=name, version=version)
        return Response(GateStatusOut(gates.gate_status(version=found, requester=_requester(request))).data)


class PromptGatesApi(APIView):
    """The gate card of a prompt version (as for a model version)."""

    permission_classes = [IsViewer]

    @extend_schema(parameters=[REQUESTER_PARAMETER], responses=GateStatusOut)
    def get(self, request, name, version):
        found = selectors.prompt_version_get(prompt_name=name, version=version)
        return Response(GateStatusOut(gates.gate_status(version=found, requester=_requester(request))).data)


def _policy(subject: dict) -> GatePolicy:
    # No policy yet: an unsaved empty one, which GatePolicyOut answers as `exists` false.
    return GatePolicy.objects.filter(**subject).select_related("updated_by").first() or GatePolicy(checks=[], enforced=False)


class _PolicyApi(APIView):
    """GET: the gate policy. PUT `{"checks": [{"check", "op", "threshold"}], "enforced": true}` (approvers) replaces it;
    `{"checks": "default"}` sets the default checks; `"evidence_from_other_identity": true` refuses evidence produced by
    a promotion's own requester (left out: unchanged)."""

    def get_permissions(self):
        return [IsApprover()] if self.request.method == "PUT" else [IsViewer()]

    def subject(self, name) -> dict:
        raise NotImplementedError

    @extend_schema(responses=GatePolicyOut)
    def get(self, request, name):
        return Response(GatePolicyOut(_policy(self.subject(name))).data)

    @extend_schema(request=GatePolicyIn, responses=GatePolicyOut)
    def put(self, request, name):
        subject = self.subject(name)
        data = request.data if isinstance(request.data, dict) else {}
        checks = data.get("checks")
        if checks == "default":
            checks = gates.DEFAULT_MODEL_CHECKS if "model" in subject else gates.DEFAULT_PROMPT_CHECKS
        policy = gates.gate_policy_set(**subject, checks=checks, enforced=data.get("enforced", True) is not False,
                                       evidence_from_other_identity=data.get("evidence_from_other_identity"), actor=request.user)
        return Response(GatePolicyOut(policy).data)


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

    @extend_schema(responses=DatasetSchemaOut)
    def get(self, request, name):
        row = DatasetSchema.objects.filter(model=selectors.model_get(name=name)).first()
        if row is None:
            raise NotFound(f"Model {name} has no dataset schema yet.")
        return Response(DatasetSchemaOut(row).data)

    @extend_schema(request={"application/json": DatasetSchemaSpec, "multipart/form-data": DatasetSchemaReferenceIn},
                   responses=DatasetSchemaOut)
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
        return Response(DatasetSchemaOut(row).data)
