"""`/api/v1/` routes of the registry. A trailing slash is optional on every path."""

from django.urls import re_path

from . import api

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
]
