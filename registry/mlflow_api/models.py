"""Registered models and their versions, stages and aliases, as MLflow's model registry API answers them."""

from __future__ import annotations

from django.db.models import F, Prefetch, Window
from django.db.models.functions import RowNumber
from rest_framework.response import Response

from mlops_site.exceptions import ValidationFailed

from ..models import ModelAlias, ModelVersion, RegisteredModel, Stage
from ..services import mlflow_registry as registry
from . import shapes
from .base import MlflowView, ReadView, next_token, page_offset, page_size, required
from .filters import ordering, parse, tagged

MAX_SEARCH_RESULTS = 1000
MODEL_ORDER = {"name": "name", "creation_timestamp": "created_at", "timestamp": "created_at", "last_updated_timestamp": "created_at"}


def version_body(version: ModelVersion, *, message: str = "", aliases: dict[str, ModelVersion] | None = None) -> dict:
    """A version with its aliases; `aliases` (registry.aliases_of of its model) when the caller already read them."""
    aliases = registry.aliases_of(version.model) if aliases is None else aliases
    return shapes.model_version(version, aliases=sorted(a for a, v in aliases.items() if v.pk == version.pk), message=message)


def latest_per_stage(versions: list[ModelVersion], stages: list[str] | None = None) -> list[ModelVersion]:
    """The newest version in each stage (MLflow's latest_versions), in stage order."""
    newest: dict[str, ModelVersion] = {}
    for version in versions:
        if version.stage not in newest or version.version > newest[version.stage].version:
            newest[version.stage] = version
    order = [Stage.CANDIDATE, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED]
    return [newest[s] for s in order if s in newest and (stages is None or s in stages)]


def newest_per_stage():
    """Versions that are the newest of their model in their stage, ranked in the database: a model's latest_versions
    read as at most four rows, however many versions it has. Their model comes from the caller (a prefetch sets it)."""
    ranked = ModelVersion.objects.annotate(rank=Window(RowNumber(), partition_by=[F("model_id"), F("stage")], order_by=F("version").desc()))
    return ranked.filter(rank=1).select_related("run", "created_by")


def model_body(model: RegisteredModel, versions: list[ModelVersion] | None = None) -> dict:
    versions = versions if versions is not None else list(newest_per_stage().filter(model=model).select_related("model"))
    return shapes.registered_model(model, latest=latest_per_stage(versions), aliases=registry.aliases_of(model))


class RegisteredModelCreate(MlflowView):
    def post(self, request):
        args = self.arguments(request)
        model = registry.model_create(name=args.get("name"), actor=request.user, description=args.get("description") or "",
                                      tags=args.get("tags"))
        return Response({"registered_model": model_body(model, [])})


class RegisteredModelGet(MlflowView):
    def get(self, request):
        model = registry.model_get(required(self.arguments(request), "name"))
        return Response({"registered_model": model_body(model)})


class RegisteredModelSearch(ReadView):
    """`filter` in MLflow's syntax (name = / != / LIKE / ILIKE, tags.<key> = / !=, joined by AND), `order_by`
    (name, creation_timestamp, last_updated_timestamp; ASC or DESC), `max_results` up to 1,000, `page_token`. The
    page is read in a fixed number of queries whatever its size (the newest version per stage, not every version)."""

    def read(self, args):
        size = page_size(args.get("max_results"), limit=MAX_SEARCH_RESULTS, default=100)
        offset = page_offset(args.get("page_token"))
        order = ordering(args.get("order_by"), MODEL_ORDER, default=["name"])
        clauses = parse(args.get("filter") or "", kinds={"name", "tag"})
        models = list(
            tagged(RegisteredModel.objects.all(), clauses).order_by(*order)
            .prefetch_related(Prefetch("versions", queryset=newest_per_stage()),
                              Prefetch("aliases", queryset=ModelAlias.objects.select_related("version")))[offset:offset + size + 1]
        )
        holders = registry.protected_holders(models)
        body = {"registered_models": [
            shapes.registered_model(m, latest=latest_per_stage(list(m.versions.all())), aliases={
                **{a.alias: a.version for a in m.aliases.all()}, **holders.get(m.pk, {})}) for m in models[:size]
        ]}
        if len(models) > size:
            body["next_page_token"] = next_token(offset + size)
        return Response(body)


class LatestVersions(ReadView):
    """The newest version in each of the asked stages (all stages when none is asked)."""

    def read(self, args):
        model = registry.model_get(required(args, "name"))
        asked = args.get("stages") or []
        asked = [asked] if isinstance(asked, str) else asked
        if not isinstance(asked, list):
            raise ValidationFailed("stages must be a list of stage names.", code="invalid_parameter_value")
        stages = []
        for name in asked:
            stage = registry.STAGES_BY_NAME.get(str(name).lower())
            if stage is None:
                raise ValidationFailed(f"Invalid Model Version stage: {str(name)[:50]}. Value must be one of None, Staging, Production, "
                                       "Archived.", code="invalid_parameter_value")
            stages.append(stage)
        versions = latest_per_stage(list(newest_per_stage().filter(model=model).select_related("model")), stages or None)
        aliases = registry.aliases_of(model)  # once for the model, not once per version
        return Response({"model_versions": [version_body(v, aliases=aliases) for v in versions]})


class VersionCreate(MlflowView):
    def post(self, request):
        args = self.arguments(request)
        version = registry.version_create(
            name=required(args, "name"), actor=request.user, source=args.get("source"), run_id=args.get("run_id") or "",
            model_id=args.get("model_id") or "", description=args.get("description") or "", tags=args.get("tags"),
        )
        return Response({"model_version": version_body(version)})


class VersionGet(MlflowView):
    def get(self, request):
        args = self.arguments(request)
        version = registry.version_get(required(args, "name"), required(args, "version"))
        return Response({"model_version": version_body(version)})


class VersionDownloadUri(MlflowView):
    def get(self, request):
        args = self.arguments(request)
        version = registry.version_get(required(args, "name"), required(args, "version"))
        return Response({"artifact_uri": registry.download_uri(version)})


class VersionTransition(MlflowView):
    """A move to Staging or Production is a promotion request unless the caller may move it directly; the answer is
    the version as it is now, with `status_message` (and `message`) saying which."""

    def post(self, request):
        args = self.arguments(request)
        outcome = registry.stage_transition(name=required(args, "name"), version=required(args, "version"), stage=args.get("stage"),
                                            actor=request.user)
        body = {"model_version": version_body(outcome.version, message=outcome.message), "message": outcome.message}
        if outcome.promotion is not None:
            body["promotion_id"] = outcome.promotion.pk
            body["promotion_status"] = outcome.promotion.status
        return Response(body)


class Alias(MlflowView):
    """POST sets an alias (a protected one makes a promotion request), GET reads it, DELETE removes it."""

    def post(self, request):
        args = self.arguments(request)
        outcome = registry.alias_set(name=required(args, "name"), alias=args.get("alias"), version=required(args, "version"),
                                     actor=request.user)
        body = {"message": outcome.message}
        if outcome.promotion is not None:
            body["promotion_id"] = outcome.promotion.pk
            body["promotion_status"] = outcome.promotion.status
        return Response(body)

    def get(self, request):
        args = self.arguments(request)
        version = registry.alias_get(name=required(args, "name"), alias=args.get("alias"))
        return Response({"model_version": version_body(version)})

    def delete(self, request):
        args = self.arguments(request)
        registry.alias_delete(name=required(args, "name"), alias=args.get("alias"), actor=request.user)
        return Response({})
