"""REST API of experiments (`/api/v1/`): validate, call one service or selector, answer through a typed serializer."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from mlops_site.exceptions import ValidationFailed
from mlops_site.roles import IsEditor, IsViewer
from registry import selectors as registry_selectors

from .. import selectors, services
from ..models import ExperimentStatus, MetricKind
from .serializers import (
    AnalysisOut,
    AssignIn,
    AssignmentOut,
    AssignmentsOut,
    DecisionIn,
    ExperimentCreateIn,
    ExperimentOut,
    OutcomeBatchIn,
    OutcomesOut,
    ReasonIn,
    ResultsOut,
    SampleSizeOut,
)


def _flat(errors, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested errors as {"variants[1].version": [...]}: every field named by its path."""
    out: dict[str, list[str]] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            # A list serializer's errors are keyed by the item's index.
            path = f"{prefix}[{key}]" if isinstance(key, int) else (f"{prefix}.{key}" if prefix else str(key))
            out.update(_flat(value, path))
    elif isinstance(errors, list) and any(isinstance(e, (dict, list)) for e in errors):
        for i, value in enumerate(errors):
            if value:
                out.update(_flat(value, f"{prefix}[{i}]"))
    else:
        out[prefix or "non_field_errors"] = [str(e) for e in (errors if isinstance(errors, list) else [errors])]
    return out


