"""REST API of the prompt registry (`/api/v1/prompts/...`): import a folder, read versions and environments, render,
promote, roll back, page through an eval set. Each view validates, calls one service or selector, and answers through
a typed serializer."""

import json

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import TooLarge, ValidationFailed
from mlops_site.roles import IsApprover, IsEditor
from mlops_site.serializers import validated
from mlops_site.uploads import read_upload

from .. import prompt_templates, selectors, services
from ..models import Environment
from .serializers import (
    EvalSetPageOut,
    PromotionOut,
    PromptDetailOut,
    PromptImportArchiveIn,
    PromptImportIn,
    PromptImportOut,
    PromptPromotionIn,
    PromptRenderIn,
    PromptRenderOut,
    PromptRollbackIn,
    PromptSummaryOut,
    PromptVersionOut,
)


class PromptListApi(generics.ListAPIView):
    """Prompts with the version each environment runs. `?search=` matches the name."""

    serializer_class = PromptSummaryOut

    @extend_schema(parameters=[OpenApiParameter("search", str)])
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return selectors.prompt_list(search=self.request.query_params.get("search", "").strip())


class PromptImportApi(APIView):
    """Sync a prompts folder: `{"files": {"summarize/v1.yaml": "...", "config.yaml": "..."}}` or a .tar.gz/.zip as `archive`."""

    permission_classes = [IsEditor]

    @extend_schema(
        request={
            "application/json": PromptImportIn,
            "multipart/form-data": PromptImportArchiveIn,
        },
        responses={200: PromptImportOut},
    )
    def post(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise ValidationFailed("Content-Length is not a number.") from None
        if length > settings.MLOPS_PROMPT_ARCHIVE_MAX_BYTES + 1024 * 1024:
            raise TooLarge(f"Request body is {length} bytes; the limit is {settings.MLOPS_PROMPT_ARCHIVE_MAX_BYTES} bytes.")
        if request.content_type.startswith("multipart/"):
            upload = request.FILES.get("archive")
            if upload is None:
                raise ValidationFailed("Send the folder as a file field named archive (.tar.gz or .zip).", fields={"archive": ["Required."]})
            files = services.archive_files(read_upload(upload, limit=settings.MLOPS_PROMPT_ARCHIVE_MAX_BYTES, what="The archive"), filename=upload.name)
        else:
            files = validated(PromptImportIn, request.data)["files"]
        result = services.prompts_import(files=files, actor=request.user)
        return Response(PromptImportOut(result).data)


class PromptDetailApi(APIView):
    @extend_schema(responses=PromptDetailOut)
    def get(self, request, name):
        prompt = selectors.prompt_get(name=name)
        return Response(PromptDetailOut(prompt, context={"versions": selectors.prompt_version_list(prompt=prompt)}).data)


class PromptVersionDetailApi(APIView):
    @extend_schema(responses=PromptVersionOut)
    def get(self, request, name, version):
        return Response(PromptVersionOut(selectors.prompt_version_get(prompt_name=name, version=version)).data)


class PromptEnvironmentApi(APIView):
    @extend_schema(responses=PromptVersionOut)
    def get(self, request, name, environment):
        if environment not in Environment.values:
            raise ValidationFailed(f"Unknown environment {environment!r}; use one of {', '.join(Environment.values)}.")
        return Response(PromptVersionOut(selectors.prompt_environment_get(prompt_name=name, environment=environment)).data)


class PromptRenderApi(APIView):
    """Fill the template: every placeholder must be given and nothing else (a 400 names the variable)."""

    @extend_schema(request=PromptRenderIn, responses=PromptRenderOut)
    def post(self, request, name, version):
        found = selectors.prompt_version_get(prompt_name=name, version=version)
        variables = validated(PromptRenderIn, request.data)["variables"]
        try:
            text = prompt_templates.render(found.template, variables)
        except prompt_templates.RenderError as exc:
            fields = {n: ["Missing."] for n in exc.missing} | {n: ["Not a placeholder of this template."] for n in exc.unknown}
            raise ValidationFailed(str(exc), fields={f"variables.{k}": v for k, v in fields.items()}) from None
        rendered = {"system": found.system, "prompt": text, "model": found.llm_model, "temperature": found.temperature, "max_tokens": found.max_tokens}
        return Response(PromptRenderOut(rendered).data)


class PromptVersionPromoteApi(APIView):
    """`{"to", "reason", "strategy"?, "policy"?}` (editors): a promotion request. `"strategy": "canary"` (to prod only) asks for
    a staged rollout under the rollout policy `policy` (blank: default); its approval starts the rollout."""

    permission_classes = [IsEditor]

    @extend_schema(request=PromptPromotionIn, responses={201: PromotionOut})
    def post(self, request, name, version):
        found = selectors.prompt_version_get(prompt_name=name, version=version)
        data = validated(PromptPromotionIn, request.data)
        promotion = services.promotion_request_create(
            version=found, to_stage=data["to"], reason=data["reason"], actor=request.user, override_reason=data["override_reason"],
            strategy=data["strategy"], policy=data["policy"],
        )
        return Response(PromotionOut(selectors.promotion_get(promotion_id=promotion.pk)).data, status=status.HTTP_201_CREATED)


class PromptRollbackApi(APIView):
    permission_classes = [IsApprover]

    @extend_schema(request=PromptRollbackIn, responses=PromptVersionOut)
    def post(self, request, name):
        selectors.prompt_get(name=name)
        data = validated(PromptRollbackIn, request.data)
        version = services.prompt_rollback(prompt_name=name, environment=data["environment"], reason=data["reason"], actor=request.user)
        return Response(PromptVersionOut(selectors.prompt_version_get(prompt_name=name, version=version.version)).data)


class EvalSetApi(APIView):
    """An eval set version and a page of its rows (`?page=`, `?page_size=` up to 500)."""

    @extend_schema(responses=EvalSetPageOut, parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)])
    def get(self, request, name, version):
        eval_set = selectors.eval_set_get(prompt_name=name, version=version)
        page, size = request.query_params.get("page", "1"), request.query_params.get("page_size", "50")
        if not (page.isascii() and page.isdigit() and size.isascii() and size.isdigit()) or int(page) < 1 or not 1 <= int(size) <= 500:
            raise ValidationFailed("page must be 1 or more and page_size from 1 to 500.")
        lines = selectors.eval_set_lines(eval_set=eval_set)
        start = (int(page) - 1) * int(size)
        rows = [json.loads(line) for line in lines[start : start + int(size)]]
        return Response(EvalSetPageOut({"eval_set": eval_set, "count": len(lines), "page": int(page), "rows": rows}).data)
