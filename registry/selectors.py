"""Read queries shared by pages, the API and tasks. Every list is a fixed number of queries."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Count, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from mlops_site.exceptions import NotFound

from .models import (
    ApiToken,
    AuditEvent,
    Environment,
    EvalSet,
    ModelVersion,
    PromotionRequest,
    PromotionStatus,
    Prompt,
    PromptDeployment,
    PromptVersion,
    RegisteredModel,
    RegistryWebhook,
    Stage,
    StageChange,
    WebhookDelivery,
)


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
    return ModelVersion.objects.filter(model=model).select_related("model", "created_by").order_by("-version")


def version_get(*, model_name: str, version: int | str) -> ModelVersion:
    try:
        return ModelVersion.objects.select_related("model", "created_by").get(model__name=model_name, version=int(version))
    except (ModelVersion.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No version {version} of model '{model_name}'.") from None


def versions_get_many(*, model_name: str, numbers: list[int]) -> list[ModelVersion]:
    """The given versions of one model in the order asked; 404 naming any that do not exist."""
    found = {v.version: v for v in ModelVersion.objects.select_related("model", "created_by").filter(model__name=model_name, version__in=numbers)}
    missing = [n for n in numbers if n not in found]
    if missing:
        raise NotFound(f"No version {', '.join(map(str, missing))} of model '{model_name}'.")
    return [found[n] for n in numbers]


def stage_holder_find(*, model: RegisteredModel, stage: str) -> ModelVersion | None:
    """The version of `model` in `stage`, or None."""
    return ModelVersion.objects.filter(model=model, stage=stage).first()


def stage_holder_get(*, model_name: str, stage: str) -> ModelVersion:
    model = model_get(name=model_name)
    version = ModelVersion.objects.select_related("model", "created_by").filter(model=model, stage=stage).first()
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
    tries. Three queries, however many webhooks and deliveries."""
    newest = WebhookDelivery.objects.order_by("-created_at", "-id").prefetch_related("tries")
    return list(RegistryWebhook.objects.filter(**({"model": model} if model is not None else {"prompt": prompt}))
                .select_related("model", "prompt", "created_by")
                .prefetch_related(Prefetch("deliveries", queryset=newest[:recent], to_attr="recent")).order_by("id"))


def webhook_get(*, webhook_id) -> RegistryWebhook:
    try:
        return RegistryWebhook.objects.select_related("model", "prompt", "created_by").get(pk=webhook_id)
    except (RegistryWebhook.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No webhook {webhook_id}.") from None


def webhook_delivery_list(*, webhook: RegistryWebhook) -> QuerySet[WebhookDelivery]:
    """A webhook's deliveries, newest first, with their tries (one more query per page)."""
    return WebhookDelivery.objects.filter(webhook=webhook).prefetch_related("tries").order_by("-created_at", "-id")
