"""Read queries shared by pages, the API and tasks. Every list is a fixed number of queries."""

from __future__ import annotations

import math
import sys
from collections import defaultdict
from datetime import datetime

from django.db.models import Count, F, IntegerField, Max, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from mlops_site.exceptions import NotFound

from .models import (
    ApiToken,
    AuditEvent,
    Environment,
    EvalSet,
    LoggedModel,
    ModelVersion,
    PromotionRequest,
    PromotionStatus,
    Prompt,
    PromptDeployment,
    PromptVersion,
    RegisteredModel,
    RegistryWebhook,
    Run,
    RunGroup,
    RunMetric,
    RunParam,
    RunTag,
    Stage,
    StageChange,
    WebhookDelivery,
)
from .models.runs import ENTITY_ID, Lifecycle


def _version_in_stage(stage: str) -> Subquery:
    # .order_by(): without it the model's default ordering makes SQLite walk every
    # version of the model instead of using the (model, stage) index.
    holder = ModelVersion.objects.filter(model=OuterRef("pk"), stage=stage).order_by()
    return Subquery(holder.values("version")[:1], output_field=IntegerField())


def model_list(*, search: str = "") -> QuerySet[RegisteredModel]:
    """Models with latest, staging and production version numbers and pending counts (subqueries, no N+1).

    Versions are numbered 1..n and never deleted, so the latest number is also the version count.
    """
    latest = ModelVersion.objects.filter(model=OuterRef("pk")).order_by("-version")
    pending = (
        PromotionRequest.objects.filter(model=OuterRef("pk"), status=PromotionStatus.PENDING)
        .order_by()
        .values("model")
        .annotate(n=Count("pk"))
        .values("n")
    )
    qs = RegisteredModel.objects.annotate(
        latest_version=Subquery(latest.values("version")[:1], output_field=IntegerField()),
        latest_created_at=Subquery(latest.values("created_at")[:1]),
        production_version=_version_in_stage(Stage.PRODUCTION),
        staging_version=_version_in_stage(Stage.STAGING),
        pending_count=Coalesce(Subquery(pending, output_field=IntegerField()), 0),
    ).order_by("name")
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(description__icontains=search))
    return qs


def model_get(*, name: str) -> RegisteredModel:
    try:
        return model_list().get(name=name)
    except RegisteredModel.DoesNotExist:
        raise NotFound(f"No model named '{name}'.") from None


def version_list(*, model: RegisteredModel) -> QuerySet[ModelVersion]:
    """A model's versions, newest first."""
    return ModelVersion.objects.filter(model=model).select_related("model", "created_by", "run").order_by("-version")


