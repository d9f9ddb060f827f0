"""REST API of registered models (`/api/v1/`): versions, artifacts, stages, promotions, rollback and the audit log.
Each view validates, calls one service or selector, and answers through a typed serializer."""

import re

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import NotFound, TooLarge, ValidationFailed
from mlops_site.parsers import StrictJSONError, strict_loads
from mlops_site.roles import IsApprover, IsEditor, IsViewer, user_role
from mlops_site.serializers import validated

from .. import selectors, services
from ..models import AuditAction, PromotionStatus, Stage
from .serializers import (
    AuditOut,
    MeOut,
    ModelDetailOut,
    ModelRollbackIn,
    ModelSummaryOut,
    PromotionApproveIn,
    PromotionCreateIn,
    PromotionOut,
    PromotionRejectIn,
    VersionOut,
    VersionRegisterIn,
    VersionRegisterMultipartIn,
)


class MeApi(APIView):
    """Who the token belongs to, and their role."""

    @extend_schema(responses=MeOut)
    def get(self, request):
        return Response(MeOut({"username": request.user.username, "role": user_role(request.user)}).data)


class ModelListApi(generics.ListAPIView):
    """Models with their latest and production version. `?search=` matches name and description."""

    serializer_class = ModelSummaryOut

    @extend_schema(parameters=[OpenApiParameter("search", str)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return selectors.model_list(search=self.request.query_params.get("search", "").strip())


class ModelDetailApi(APIView):
    """The model with its newest versions (at most `?versions=` of them, default 100, max 1000).

    `version_count` says how many there are; page through all of them with
    `GET /api/v1/models/{name}/versions`.
    """

    @extend_schema(responses=ModelDetailOut, parameters=[OpenApiParameter("versions", int)])
    def get(self, request, name):
        model = selectors.model_get(name=name)
        raw = request.query_params.get("versions", "100")
        if not re.fullmatch(r"[0-9]{1,4}", raw) or not 1 <= int(raw) <= 1000:
            raise ValidationFailed("versions must be a whole number from 1 to 1000.", fields={"versions": ["From 1 to 1000."]})
        versions = list(selectors.version_list(model=model)[: int(raw)])
        return Response(ModelDetailOut(model, context={"request": request, "versions": versions}).data)


class ModelVersionsApi(generics.GenericAPIView):
    """GET: a model's versions, newest first (paginated). POST: register the next version."""

    serializer_class = VersionOut

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "POST" else [IsViewer()]

    @extend_schema(responses=VersionOut(many=True))
    def get(self, request, name):
        page = self.paginate_queryset(selectors.version_list(model=selectors.model_get(name=name)))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        request={
            "application/json": VersionRegisterIn,
            "multipart/form-data": VersionRegisterMultipartIn,
        },
        responses={201: VersionOut},
    )
    def post(self, request, name):
        # Refuse an oversized upload before Django reads (and spools) the body.
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise ValidationFailed("Content-Length is not a number.") from None
        if length > settings.MLOPS_MAX_ARTIFACT_BYTES + 1024 * 1024:
            raise TooLarge(f"Request body is {length} bytes; the artifact limit is {settings.MLOPS_MAX_ARTIFACT_BYTES} bytes.")
        artifact = None
        if request.content_type.startswith("multipart/"):
            artifact = request.FILES.get("artifact")
            if artifact is None and "artifact" in request.data:
                # Sent as a text field, or a file name the parser dropped (such as "..").
                raise ValidationFailed("artifact must be a file upload with a file name.", fields={"artifact": ["Not a file upload."]})
            unknown = sorted(set(request.data) - {"artifact", "meta"})
            if unknown:
                raise ValidationFailed("Unknown multipart fields: " + ", ".join(unknown), fields={k: ["Unknown field."] for k in unknown})
            try:
                meta = strict_loads(request.data.get("meta") or "{}")
            except StrictJSONError as exc:
                raise ValidationFailed(f"meta: malformed JSON: {exc}", fields={"meta": [str(exc)]}) from None
            if not isinstance(meta, dict):
                raise ValidationFailed("meta must be a JSON object.", fields={"meta": ["Must be a JSON object."]})
        else:
            meta = request.data
            if not isinstance(meta, dict):
                raise ValidationFailed("The body must be a JSON object.")
        data = validated(VersionRegisterIn, meta)
        version = services.model_version_register(model_name=name, actor=request.user, artifact=artifact, **data)
        return Response(VersionOut(version, context={"request": request}).data, status=status.HTTP_201_CREATED)


class ModelVersionDetailApi(APIView):
    @extend_schema(responses=VersionOut)
    def get(self, request, name, version):
        return Response(VersionOut(selectors.version_get(model_name=name, version=version), context={"request": request}).data)


class ModelVersionArtifactApi(APIView):
    """Download the stored artifact file (404 for an external URI: fetch that yourself)."""

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    def get(self, request, name, version):
        found = selectors.version_get(model_name=name, version=version)
        if not found.artifact:
            raise NotFound(f"{name} v{found.version} has no stored artifact file.")
        return FileResponse(default_storage.open(found.artifact.name, "rb"), as_attachment=True, filename=found.artifact.name.rsplit("/", 1)[-1])


class ModelStageApi(APIView):
    @extend_schema(responses=VersionOut)
    def get(self, request, name, stage):
        if stage not in Stage.values:
            raise ValidationFailed(f"Unknown stage {stage!r}; use one of {', '.join(Stage.values)}.")
        if stage in (Stage.CANDIDATE, Stage.ARCHIVED):
            raise ValidationFailed(f"Several versions can be {stage}; list them with GET /api/v1/models/{name}.")
        return Response(VersionOut(selectors.stage_holder_get(model_name=name, stage=stage), context={"request": request}).data)


class ModelVersionPromoteApi(APIView):
    """`{"to", "reason", "strategy"?, "policy"?}` (editors): a promotion request. `"strategy": "canary"` (to production only)
    asks for a staged rollout under the rollout policy `policy` (blank: default); its approval starts the rollout."""

    permission_classes = [IsEditor]

    @extend_schema(request=PromotionCreateIn, responses={201: PromotionOut})
    def post(self, request, name, version):
        found = selectors.version_get(model_name=name, version=version)
        data = validated(PromotionCreateIn, request.data)
        promotion = services.promotion_request_create(
            version=found, to_stage=data["to"], reason=data["reason"], actor=request.user, override_reason=data["override_reason"],
            strategy=data["strategy"], policy=data["policy"],
        )
        return Response(PromotionOut(selectors.promotion_get(promotion_id=promotion.pk)).data, status=status.HTTP_201_CREATED)


class PromotionListApi(generics.ListAPIView):
    """Promotion requests, newest first; `?status=pending`, `?model=NAME`, `?prompt=NAME`, `?search=`."""

    serializer_class = PromotionOut

    @extend_schema(
        parameters=[OpenApiParameter("status", str, enum=PromotionStatus.values), OpenApiParameter("model", str), OpenApiParameter("prompt", str), OpenApiParameter("search", str)]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        status_ = params.get("status") or None
        if status_ and status_ not in PromotionStatus.values:
            raise ValidationFailed(f"Unknown status {status_!r}.", fields={"status": [f"Use one of {', '.join(PromotionStatus.values)}."]})
        model = selectors.model_get(name=params["model"]) if params.get("model") else None
        prompt = selectors.prompt_get(name=params["prompt"]) if params.get("prompt") else None
        return selectors.promotion_list(status=status_, model=model, prompt=prompt, search=params.get("search", "").strip())


class PromotionDetailApi(APIView):
    @extend_schema(responses=PromotionOut)
    def get(self, request, promotion_id):
        return Response(PromotionOut(selectors.promotion_get(promotion_id=promotion_id)).data)


class PromotionApproveApi(APIView):
    permission_classes = [IsApprover]

    @extend_schema(request=PromotionApproveIn, responses=PromotionOut)
    def post(self, request, promotion_id):
        data = validated(PromotionApproveIn, request.data)
        services.promotion_approve(promotion_id=promotion_id, actor=request.user, comment=data["comment"], override_reason=data["override_reason"])
        return Response(PromotionOut(selectors.promotion_get(promotion_id=promotion_id)).data)


class PromotionRejectApi(APIView):
    permission_classes = [IsApprover]

    @extend_schema(request=PromotionRejectIn, responses=PromotionOut)
    def post(self, request, promotion_id):
        data = validated(PromotionRejectIn, request.data)
        services.promotion_reject(promotion_id=promotion_id, actor=request.user, comment=data["comment"])
        return Response(PromotionOut(selectors.promotion_get(promotion_id=promotion_id)).data)


class ModelRollbackApi(APIView):
    permission_classes = [IsApprover]

    @extend_schema(request=ModelRollbackIn, responses=VersionOut)
    def post(self, request, name):
        selectors.model_get(name=name)  # unknown model: 404 before any 400
        data = validated(ModelRollbackIn, request.data)
        version = services.model_rollback(model_name=name, stage=data["stage"], reason=data["reason"], actor=request.user)
        return Response(VersionOut(selectors.version_get(model_name=name, version=version.version), context={"request": request}).data)


class AuditListApi(generics.ListAPIView):
    """Append-only audit events, newest first. Filters: subject, action, actor, version, search."""

    serializer_class = AuditOut

    @extend_schema(
        parameters=[
            OpenApiParameter("subject", str, description="`model:{name}` or `prompt:{name}`"),
            OpenApiParameter("action", str, enum=AuditAction.values),
            OpenApiParameter("actor", str),
            OpenApiParameter("version", int),
            OpenApiParameter("search", str),
        ]
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        version = params.get("version")
        if version and not re.fullmatch(r"[0-9]{1,9}", version):
            raise ValidationFailed("version must be a whole number.", fields={"version": ["A whole number."]})
        action = params.get("action", "")
        if action and action not in AuditAction.values:
            raise ValidationFailed(f"Unknown action {action!r}.", fields={"action": [f"Use one of {', '.join(AuditAction.values)}."]})
        return selectors.audit_list(
            subject=params.get("subject", ""),
            action=action,
            actor=params.get("actor", ""),
            version=int(version) if version else None,
            search=params.get("search", ""),
        )
