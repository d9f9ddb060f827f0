"""Run groups (MLflow experiments), runs, metric history and logged models."""

from __future__ import annotations

from rest_framework.response import Response

from mlops_site.exceptions import NotFound

from ..models import LoggedModel, RunMetric
from ..services import tracking
from . import shapes
from .base import MlflowView, next_token, page_offset, page_size, required

MAX_HISTORY_PAGE = 25_000


def run_body(run) -> dict:
    """A run as runs/get answers it: three queries (params, tags, latest metrics) plus its logged models."""
    latest = tracking.run_latest_metrics([run])[run.pk]
    params = list(run.params.order_by("key").values_list("key", "value"))
    tags = list(run.tags.order_by("key").values_list("key", "value"))
    outputs = list(LoggedModel.objects.filter(run=run).order_by("created_at"))
    return shapes.run(run, latest=latest, params=params, tags=tags, outputs=outputs)


class ExperimentCreate(MlflowView):
    def post(self, request):
        args = self.arguments(request)
        group = tracking.run_group_create(name=args.get("name"), tags=args.get("tags"), actor=request.user)
        return Response({"experiment_id": str(group.pk)})


class ExperimentGet(MlflowView):
    def get(self, request):
        group = tracking.run_group_get(required(self.arguments(request), "experiment_id"))
        return Response({"experiment": shapes.experiment(group)})


class ExperimentGetByName(MlflowView):
    def get(self, request):
        group = tracking.run_group_by_name(required(self.arguments(request), "experiment_name"))
        return Response({"experiment": shapes.experiment(group)})


class RunCreate(MlflowView):
    def post(self, request):
        args = self.arguments(request)
        run = tracking.run_create(
            group_id=args.get("experiment_id"), actor=request.user, run_name=args.get("run_name") or "", start_time=args.get("start_time"),
            tags=args.get("tags"), user_id=args.get("user_id") or "",
        )
        return Response({"run": run_body(run)})


class RunGet(MlflowView):
    def get(self, request):
        run = tracking.run_get(required(self.arguments(request), "run_id", "run_uuid"))
        return Response({"run": run_body(run)})


class RunUpdate(MlflowView):
    def post(self, request):
        args = self.arguments(request)
        run = tracking.run_update(
            run_id=required(args, "run_id", "run_uuid"), actor=request.user, status=args.get("status"), end_time=args.get("end_time"),
            run_name=args.get("run_name"),
        )
        return Response({"run_info": shapes.run_info(run)})


class RunLogBatch(MlflowView):
    def post(self, request):
        args = self.arguments(request)
        tracking.run_log_batch(run_id=required(args, "run_id"), actor=request.user, metrics=args.get("metrics"), params=args.get("params"),
                               tags=args.get("tags"))
        return Response({})


class RunLogMetric(MlflowView):
    """One value (mlflow.log_metric): a batch of one."""

    def post(self, request):
        args = self.arguments(request)
        item = {k: args.get(k) for k in ("key", "value", "timestamp", "step")}
        tracking.run_log_batch(run_id=required(args, "run_id", "run_uuid"), actor=request.user, metrics=[item])
        return Response({})


class RunLogParam(MlflowView):
    def post(self, request):
        args = self.arguments(request)
        tracking.run_log_batch(run_id=required(args, "run_id", "run_uuid"), actor=request.user,
                               params=[{"key": args.get("key"), "value": args.get("value")}])
        return Response({})


class RunSetTag(MlflowView):
    def post(self, request):
        args = self.arguments(request)
        tracking.run_log_batch(run_id=required(args, "run_id", "run_uuid"), actor=request.user,
                               tags=[{"key": args.get("key"), "value": args.get("value")}])
        return Response({})


class RunDeleteTag(MlflowView):
    def post(self, request):
        args = self.arguments(request)
        tracking.run_tag_delete(run_id=required(args, "run_id"), key=args.get("key"), actor=request.user)
        return Response({})


class RunDelete(MlflowView):
    deleted = True

    def post(self, request):
        tracking.run_lifecycle_set(run_id=required(self.arguments(request), "run_id"), actor=request.user, deleted=self.deleted)
        return Response({})


class RunRestore(RunDelete):
    deleted = False


class RunOutputs(MlflowView):
    def post(self, request):
        args = self.arguments(request)
        tracking.run_outputs(run_id=required(args, "run_id"), actor=request.user, models=args.get("models"))
        return Response({})


class MetricHistory(MlflowView):
    """Every logged value of one metric of a run, in step then time order; pages of `max_results` (25,000 at most)
    with a `next_page_token`."""

    def get(self, request):
        args = self.arguments(request)
        run = tracking.run_get(required(args, "run_id", "run_uuid"))
        key = required(args, "metric_key")
        size = page_size(args.get("max_results"), limit=MAX_HISTORY_PAGE, default=MAX_HISTORY_PAGE)
        offset = page_offset(args.get("page_token"))
        rows = list(RunMetric.objects.filter(run=run, key=key).order_by("step", "timestamp", "id")[offset:offset + size + 1])
        body = {"metrics": [shapes.metric(m) for m in rows[:size]]}
        if len(rows) > size:
            body["next_page_token"] = next_token(offset + size)
        return Response(body)


class LoggedModelCreate(MlflowView):
    def post(self, request):
        args = self.arguments(request)
        model = tracking.logged_model_create(
            group_id=args.get("experiment_id"), actor=request.user, name=args.get("name") or "", model_type=args.get("model_type") or "",
            source_run_id=args.get("source_run_id") or "", params=args.get("params"), tags=args.get("tags"),
        )
        return Response({"model": shapes.logged_model(model)})


class LoggedModelDetail(MlflowView):
    """GET a logged model; PATCH its status (finalize: LOGGED_MODEL_READY once every file is uploaded)."""

    def get(self, request, model_id: str):
        return Response({"model": shapes.logged_model(tracking.logged_model_get(model_id))})

    def patch(self, request, model_id: str):
        model = tracking.logged_model_finalize(model_id=model_id, actor=request.user, status=self.arguments(request).get("status"))
        return Response({"model": shapes.logged_model(model)})


class LoggedModelTags(MlflowView):
    def patch(self, request, model_id: str):
        tracking.logged_model_set_tags(model_id=model_id, actor=request.user, tags=self.arguments(request).get("tags"))
        return Response({})


class EndpointNotFound(MlflowView):
    """Any other path under the MLflow prefix: MLflow's answer for an endpoint this server does not have."""

    read_only = True  # 404 for anyone signed in, whatever the method

    def _missing(self, request, rest: str = ""):
        raise NotFound(f"This server does not offer the MLflow endpoint {request.path}.", code="endpoint_not_found")

    get = post = patch = put = delete = _missing
