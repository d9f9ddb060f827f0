"""REST API of canary rollouts (`/api/v1/`): routing, rollouts and a person's decisions on them, rollout policies.
Each view validates, calls one service or selector, and answers through a typed serializer."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import IsApprover, IsViewer
from registry import selectors as registry_selectors

from .. import selectors, services
from ..models import RolloutStatus
from ..services.rollout_policies import DEFAULT_POLICY_NAME
from .experiments import validated_input
from .serializers import ReasonIn, RolloutDetailOut, RolloutOut, RolloutPolicyIn, RolloutPolicyOut, RouteOut


class RouteApi(APIView):
    """`?model=NAME&unit_id=U` (or `?prompt=NAME`): which version serves this unit now. Without a rollout the production
    (prod) version; during one the candidate for the units in its share (sticky as the share grows), the baseline for the
    others; in the shadow stage the baseline, with `shadow.version` to mirror the request to. Cached 5 s per subject,
    forgotten on every stage change. 404 for an unknown subject or nothing to serve; 400 for a missing or too long unit_id."""

    permission_classes = [IsViewer]

    @extend_schema(responses=RouteOut, parameters=[OpenApiParameter("model", str), OpenApiParameter("prompt", str),
                                                   OpenApiParameter("unit_id", str, required=True)])
    def get(self, request):
        params = request.query_params
        route = services.route(unit_id=params.get("unit_id"), model=params.get("model"), prompt=params.get("prompt"))
        return Response(RouteOut(route).data)


class RolloutListApi(generics.GenericAPIView):
    """Rollouts, newest first (paginated): stage, share, health and the latest evaluation; `?status=`, `?model=`, `?prompt=`."""

    permission_classes = [IsViewer]
    serializer_class = RolloutOut

    @extend_schema(responses=RolloutOut(many=True), parameters=[
        OpenApiParameter("status", str, enum=RolloutStatus.values), OpenApiParameter("model", str), OpenApiParameter("prompt", str)])
    def get(self, request):
        params = request.query_params
        model = registry_selectors.model_get(name=params["model"]) if params.get("model") else None
        prompt = registry_selectors.prompt_get(name=params["prompt"]) if params.get("prompt") else None
        page = self.paginate_queryset(selectors.rollout_list(status=params.get("status") or None, model=model, prompt=prompt))
        return self.get_paginated_response(RolloutOut(page, many=True).data)


def _rollout(rollout_id) -> dict:
    return RolloutDetailOut(selectors.rollout_get(rollout_id=rollout_id)).data


class RolloutDetailApi(APIView):
    """One rollout with its policy and every decision (with the numbers each read)."""

    permission_classes = [IsViewer]

    @extend_schema(responses=RolloutDetailOut)
    def get(self, request, rollout_id):
        return Response(_rollout(rollout_id))


class _RolloutDecisionApi(APIView):
    """A person's decision `{"reason"}` (approvers; audited). 409 when the rollout's status does not allow it."""

    permission_classes = [IsApprover]
    service = None  # the service of the decision, a staticmethod

    @extend_schema(request=ReasonIn, responses=RolloutDetailOut)
    def post(self, request, rollout_id):
        data = validated_input(ReasonIn, request.data)
        self.service(rollout_id=int(rollout_id), reason=data["reason"], actor=request.user)
        return Response(_rollout(rollout_id))


class RolloutAdvanceApi(_RolloutDecisionApi):
    """Move a running or paused rollout to its next stage now, whatever its gate says; from the last stage it completes
    (the candidate takes production through the registry)."""

    service = staticmethod(services.rollout_advance)


class RolloutPauseApi(_RolloutDecisionApi):
    """Pause a running rollout: it keeps its share and stops advancing; its rollback triggers still act."""

    service = staticmethod(services.rollout_pause)


class RolloutResumeApi(_RolloutDecisionApi):
    """Resume a paused rollout: its stage starts over (a fresh window and durations)."""

    service = staticmethod(services.rollout_resume)


class RolloutRollbackApi(_RolloutDecisionApi):
    """Roll back now: all traffic back to the baseline (production never moved); the promotion ends rolled back."""

    service = staticmethod(services.rollout_rollback)


class RolloutPolicyListApi(generics.GenericAPIView):
    """GET: the newest version of every rollout policy. POST: a policy (approvers, 201); an existing name gets its next
    version, running rollouts keep the version they started with. 400 names the field at fault."""

    serializer_class = RolloutPolicyOut

    def get_permissions(self):
        return [IsApprover()] if self.request.method == "POST" else [IsViewer()]

    @extend_schema(responses=RolloutPolicyOut(many=True))
    def get(self, request):
        services.rollout_policy_default_ensure()
        page = self.paginate_queryset(selectors.rollout_policy_list())
        return self.get_paginated_response(RolloutPolicyOut(page, many=True).data)

    @extend_schema(request=RolloutPolicyIn, responses={201: RolloutPolicyOut})
    def post(self, request):
        data = dict(validated_input(RolloutPolicyIn, request.data))
        stages = [{**stage, "gate": dict(stage["gate"]) if stage.get("gate") else stage.get("gate")} for stage in data.pop("stages")]
        triggers = [dict(trigger) for trigger in data.pop("triggers")]
        policy = services.rollout_policy_create(**data, stages=stages, triggers=triggers, actor=request.user)
        return Response(RolloutPolicyOut(policy).data, status=status.HTTP_201_CREATED)


class RolloutPolicyDetailApi(APIView):
    """A policy's newest version, or `?version=N`."""

    permission_classes = [IsViewer]

    @extend_schema(responses=RolloutPolicyOut, parameters=[OpenApiParameter("version", int)])
    def get(self, request, name):
        raw = request.query_params.get("version")
        if raw is not None and not raw.isdigit():
            raise ValidationFailed("version: a whole number.", fields={"version": ["a whole number"]})
        if name == DEFAULT_POLICY_NAME:
            services.rollout_policy_default_ensure()  # the default exists from its first use, reading it included
        return Response(RolloutPolicyOut(selectors.rollout_policy_get(name=name, version=int(raw) if raw else None)).data)