def validated_input(serializer_class, data) -> dict:
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        fields = _flat(serializer.errors)
        raise ValidationFailed("Invalid input: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()), fields=fields)
    return serializer.validated_data


def _experiment(key: str) -> dict:
    return ExperimentOut(selectors.experiment_get(key=key)).data


class ExperimentListApi(generics.GenericAPIView):
    """GET: experiments, newest first (paginated); `?status=`, `?model=NAME`, `?prompt=NAME`.
    POST: design one (editors, 201); see ExperimentCreateIn."""

    serializer_class = ExperimentOut

    def get_permissions(self):
        return [IsEditor()] if self.request.method == "POST" else [IsViewer()]

    @extend_schema(responses=ExperimentOut(many=True), parameters=[
        OpenApiParameter("status", str, enum=ExperimentStatus.values), OpenApiParameter("model", str), OpenApiParameter("prompt", str)])
    def get(self, request):
        params = request.query_params
        model = registry_selectors.model_get(name=params["model"]) if params.get("model") else None
        prompt = registry_selectors.prompt_get(name=params["prompt"]) if params.get("prompt") else None
        page = self.paginate_queryset(selectors.experiment_list(status=params.get("status") or None, model=model, prompt=prompt))
        return self.get_paginated_response(ExperimentOut(page, many=True).data)

    @extend_schema(request=ExperimentCreateIn, responses={201: ExperimentOut})
    def post(self, request):
        data = dict(validated_input(ExperimentCreateIn, request.data))
        subject = data.pop("subject")
        experiment = services.experiment_create(**data, model=subject.get("model"), prompt=subject.get("prompt"), actor=request.user)
        return Response(_experiment(experiment.key), status=status.HTTP_201_CREATED)


class ExperimentDetailApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(responses=ExperimentOut)
    def get(self, request, key):
        return Response(_experiment(key))


class ExperimentStartApi(APIView):
    """draft -> running `{"reason"}` (editors); 409 `gates_failed` when a variant's version fails its gates."""

    permission_classes = [IsEditor]

    @extend_schema(request=ReasonIn, responses=ExperimentOut)
    def post(self, request, key):
        data = validated_input(ReasonIn, request.data)
        services.experiment_start(experiment=selectors.experiment_get(key=key), reason=data["reason"], actor=request.user)
        return Response(_experiment(key))


class ExperimentStopApi(APIView):
    """running -> stopped `{"reason"}` (editors); one more analysis is queued."""

    permission_classes = [IsEditor]

    @extend_schema(request=ReasonIn, responses=ExperimentOut)
    def post(self, request, key):
        data = validated_input(ReasonIn, request.data)
        services.experiment_stop(experiment=selectors.experiment_get(key=key), reason=data["reason"], actor=request.user)
        return Response(_experiment(key))


class ExperimentDecisionApi(APIView):
    """`{"decision": "promote"|"discard"|"iterate", "variant"?, "reason"}` (editors). Promote records B's result on its
    gate card and opens a promotion request of B's version (an approver decides it)."""

    permission_classes = [IsEditor]

    @extend_schema(request=DecisionIn, responses=ExperimentOut)
    def post(self, request, key):
        data = validated_input(DecisionIn, request.data)
        services.experiment_decide(experiment=selectors.experiment_get(key=key), decision=data["decision"], variant=data.get("variant"),
                                   reason=data["reason"], actor=request.user)
        return Response(_experiment(key))


class ExperimentAssignApi(APIView):
    """`{"unit_id"}` -> `{"unit_id", "variant", "version", "bucket"}`, or `{"unit_ids": [...]}` (up to 10,000) ->
    `{"assignments": [...]}` in the order asked (editors: serving code). The first assignment is the unit's exposure."""

    permission_classes = [IsEditor]

    @extend_schema(request=AssignIn, responses=PolymorphicProxySerializer(
        component_name="AssignResult", serializers=[AssignmentOut, AssignmentsOut], resource_type_field_name=None))
    def post(self, request, key):
        body = request.data
        if not isinstance(body, dict) or len(body) != 1 or not ({"unit_id", "unit_ids"} & set(body)):
            raise ValidationFailed('Send {"unit_id": "..."} or {"unit_ids": [...]}.', fields={"unit_id": ["give unit_id or unit_ids"]})
        if "unit_id" in body:
            (assignment,) = services.experiment_assign(key=key, unit_ids=[body["unit_id"]], field="unit_id", actor=request.user)
            return Response(AssignmentOut(assignment).data)
        assignments = services.experiment_assign(key=key, unit_ids=body["unit_ids"], actor=request.user)
        return Response(AssignmentsOut({"assignments": assignments}).data)


class OutcomesApi(APIView):
    """`{"outcomes": [{"unit_id", "metric", "value", "timestamp", "outcome_id"?}]}`, up to 10,000 (editors). 202
    `{"accepted", "duplicates", "unexposed"}`; a bad outcome refuses the batch, naming each index and field."""

    permission_classes = [IsEditor]

    @extend_schema(request=OutcomeBatchIn, responses={202: OutcomesOut})
    def post(self, request):
        result = services.outcomes_ingest(payload=request.data, actor=request.user)
        return Response(OutcomesOut(result).data, status=status.HTTP_202_ACCEPTED)


class ExperimentResultsApi(APIView):
    """The newest finished analysis with its snapshot; 404 `no_results` (extra.analysis_status) before the first."""

    permission_classes = [IsViewer]

    @extend_schema(responses=ResultsOut)
    def get(self, request, key):
        return Response(ResultsOut(selectors.experiment_results(experiment=selectors.experiment_get(key=key))).data)


class ExperimentAnalysesApi(APIView):
    """Queue an analysis now (the Refresh button; editors). 202 with the analysis row; one already waiting is reused."""

    permission_classes = [IsEditor]

    @extend_schema(request=None, responses={202: AnalysisOut})
    def post(self, request, key):
        analysis = services.analysis_request(experiment=selectors.experiment_get(key=key), actor=request.user)
        return Response(AnalysisOut(analysis).data, status=status.HTTP_202_ACCEPTED)


def _query_number(params, name: str, default: float | None = None) -> float | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValidationFailed(f"{name}: a number.", fields={name: ["a number"]}) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValidationFailed(f"{name}: a finite number.", fields={name: ["a finite number"]})
    return value


class SampleSizeApi(APIView):
    """The sample-size calculator: `?kind=proportion&baseline=0.1&mde=0.02&alpha=0.05&power=0.8` (means: `&std=` instead
    of `baseline`), optional `&arms=` (default 2) and `&model=NAME` or `&prompt=NAME` for the expected duration at the
    subject's current traffic."""

    permission_classes = [IsViewer]

    @extend_schema(responses=SampleSizeOut, parameters=[
        OpenApiParameter("kind", str, enum=MetricKind.values, required=True), OpenApiParameter("mde", float, required=True),
        OpenApiParameter("baseline", float), OpenApiParameter("std", float), OpenApiParameter("alpha", float), OpenApiParameter("power", float),
        OpenApiParameter("arms", int), OpenApiParameter("model", str), OpenApiParameter("prompt", str)])
    def get(self, request):
        params = request.query_params
        mde = _query_number(params, "mde")
        if mde is None:
            raise ValidationFailed("mde: required.", fields={"mde": ["required"]})
        arms = params.get("arms", "2")
        if not arms.isdigit():
            raise ValidationFailed("arms: a whole number of 2 to 10.", fields={"arms": ["2 to 10"]})
        model = registry_selectors.model_get(name=params["model"]) if params.get("model") else None
        prompt = registry_selectors.prompt_get(name=params["prompt"]) if params.get("prompt") else None
        estimate = selectors.sample_size_estimate(
            kind=params.get("kind", ""), mde=mde, alpha=_query_number(params, "alpha", 0.05), power=_query_number(params, "power", 0.8),
            baseline=_query_number(params, "baseline"), std=_query_number(params, "std"), arms=int(arms), model=model, prompt=prompt,
        )
        return Response(SampleSizeOut(estimate).data)
