"""`/api/v1/` routes of the registry. A trailing slash is optional on every path."""

from django.urls import re_path

from . import api, api_gates, api_prompts

app_name = "registry-api"

# Any name reaches the view, so a bad one gets a 400 that explains the naming rule, not a bare 404.
NAME = r"(?P<name>[^/]+)"
N = r"(?P<version>[0-9]+)"

urlpatterns = [
    re_path(r"^me/?$", api.MeApi.as_view(), name="me"),
    re_path(r"^models/?$", api.ModelListApi.as_view(), name="model-list"),
    re_path(rf"^models/{NAME}/?$", api.ModelDetailApi.as_view(), name="model-detail"),
    re_path(rf"^models/{NAME}/versions/?$", api.ModelVersionsApi.as_view(), name="version-list"),
    re_path(rf"^models/{NAME}/versions/{N}/?$", api.ModelVersionDetailApi.as_view(), name="version-detail"),
    re_path(rf"^models/{NAME}/versions/{N}/artifact/?$", api.ModelVersionArtifactApi.as_view(), name="version-artifact"),
    re_path(rf"^models/{NAME}/versions/{N}/promotions/?$", api.ModelVersionPromoteApi.as_view(), name="version-promote"),
    re_path(rf"^models/{NAME}/stages/(?P<stage>[a-z]+)/?$", api.ModelStageApi.as_view(), name="model-stage"),
    re_path(rf"^models/{NAME}/rollback/?$", api.ModelRollbackApi.as_view(), name="model-rollback"),
    re_path(r"^promotions/?$", api.PromotionListApi.as_view(), name="promotion-list"),
    re_path(r"^promotions/(?P<promotion_id>[0-9]+)/?$", api.PromotionDetailApi.as_view(), name="promotion-detail"),
    re_path(r"^promotions/(?P<promotion_id>[0-9]+)/approve/?$", api.PromotionApproveApi.as_view(), name="promotion-approve"),
    re_path(r"^promotions/(?P<promotion_id>[0-9]+)/reject/?$", api.PromotionRejectApi.as_view(), name="promotion-reject"),
    re_path(r"^audit/?$", api.AuditListApi.as_view(), name="audit-list"),
    re_path(r"^prompts/?$", api_prompts.PromptListApi.as_view(), name="prompt-list"),
    re_path(r"^prompts/import/?$", api_prompts.PromptImportApi.as_view(), name="prompt-import"),
    re_path(rf"^prompts/{NAME}/?$", api_prompts.PromptDetailApi.as_view(), name="prompt-detail"),
    re_path(rf"^prompts/{NAME}/versions/{N}/?$", api_prompts.PromptVersionDetailApi.as_view(), name="prompt-version-detail"),
    re_path(rf"^prompts/{NAME}/versions/{N}/render/?$", api_prompts.PromptRenderApi.as_view(), name="prompt-version-render"),
    re_path(rf"^prompts/{NAME}/versions/{N}/promotions/?$", api_prompts.PromptVersionPromoteApi.as_view(), name="prompt-version-promote"),
    re_path(rf"^prompts/{NAME}/environments/(?P<environment>[a-z]+)/?$", api_prompts.PromptEnvironmentApi.as_view(), name="prompt-environment"),
    re_path(rf"^prompts/{NAME}/rollback/?$", api_prompts.PromptRollbackApi.as_view(), name="prompt-rollback"),
    re_path(rf"^prompts/{NAME}/eval-sets/{N}/?$", api_prompts.EvalSetApi.as_view(), name="eval-set-detail"),
    # Quality gates
    re_path(rf"^models/{NAME}/versions/{N}/evaluations/?$", api_gates.ModelEvaluationsApi.as_view(), name="model-evaluations"),
    re_path(rf"^models/{NAME}/versions/{N}/gates/?$", api_gates.ModelGatesApi.as_view(), name="model-gates"),
    re_path(rf"^models/{NAME}/gate-policy/?$", api_gates.ModelPolicyApi.as_view(), name="model-gate-policy"),
    re_path(rf"^models/{NAME}/schema/?$", api_gates.ModelSchemaApi.as_view(), name="model-schema"),
    re_path(rf"^prompts/{NAME}/versions/{N}/evaluations/?$", api_gates.PromptEvaluationsApi.as_view(), name="prompt-evaluations"),
    re_path(rf"^prompts/{NAME}/versions/{N}/gates/?$", api_gates.PromptGatesApi.as_view(), name="prompt-gates"),
    re_path(rf"^prompts/{NAME}/gate-policy/?$", api_gates.PromptPolicyApi.as_view(), name="prompt-gate-policy"),
    re_path(r"^evaluations/(?P<evaluation_id>[0-9]+)/?$", api_gates.EvaluationDetailApi.as_view(), name="evaluation-detail"),
]
