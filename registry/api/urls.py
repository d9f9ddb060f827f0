"""`/api/v1/` routes of the registry. A trailing slash is optional on every path."""

from django.urls import re_path

from . import gates, models, prompts, tokens, webhooks

app_name = "registry-api"

# Any name reaches the view, so a bad one gets a 400 that explains the naming rule, not a bare 404.
NAME = r"(?P<name>[^/]+)"
N = r"(?P<version>[0-9]+)"

urlpatterns = [
    re_path(r"^me/?$", models.MeApi.as_view(), name="me"),
    re_path(r"^tokens/?$", tokens.TokenListApi.as_view(), name="token-list"),
    re_path(r"^tokens/(?P<token_id>[0-9]+)/revoke/?$", tokens.TokenRevokeApi.as_view(), name="token-revoke"),
    re_path(r"^models/?$", models.ModelListApi.as_view(), name="model-list"),
    re_path(rf"^models/{NAME}/?$", models.ModelDetailApi.as_view(), name="model-detail"),
    re_path(rf"^models/{NAME}/versions/?$", models.ModelVersionsApi.as_view(), name="version-list"),
    re_path(rf"^models/{NAME}/versions/{N}/?$", models.ModelVersionDetailApi.as_view(), name="version-detail"),
    re_path(rf"^models/{NAME}/versions/{N}/artifact/?$", models.ModelVersionArtifactApi.as_view(), name="version-artifact"),
    re_path(rf"^models/{NAME}/versions/{N}/promotions/?$", models.ModelVersionPromoteApi.as_view(), name="version-promote"),
    re_path(rf"^models/{NAME}/stages/(?P<stage>[a-z]+)/?$", models.ModelStageApi.as_view(), name="model-stage"),
    re_path(rf"^models/{NAME}/rollback/?$", models.ModelRollbackApi.as_view(), name="model-rollback"),
    re_path(r"^promotions/?$", models.PromotionListApi.as_view(), name="promotion-list"),
    re_path(r"^promotions/(?P<promotion_id>[0-9]+)/?$", models.PromotionDetailApi.as_view(), name="promotion-detail"),
    re_path(r"^promotions/(?P<promotion_id>[0-9]+)/approve/?$", models.PromotionApproveApi.as_view(), name="promotion-approve"),
    re_path(r"^promotions/(?P<promotion_id>[0-9]+)/reject/?$", models.PromotionRejectApi.as_view(), name="promotion-reject"),
    re_path(r"^audit/?$", models.AuditListApi.as_view(), name="audit-list"),
    re_path(r"^prompts/?$", prompts.PromptListApi.as_view(), name="prompt-list"),
    re_path(r"^prompts/import/?$", prompts.PromptImportApi.as_view(), name="prompt-import"),
    re_path(rf"^prompts/{NAME}/?$", prompts.PromptDetailApi.as_view(), name="prompt-detail"),
    re_path(rf"^prompts/{NAME}/versions/{N}/?$", prompts.PromptVersionDetailApi.as_view(), name="prompt-version-detail"),
    re_path(rf"^prompts/{NAME}/versions/{N}/render/?$", prompts.PromptRenderApi.as_view(), name="prompt-version-render"),
    re_path(rf"^prompts/{NAME}/versions/{N}/promotions/?$", prompts.PromptVersionPromoteApi.as_view(), name="prompt-version-promote"),
    re_path(rf"^prompts/{NAME}/environments/(?P<environment>[a-z]+)/?$", prompts.PromptEnvironmentApi.as_view(), name="prompt-environment"),
    re_path(rf"^prompts/{NAME}/rollback/?$", prompts.PromptRollbackApi.as_view(), name="prompt-rollback"),
    re_path(rf"^prompts/{NAME}/eval-sets/{N}/?$", prompts.EvalSetApi.as_view(), name="eval-set-detail"),
    # Quality gates
    re_path(rf"^models/{NAME}/versions/{N}/evaluations/?$", gates.ModelEvaluationsApi.as_view(), name="model-evaluations"),
    re_path(rf"^models/{NAME}/versions/{N}/gates/?$", gates.ModelGatesApi.as_view(), name="model-gates"),
    re_path(rf"^models/{NAME}/gate-policy/?$", gates.ModelPolicyApi.as_view(), name="model-gate-policy"),
    re_path(rf"^models/{NAME}/schema/?$", gates.ModelSchemaApi.as_view(), name="model-schema"),
    re_path(rf"^prompts/{NAME}/versions/{N}/evaluations/?$", gates.PromptEvaluationsApi.as_view(), name="prompt-evaluations"),
    re_path(rf"^prompts/{NAME}/versions/{N}/gates/?$", gates.PromptGatesApi.as_view(), name="prompt-gates"),
    re_path(rf"^prompts/{NAME}/gate-policy/?$", gates.PromptPolicyApi.as_view(), name="prompt-gate-policy"),
    re_path(r"^evaluations/(?P<evaluation_id>[0-9]+)/?$", gates.EvaluationDetailApi.as_view(), name="evaluation-detail"),
    # Webhooks
    re_path(rf"^models/{NAME}/webhooks/?$", webhooks.ModelWebhooksApi.as_view(), name="model-webhooks"),
    re_path(rf"^prompts/{NAME}/webhooks/?$", webhooks.PromptWebhooksApi.as_view(), name="prompt-webhooks"),
    re_path(r"^webhooks/(?P<webhook_id>[0-9]+)/?$", webhooks.WebhookDetailApi.as_view(), name="webhook-detail"),
    re_path(r"^webhooks/(?P<webhook_id>[0-9]+)/test/?$", webhooks.WebhookPingApi.as_view(), name="webhook-test"),
    re_path(r"^webhooks/(?P<webhook_id>[0-9]+)/deliveries/?$", webhooks.WebhookDeliveriesApi.as_view(), name="webhook-deliveries"),
]
