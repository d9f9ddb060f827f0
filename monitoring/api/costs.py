"""REST API of LLM cost: spend budgets with their period's status, and the price table."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import IsEditor, IsViewer
from mlops_site.serializers import validated
from mlops_site.uploads import read_upload

from .. import selectors, services
from ..services.prices import MAX_PRICE_FILE_BYTES
from .serializers import BudgetIn, BudgetOut, PriceIn, PriceOut, PricesImportIn, PricesImportOut


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


class PricesImportApi(APIView):
    """POST (editors): import prices, adding only the ones that changed. `{"defaults": true}`: the snapshot of LiteLLM's
    map shipped with the server, in force from its date; `{"prices": {...}}` or a multipart `file`: a LiteLLM
    model_prices_and_context_window.json, in force from `effective_from` (default today, UTC). A file that is not
    such a map is a 400; one over 16 MB a 413."""

    permission_classes = [IsEditor]

    @extend_schema(request={"application/json": PricesImportIn, "multipart/form-data": PricesImportIn}, responses=PricesImportOut)
    def post(self, request):
        if request.content_type.startswith("multipart/"):
            upload = request.FILES.get("file")
            if upload is None:
                raise ValidationFailed("Send the LiteLLM price map as the multipart field 'file'.", fields={"file": ["required"]})
            form = validated(PricesImportIn, {k: v for k, v in request.data.items() if k != "file"})
            if form["defaults"]:
                raise ValidationFailed("Send a file or defaults, not both.", fields={"defaults": ["not with a file"]})
            imported = services.prices_import_file(data=read_upload(upload, limit=MAX_PRICE_FILE_BYTES, what="The price file"),
                                                      effective_from=form["effective_from"], actor=request.user, filename=upload.name)
        else:
            form = validated(PricesImportIn, request.data)
            if form["defaults"] == (form["prices"] is not None):
                raise ValidationFailed("Send either defaults: true or prices (a LiteLLM price map).", fields={"prices": ["one of prices or defaults"]})
            if form["defaults"]:
                if form["effective_from"] is not None:
                    raise ValidationFailed("The defaults are in force from their snapshot's date.", fields={"effective_from": ["not with defaults"]})
                imported = services.prices_import_defaults(actor=request.user)
            else:
                imported = services.prices_import_file(data=form["prices"], effective_from=form["effective_from"], actor=request.user)
        result = imported.result
        return Response(PricesImportOut({
            "effective_from": imported.effective_from, "source": imported.source, "created": result.created,
            "unchanged": len(result.unchanged), "conflicts": result.conflicts,
        }).data)
