"""REST API of LLM cost: spend budgets with their period's status, and the price table."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.roles import IsEditor, IsViewer
from mlops_site.serializers import validated

from .. import selectors, services
from .serializers import BudgetIn, BudgetOut, PriceIn, PriceOut


def _budget(budget) -> dict:
    return BudgetOut({"budget": budget, "status": selectors.budget_status(budget=budget)}).data


class BudgetListApi(generics.GenericAPIView):
    """GET: budgets with this period's spend, share and forecast (paginated; one query for the spend of the whole page).
    POST (editors): create or change one (201); see BudgetIn."""

    serializer_class = BudgetOut

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "POST" else [IsViewer()]

    @extend_schema(responses=BudgetOut(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.budget_list())
        statuses = selectors.budget_statuses(budgets=page)
        return self.get_paginated_response(BudgetOut([{"budget": b, "status": statuses[b.pk]} for b in page], many=True).data)

    @extend_schema(request=BudgetIn, responses={201: BudgetOut})
    def post(self, request):
        budget = services.budget_set(**validated(BudgetIn, request.data), actor=request.user)
        return Response(_budget(budget), status=status.HTTP_201_CREATED)


class BudgetDetailApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(responses=BudgetOut)
    def get(self, request, name):
        return Response(_budget(selectors.budget_get(name=name)))


class PriceListApi(generics.GenericAPIView):
    """GET: the price table, by pattern and newest first (paginated; `?search=` matches the pattern).
    POST (editors): add a price, in USD per token, in force from `effective_from`; the same pattern and date twice is a 409."""

    serializer_class = PriceOut

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "POST" else [IsViewer()]

    @extend_schema(parameters=[OpenApiParameter("search", str)], responses=PriceOut(many=True))
    def get(self, request):
        page = self.paginate_queryset(selectors.price_list(search=request.query_params.get("search", "").strip()))
        return self.get_paginated_response(PriceOut(page, many=True).data)

    @extend_schema(request=PriceIn, responses={201: PriceOut})
    def post(self, request):
        price = services.price_set(**validated(PriceIn, request.data), actor=request.user)
        return Response(PriceOut(price).data, status=status.HTTP_201_CREATED)