def version_get(*, model_name: str, version: int | str) -> ModelVersion:
    try:
        return ModelVersion.objects.select_related("model", "created_by", "run").get(model__name=model_name, version=int(version))
    except (ModelVersion.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No version {version} of model '{model_name}'.") from None


def versions_get_many(*, model_name: str, numbers: list[int]) -> list[ModelVersion]:
    """The given versions of one model in the order asked; 404 naming any that do not exist."""
    found = {v.version: v for v in ModelVersion.objects.select_related("model", "created_by", "run").filter(model__name=model_name, version__in=numbers)}
    missing = [n for n in numbers if n not in found]
    if missing:
        raise NotFound(f"No version {', '.join(map(str, missing))} of model '{model_name}'.")
    return [found[n] for n in numbers]


def stage_holder_find(*, model: RegisteredModel, stage: str) -> ModelVersion | None:
    """The version of `model` in `stage`, or None."""
    return ModelVersion.objects.filter(model=model, stage=stage).first()


def stage_holder_get(*, model_name: str, stage: str) -> ModelVersion:
    model = model_get(name=model_name)
    version = ModelVersion.objects.select_related("model", "created_by", "run").filter(model=model, stage=stage).first()
    if version is None:
        raise NotFound(f"No version of '{model_name}' is in {stage}.", code="stage_empty")
    return version


# --- prompts ------------------------------------------------------------------------------------


def prompt_list(*, search: str = "") -> QuerySet[Prompt]:
    """Prompts with their latest version, the version each environment runs and pending requests (subqueries)."""
    pending = (
        PromotionRequest.objects.filter(prompt=OuterRef("pk"), status=PromotionStatus.PENDING)
        .order_by()
        .values("prompt")
        .annotate(n=Count("pk"))
        .values("n")
    )
    annotations = {
        f"{env}_version": Subquery(
            PromptDeployment.objects.filter(prompt=OuterRef("pk"), environment=env).values("version__version")[:1], output_field=IntegerField()
        )
        for env in Environment.values
    }
    latest = PromptVersion.objects.filter(prompt=OuterRef("pk")).order_by("-version")
    qs = Prompt.objects.annotate(
        latest_version=Subquery(latest.values("version")[:1], output_field=IntegerField()),
        latest_created_at=Subquery(latest.values("created_at")[:1]),
        pending_count=Coalesce(Subquery(pending, output_field=IntegerField()), 0),
        **annotations,
    ).order_by("name")
    if search:
        qs = qs.filter(name__icontains=search)
    return qs


def prompt_get(*, name: str) -> Prompt:
    try:
        return prompt_list().get(name=name)
    except Prompt.DoesNotExist:
        raise NotFound(f"No prompt named '{name}'.") from None


def prompt_version_list(*, prompt: Prompt) -> QuerySet[PromptVersion]:
    return PromptVersion.objects.filter(prompt=prompt).select_related("prompt", "eval_set", "created_by").order_by("-version")


def prompt_version_get(*, prompt_name: str, version: int | str) -> PromptVersion:
    try:
        return PromptVersion.objects.select_related("prompt", "eval_set", "created_by").get(prompt__name=prompt_name, version=int(version))
    except (PromptVersion.DoesNotExist, ValueError, TypeError, OverflowError):
        raise NotFound(f"No version {version} of prompt '{prompt_name}'.") from None


def prompt_environments(*, prompt: Prompt) -> dict[str, PromptVersion]:
    """Which version each environment of `prompt` runs, {env: version}."""
    return {d.environment: d.version for d in PromptDeployment.objects.filter(prompt=prompt).select_related("version", "version__prompt")}


def prompt_environment_get(*, prompt_name: str, environment: str) -> PromptVersion:
    prompt = prompt_get(name=prompt_name)
    version = prompt_environments(prompt=prompt).get(environment)
    if version is None:
        raise NotFound(f"No version of '{prompt_name}' runs in {environment}.", code="stage_empty")
    return prompt_version_get(prompt_name=prompt_name, version=version.version)


def eval_set_get(*, prompt_name: str, version: int | str) -> EvalSet:
    try:
        return EvalSet.objects.select_related("prompt", "created_by").get(prompt__name=prompt_name, version=int(version))
    except (EvalSet.DoesNotExist, ValueError, TypeError, OverflowError):
        raise NotFound(f"No eval set version {version} of prompt '{prompt_name}'.") from None


def eval_set_lines(*, eval_set: EvalSet) -> list[str]:
    """The JSONL lines of an eval set (blank lines skipped): one row each. Pages slice and parse them."""
    return [line for line in eval_set.content.splitlines() if line.strip()]


def prompt_timeline(*, prompt: Prompt) -> QuerySet[StageChange]:
    """Every environment move of a prompt, newest first: who moved which environment from which version to which."""
    return StageChange.objects.filter(prompt=prompt).select_related(
        "prompt_version", "previous_prompt_version", "actor", "promotion__requested_by"
    )


def promotion_list(
    *,
    status: str | None = None,
    model: RegisteredModel | None = None,
    prompt: Prompt | None = None,
    version: ModelVersion | PromptVersion | None = None,
    search: str = "",
) -> QuerySet[PromotionRequest]:
    """Promotion requests, newest first; `search` matches the model name and the reason."""
    qs = PromotionRequest.objects.select_related(
        "model", "version", "from_version", "prompt", "prompt_version", "from_prompt_version", "requested_by", "decided_by"
    ).order_by("-requested_at", "-id")
    if status:
        qs = qs.filter(status=status)
    if model is not None:
        qs = qs.filter(model=model)
    if prompt is not None:
        qs = qs.filter(prompt=prompt)
    if version is not None:
        qs = qs.filter(**{"prompt_version" if isinstance(version, PromptVersion) else "version": version})
    if search:
        qs = qs.filter(Q(model__name__icontains=search) | Q(prompt__name__icontains=search) | Q(reason__icontains=search))
    return qs


def promotion_get(*, promotion_id: int | str) -> PromotionRequest:
    try:
        return promotion_list().get(pk=int(promotion_id))
    except (PromotionRequest.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No promotion request {promotion_id}.") from None


def stage_change_list(*, model: RegisteredModel) -> QuerySet[StageChange]:
    """The timeline of stage changes of one model, newest first."""
    return StageChange.objects.filter(model=model).select_related("version", "previous_version", "actor", "promotion__requested_by")


def audit_list(
    *,
    subject: str = "",
    action: str = "",
    actor: str = "",
    version: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    search: str = "",
) -> QuerySet[AuditEvent]:
    """Audit events, newest first, filtered. `subject` is exact (`model:fraud-detector`)."""
    qs = AuditEvent.objects.all().order_by("-at", "-id")
    if subject:
        qs = qs.filter(subject=subject)
    if action:
        qs = qs.filter(action=action)
    if actor:
        qs = qs.filter(actor_name=actor)
    if version is not None:
        qs = qs.filter(version=version)
    if since is not None:
        qs = qs.filter(at__gte=since)
    if until is not None:
        qs = qs.filter(at__lt=until)
    if search:
        qs = qs.filter(Q(subject__icontains=search) | Q(reason__icontains=search))
    return qs


def api_token_list(*, user) -> QuerySet:
    """The user's API tokens, newest first (revoked and expired ones too: the list says what happened to each)."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


RECENT_DELIVERIES = 5  # what a model's or prompt's page shows of each webhook


def webhook_list(*, model: RegisteredModel | None = None, prompt: Prompt | None = None, recent: int = RECENT_DELIVERIES) -> list[RegistryWebhook]:
    """A model's or a prompt's webhooks, oldest first, each with its `recent` newest deliveries (`.recent`) and their
    tries. Three queries, however many webhooks and deliveries; one with `recent=0` (no deliveries)."""
    hooks = (RegistryWebhook.objects.filter(**({"model": model} if model is not None else {"prompt": prompt}))
             .select_related("model", "prompt", "created_by").order_by("id"))
    if recent:
        newest = WebhookDelivery.objects.order_by("-created_at", "-id").prefetch_related("tries")
        hooks = hooks.prefetch_related(Prefetch("deliveries", queryset=newest[:recent], to_attr="recent"))
    return list(hooks)


def webhook_get(*, webhook_id) -> RegistryWebhook:
    try:
        return RegistryWebhook.objects.select_related("model", "prompt", "created_by").get(pk=webhook_id)
    except (RegistryWebhook.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No webhook {webhook_id}.") from None


def webhook_delivery_list(*, webhook: RegistryWebhook) -> QuerySet[WebhookDelivery]:
    """A webhook's deliveries, newest first, with their tries (one more query per page)."""
    return WebhookDelivery.objects.filter(webhook=webhook).prefetch_related("tries").order_by("-created_at", "-id")


# --- training runs ----------------------------------------------------------------------------------------------------
# The run pages read a fixed number of queries whatever the number of runs, params or metric points: params, latest
# metrics and produced versions come for a whole page of runs at once.


def run_group_list() -> QuerySet[RunGroup]:
    """Run groups, active first, then by their latest run's start; each with `run_count` and `last_run` (ms) of its
    active runs."""
    active = Q(runs__lifecycle_stage=Lifecycle.ACTIVE)
    return RunGroup.objects.annotate(run_count=Count("runs", filter=active), last_run=Max("runs__start_time", filter=active)).order_by(
        "lifecycle_stage", F("last_run").desc(nulls_last=True), "-id"
    )


def run_group_get(*, group_id: int) -> RunGroup:
    try:
        return RunGroup.objects.get(pk=group_id)
    except (RunGroup.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No run group {group_id}.") from None


def run_list(*, group: RunGroup, status: str = "") -> QuerySet[Run]:
    """A group's active runs (a deleted run is MLflow's soft delete), newest first; only `status` ones when given."""
    runs = Run.objects.filter(group=group, lifecycle_stage=Lifecycle.ACTIVE).select_related("user")
    return runs.filter(status=status) if status else runs


def run_get(*, run_id: str) -> Run:
    try:
        if not ENTITY_ID.fullmatch(run_id):
            raise Run.DoesNotExist
        return Run.objects.select_related("group", "user").get(run_id=run_id)
    except Run.DoesNotExist:
        raise NotFound(f"No run {run_id[:40]}.") from None


def runs_get_many(*, run_ids: list[str]) -> list[Run]:
    """The given runs in the order asked; NotFound naming the first few ids that do not exist."""
    valid = [r for r in run_ids if ENTITY_ID.fullmatch(r)]
    found = {run.run_id: run for run in Run.objects.filter(run_id__in=valid).select_related("group")}
    missing = [r for r in run_ids if r not in found]
    if missing:
        shown = ", ".join(r[:40] for r in missing[:5])
        raise NotFound(f"No run with the id {shown}." if len(missing) == 1 else f"No runs with the ids {shown}.")
    return [found[r] for r in run_ids]


def metric_value(value: float, is_nan: bool) -> float:
    """A stored metric as the client logged it: NaN, and ±Infinity (stored as the largest float of its sign)."""
    if is_nan:
        return math.nan
    if abs(value) == sys.float_info.max:
        return math.copysign(math.inf, value)
    return value


def run_params(*, runs: list[Run]) -> dict[int, dict[str, str]]:
    """{run pk: {key: value}} for all the runs in one query."""
    found: dict[int, dict[str, str]] = {run.pk: {} for run in runs}
    for run_pk, key, value in RunParam.objects.filter(run__in=runs).values_list("run_id", "key", "value"):
        found[run_pk][key] = value
    return found


def run_latest_values(*, runs: list[Run]) -> dict[int, dict[str, tuple[float, int]]]:
    """{run pk: {key: (value, step)}}: each run's latest value per key as MLflow defines it (the largest step, then
    the latest timestamp, then the largest value). Ranked in the database: one row per run and key comes back, not
    the whole history."""
    found: dict[int, dict[str, tuple[float, int]]] = {run.pk: {} for run in runs}
    for run_pk, key, value, is_nan, step in RunMetric.objects.filter(run__in=runs).latest().values_list("run_id", "key", "value", "is_nan", "step"):
        found[run_pk][key] = (metric_value(value, is_nan), step)
    return found


def run_metric_histories(*, runs: list[Run], keys: list[str]) -> dict[str, dict[int, tuple[list[int], list[float]]]]:
    """{key: {run pk: (steps, values)}} in step order, for `keys` only: one query of plain tuples (a history may hold
    tens of thousands of points)."""
    found: dict[str, dict[int, tuple[list[int], list[float]]]] = {key: {} for key in keys}
    rows = (
        RunMetric.objects.filter(run__in=runs, key__in=keys)
        .order_by("key", "run_id", "step", "timestamp", "id")
        .values_list("key", "run_id", "step", "value", "is_nan")
    )
    for key, run_pk, step, value, is_nan in rows.iterator(chunk_size=10_000):
        steps, values = found[key].setdefault(run_pk, ([], []))
        steps.append(step)
        values.append(metric_value(value, is_nan))
    return found


def run_versions(*, runs: list[Run]) -> dict[int, list[ModelVersion]]:
    """{run pk: the model versions registered from it}, in one query."""
    found: dict[int, list[ModelVersion]] = defaultdict(list)
    for version in ModelVersion.objects.filter(run__in=runs).select_related("model").order_by("model__name", "version"):
        found[version.run_id].append(version)
    return found


def run_tags(*, run: Run) -> list[tuple[str, str]]:
    """(key, value) of a run's tags, by key."""
    return list(RunTag.objects.filter(run=run).order_by("key").values_list("key", "value"))


def logged_model_list(*, run: Run) -> list[LoggedModel]:
    """The logged models of a run, newest first, each with the versions registered from it (`model_versions`)."""
    return list(LoggedModel.objects.filter(run=run).prefetch_related(Prefetch("model_versions", ModelVersion.objects.select_related("model"))))
