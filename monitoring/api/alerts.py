"""REST API of alerts: the rules with their current state; acknowledge one, silence one, set its action."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.roles import IsApprover, IsEditor, IsViewer
from mlops_site.serializers import validated

from .. import selectors, services
from ..models import AlertState
from .serializers import AlertActionIn, AlertRuleOut, AlertSilenceIn


class AlertListApi(generics.GenericAPIView):
    """Alert rules with their current state (`?state=alert` to filter, `?model=` or `?prompt=` for one subject)."""

    permission_classes = [IsViewer]
    serializer_class = AlertRuleOut

    @extend_schema(responses=AlertRuleOut(many=True), parameters=[
        OpenApiParameter("state", str, enum=AlertState.values), OpenApiParameter("model", str), OpenApiParameter("prompt", str)])
    def get(self, request):
        params = request.query_params
        rules = selectors.alert_rule_list(state=params.get("state", ""), model=params.get("model", ""), prompt=params.get("prompt", ""))
        page = self.paginate_queryset(rules)
        return self.get_paginated_response(AlertRuleOut(page, many=True).data)


class AlertAcknowledgeApi(APIView):
    """Acknowledge a firing rule (409 while it is ok)."""

    permission_classes = [IsEditor]

    @extend_schema(request=None, responses=AlertRuleOut)
    def post(self, request, rule_id):
        return Response(AlertRuleOut(services.alert_acknowledge(rule_id=rule_id, actor=request.user)).data)


class AlertSilenceApi(APIView):
    """`{"hours": N}` silences notifications for N hours (0 ends a silence); states still change and are recorded."""

    permission_classes = [IsEditor]

    @extend_schema(request=AlertSilenceIn, responses=AlertRuleOut)
    def post(self, request, rule_id):
        hours = validated(AlertSilenceIn, request.data)["hours"]
        return Response(AlertRuleOut(services.alert_silence(rule_id=rule_id, hours=hours, actor=request.user)).data)


class AlertActionApi(APIView):
    """`{"action": "rollback_production"}` makes the rule roll its model's production (its prompt's prod) back, as the
    system, each time it enters the alert state; `{"action": "none"}` only notifies (the default). Approvers."""

    permission_classes = [IsApprover]

    @extend_schema(request=AlertActionIn, responses=AlertRuleOut)
    def post(self, request, rule_id):
        action = validated(AlertActionIn, request.data)["action"]
        return Response(AlertRuleOut(services.alert_action_set(rule_id=rule_id, action=action, actor=request.user)).data)
