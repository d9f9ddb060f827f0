"""HTML pages of the registry."""

from django.urls import path

from .views import gates, models, prompts, runs, tokens, webhooks

app_name = "registry"

urlpatterns = [
    path("models/", models.model_list, name="model-list"),
    path("models/<str:name>/", models.model_detail, name="model-detail"),
    path("models/<str:name>/compare/", models.version_compare, name="version-compare"),
    path("models/<str:name>/rollback/", models.model_rollback, name="model-rollback"),
    path("models/<str:name>/versions/<int:version>/", models.version_detail, name="version-detail"),
    path("models/<str:name>/versions/<int:version>/artifact/", models.version_artifact, name="version-artifact"),
    path("models/<str:name>/versions/<int:version>/promote/", models.version_promote, name="version-promote"),
    path("promotions/", models.promotion_list, name="promotion-list"),
    path("promotions/<int:promotion_id>/approve/", models.promotion_approve, name="promotion-approve"),
    path("promotions/<int:promotion_id>/reject/", models.promotion_reject, name="promotion-reject"),
    path("audit/", models.audit_list, name="audit-list"),
    path("tokens/", tokens.token_list, name="token-list"),
    path("tokens/<int:token_id>/revoke/", tokens.token_revoke, name="token-revoke"),
    path("prompts/", prompts.prompt_list, name="prompt-list"),
    path("prompts/import/", prompts.prompt_import, name="prompt-import"),
    path("prompts/<str:name>/", prompts.prompt_detail, name="prompt-detail"),
    path("prompts/<str:name>/rollback/", prompts.prompt_rollback, name="prompt-rollback"),
    path("prompts/<str:name>/versions/<int:version>/", prompts.prompt_version_detail, name="prompt-version-detail"),
    path("prompts/<str:name>/versions/<int:version>/promote/", prompts.prompt_version_promote, name="prompt-version-promote"),
    path("prompts/<str:name>/eval-sets/<int:version>/", prompts.eval_set_detail, name="eval-set-detail"),
    # Quality gates
    path("models/<str:name>/gates/", gates.model_gates, name="model-gates"),
    path("models/<str:name>/schema/", gates.model_schema, name="model-schema"),
    path("models/<str:name>/versions/<int:version>/evaluations/", gates.version_evaluate, name="version-evaluate"),
    path("prompts/<str:name>/gates/", gates.prompt_gates, name="prompt-gates"),
    path("prompts/<str:name>/versions/<int:version>/evaluations/", gates.prompt_version_evaluate, name="prompt-version-evaluate"),
    path("evaluations/<int:evaluation_id>/", gates.evaluation_detail, name="evaluation-detail"),
    # Webhooks
    path("models/<str:name>/webhooks/", webhooks.model_webhook_add, name="model-webhook-add"),
    path("prompts/<str:name>/webhooks/", webhooks.prompt_webhook_add, name="prompt-webhook-add"),
    path("webhooks/<int:webhook_id>/delete/", webhooks.webhook_delete, name="webhook-delete"),
    path("webhooks/<int:webhook_id>/test/", webhooks.webhook_test, name="webhook-test"),
    # Training runs (MLflow tracking): a run's pages sit under /runs/r/ so a run id never reads as a group id.
    path("runs/", runs.run_group_list, name="run-group-list"),
    path("runs/compare/", runs.run_compare, name="run-compare"),
    path("runs/<int:group_id>/", runs.run_group_detail, name="run-group-detail"),
    path("runs/r/<str:run_id>/", runs.run_detail, name="run-detail"),
    path("runs/r/<str:run_id>/artifacts/<path:path>", runs.run_artifact, name="run-artifact"),
]
