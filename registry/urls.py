"""HTML pages of the registry."""

from django.urls import path

from . import views

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
]
