"""HTML pages of the registry."""

from django.urls import path

from . import views, views_gates, views_prompts

app_name = "registry"

urlpatterns = [
    path("models/", views.model_list, name="model-list"),
    path("models/<str:name>/", views.model_detail, name="model-detail"),
    path("models/<str:name>/compare/", views.version_compare, name="version-compare"),
    path("models/<str:name>/rollback/", views.model_rollback, name="model-rollback"),
    path("models/<str:name>/versions/<int:version>/", views.version_detail, name="version-detail"),
    path("models/<str:name>/versions/<int:version>/artifact/", views.version_artifact, name="version-artifact"),
    path("models/<str:name>/versions/<int:version>/promote/", views.version_promote, name="version-promote"),
    path("promotions/", views.promotion_list, name="promotion-list"),
    path("promotions/<int:promotion_id>/approve/", views.promotion_approve, name="promotion-approve"),
    path("promotions/<int:promotion_id>/reject/", views.promotion_reject, name="promotion-reject"),
    path("audit/", views.audit_list, name="audit-list"),
    path("prompts/", views_prompts.prompt_list, name="prompt-list"),
    path("prompts/import/", views_prompts.prompt_import, name="prompt-import"),
    path("prompts/<str:name>/", views_prompts.prompt_detail, name="prompt-detail"),
    path("prompts/<str:name>/rollback/", views_prompts.prompt_rollback, name="prompt-rollback"),
    path("prompts/<str:name>/versions/<int:version>/", views_prompts.prompt_version_detail, name="prompt-version-detail"),
    path("prompts/<str:name>/versions/<int:version>/promote/", views_prompts.prompt_version_promote, name="prompt-version-promote"),
    path("prompts/<str:name>/eval-sets/<int:version>/", views_prompts.eval_set_detail, name="eval-set-detail"),
    # Quality gates
    path("models/<str:name>/gates/", views_gates.model_gates, name="model-gates"),
    path("models/<str:name>/schema/", views_gates.model_schema, name="model-schema"),
    path("models/<str:name>/versions/<int:version>/evaluations/", views_gates.version_evaluate, name="version-evaluate"),
    path("prompts/<str:name>/gates/", views_gates.prompt_gates, name="prompt-gates"),
    path("prompts/<str:name>/versions/<int:version>/evaluations/", views_gates.prompt_version_evaluate, name="prompt-version-evaluate"),
    path("evaluations/<int:evaluation_id>/", views_gates.evaluation_detail, name="evaluation-detail"),
]
