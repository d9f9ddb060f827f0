"""runs/search and experiments/search (mlflow.search_runs, MlflowClient.search_experiments)."""

from __future__ import annotations

from django.db.models import F, OuterRef, Prefetch, Subquery
from rest_framework.response import Response

from mlops_site.exceptions import ValidationFailed

from ..models import LoggedModel, Run, RunGroup, RunMetric, RunParam, RunTag
from ..models.runs import Lifecycle
from ..services import tracking
from . import shapes
from .base import MlflowView, ReadView, next_token, page_offset, page_size
from .filters import KINDS, Clause, condition, ordering, parse, tagged

RUN_ATTRIBUTES = {"run_id": "run_id", "run_name": "name", "status": "status", "user_id": "user_name", "start_time": "start_time",
                  "end_time": "end_time", "artifact_uri": None, "lifecycle_stage": "lifecycle_stage"}
VIEW_TYPES = {"ACTIVE_ONLY": [Lifecycle.ACTIVE], "DELETED_ONLY": [Lifecycle.DELETED], "ALL": [Lifecycle.ACTIVE, Lifecycle.DELETED]}
MAX_RUNS = 50_000  # as MLflow allows; mlflow.search_runs asks pages of 10,000


def _latest(key: str):
    """The run's latest value of metric `key` (largest step, then latest timestamp, then largest value)."""
    rows = RunMetric.objects.filter(run=OuterRef("pk"), key=key, is_nan=False).order_by("-step", "-timestamp", "-value")
    return Subquery(rows.values("value")[:1])


def _text(model, key: str):
    return Subquery(model.objects.filter(run=OuterRef("pk"), key=key).values("value")[:1])


def _run_field(queryset, clause: Clause, i: int):
    """The queryset annotated with the clause's value, and the field's name."""
    if clause.kind == "attribute":
        field = RUN_ATTRIBUTES.get(clause.key)
        if field is None:
            raise ValidationFailed(f"Invalid attribute key '{clause.key}': use one of "
                                   f"{', '.join(k for k, v in RUN_ATTRIBUTES.items() if v)}.", code="invalid_parameter_value")
        return queryset, field
    name = f"_{clause.kind}{i}"
    value = _latest(clause.key) if clause.kind == "metric" else _text(RunParam if clause.kind == "param" else RunTag, clause.key)
    return queryset.annotate(**{name: value}), name


def _order_field(queryset, item, i: int):
    """`metrics.x DESC`, `params.x`, `tags.x`, `attributes.start_time` -> (queryset, ordering term); a run without
    the value comes last either way."""
    parts = str(item).split()
    if not parts or len(parts) > 2 or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC")) or "." not in parts[0]:
        raise ValidationFailed(f"Invalid order_by clause {str(item)[:100]!r}: 'metrics.<key>', 'params.<key>', 'tags.<key>' "
                               "or 'attributes.<name>', then ASC or DESC.", code="invalid_parameter_value")
    prefix, key = parts[0].split(".", 1)
    kind = KINDS.get(prefix.lower())
    if kind is None:
        raise ValidationFailed(f"Invalid order_by clause {str(item)[:100]!r}.", code="invalid_parameter_value")
    queryset, field = _run_field(queryset, Clause(kind=kind, key=key.strip("`\""), op="=", value=""), 100 + i)
    descending = len(parts) == 2 and parts[1].upper() == "DESC"
    return queryset, (F(field).desc(nulls_last=True) if descending else F(field).asc(nulls_last=True))


class RunSearch(MlflowView):
    """Runs of the given groups matching `filter` (metrics, params, tags, attributes), ordered by `order_by`
    (default: newest first), `max_results` up to 50,000 a page. A page is read in a fixed number of queries whatever its size."""

    read_only = True

    def post(self, request):
        args = self.arguments(request)
        ids = args.get("experiment_ids") or []
        ids = [ids] if isinstance(ids, str) else ids
        if not isinstance(ids, list) or not ids:
            raise ValidationFailed("experiment_ids: give at least one.", code="invalid_parameter_value")
        groups = [tracking.run_group_get(i).pk for i in ids]
        view = VIEW_TYPES.get(str(args.get("run_view_type") or "ACTIVE_ONLY"))
        if view is None:
            raise ValidationFailed("run_view_type: ACTIVE_ONLY, DELETED_ONLY or ALL.", code="invalid_parameter_value")
        size = page_size(args.get("max_results"), limit=MAX_RUNS, default=1000)
        offset = page_offset(args.get("page_token"))
        queryset = Run.objects.filter(group_id__in=groups, lifecycle_stage__in=view)
        for i, clause in enumerate(parse(args.get("filter") or "", kinds={"metric", "param", "tag", "attribute"})):
            queryset, field = _run_field(queryset, clause, i)
            queryset = queryset.filter(condition(field, clause.op, clause.value, missing_matches_not_equal=clause.kind == "tag"))
        order = args.get("order_by") or []
        order = [order] if isinstance(order, str) else order
        if not isinstance(order, list) or len(order) > 5:
            raise ValidationFailed("order_by: a list of at most five clauses.", code="invalid_parameter_value")
        terms = []
        for i, item in enumerate(order):
            queryset, term = _order_field(queryset, item, i)
            terms.append(term)
        runs = list(
            queryset.order_by(*terms, "-start_time", "-id").select_related("group")
            .prefetch_related(Prefetch("params", queryset=RunParam.objects.order_by("key")), Prefetch("tags", queryset=RunTag.objects.order_by("key")),
                              Prefetch("logged_models", queryset=LoggedModel.objects.order_by("created_at")))[offset:offset + size + 1]
        )
        page = runs[:size]
        latest = tracking.run_latest_metrics(page)
        body = {"runs": [shapes.run(r, latest=latest[r.pk], params=[(p.key, p.value) for p in r.params.all()],
                                    tags=[(t.key, t.value) for t in r.tags.all()], outputs=list(r.logged_models.all())) for r in page]}
        if len(runs) > size:
            body["next_page_token"] = next_token(offset + size)
        return Response(body)


class ExperimentSearch(ReadView):
    def read(self, args):
        view = VIEW_TYPES.get(str(args.get("view_type") or "ACTIVE_ONLY"))
        if view is None:
            raise ValidationFailed("view_type: ACTIVE_ONLY, DELETED_ONLY or ALL.", code="invalid_parameter_value")
        size = page_size(args.get("max_results"), limit=50_000, default=1000)
        offset = page_offset(args.get("page_token"))
        if Lifecycle.ACTIVE in view:
            tracking.run_group_default()  # listed like MLflow's Default experiment, even before its first run
        order = ordering(args.get("order_by"), {"name": "name", "experiment_id": "id", "creation_time": "created_at",
                                                "last_update_time": "updated_at"}, default=["-updated_at", "-id"])
        clauses = parse(args.get("filter") or "", kinds={"name", "tag"})
        groups = list(tagged(RunGroup.objects.filter(lifecycle_stage__in=view), clauses).order_by(*order)[offset:offset + size + 1])
        body = {"experiments": [shapes.experiment(g) for g in groups[:size]]}
        if len(groups) > size:
            body["next_page_token"] = next_token(offset + size)
        return Response(body)
