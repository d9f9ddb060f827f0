"""What MLflow clients do to the model registry: create a model, register a version from a run, move a version's
stage, set aliases. Versions are ordinary registry versions; the one difference from an MLflow server is deliberate.

A stage transition to Staging or Production, or a move of a protected alias (`production` always; others an admin
marks, e.g. `champion`), does not move anything by itself: it creates a promotion request, which a second person
approves on the site like any other. The version is answered unchanged with a message saying so. Only a caller with
the approver role, who did not register the version, moves it at once, and only when the version's gate checks all
pass for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from mlops_site.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from mlops_site.roles import ADMIN, APPROVER, EDITOR, has_role, require_role

from ..models import (
    NAME_PATTERN,
    AuditAction,
    LoggedModel,
    ModelAlias,
    ModelVersion,
    PromotionRequest,
    PromotionStatus,
    ProtectedAlias,
    RegisteredModel,
    Run,
    Stage,
)
from .audit import audit_record, get_or_create_locked
from .promotions import promotion_direct, promotion_request_create
from .run_artifacts import folder_digest
from .tracking import GIT_COMMIT_TAG, logged_model_get, run_get, run_latest_metrics, tag_values
from .versions import NAME_RULE, model_version_register

# MLflow's stage names and ours.
STAGE_NAMES = {Stage.CANDIDATE: "None", Stage.STAGING: "Staging", Stage.PRODUCTION: "Production", Stage.ARCHIVED: "Archived"}
STAGES_BY_NAME = {name.lower(): stage for stage, name in STAGE_NAMES.items()}
ALWAYS_PROTECTED = {"production": Stage.PRODUCTION, "staging": Stage.STAGING}
MAX_ALIAS_LENGTH = 255
MAX_REGISTRY_TAG_VALUE = 100_000  # MLflow's limit for registered model and version tags


def _invalid(message: str) -> ValidationFailed:
    return ValidationFailed(message, code="invalid_parameter_value")


def model_get(name) -> RegisteredModel:
    if not isinstance(name, str) or not name:
        raise _invalid("Missing value for required parameter 'name'.")
    try:
        return RegisteredModel.objects.get(name=name)
    except RegisteredModel.DoesNotExist:
        raise NotFound(f"Registered Model with name={name} not found", code="resource_does_not_exist") from None


def version_get(name, version) -> ModelVersion:
    model = model_get(name)
    text = str(version) if version is not None else ""
    if not text.isdigit() or len(text) > 9:
        raise _invalid(f"Parameter 'version' must be an integer, got {text[:50]!r}.")
    try:
        return ModelVersion.objects.select_related("model", "run").get(model=model, version=int(text))
    except ModelVersion.DoesNotExist:
        raise NotFound(f"Model Version (name={name}, version={text}) not found", code="resource_does_not_exist") from None


def model_create(*, name, actor, description: str = "", tags=None) -> RegisteredModel:
    """An empty registered model (MLflow creates the model before its first version); RESOURCE_ALREADY_EXISTS if the
    name is taken. Its default gate policy is created with it, as for a model created by its first version."""
    require_role(actor, EDITOR, "Creating a model")
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise _invalid(f"Invalid model name {str(name)[:130]!r}: {NAME_RULE}")
    if not isinstance(description, str) or len(description) > 20_000 or "\x00" in description:
        raise _invalid("description must be text of at most 20000 characters.")
    tag_map = tag_values(tags, limit=MAX_REGISTRY_TAG_VALUE)
    with transaction.atomic():
        if RegisteredModel.objects.filter(name=name).exists():
            raise Conflict(f"Registered Model (name={name}) already exists.", code="resource_already_exists")
        model = get_or_create_locked(RegisteredModel, name=name, actor=actor)
        model.description, model.tags = description, tag_map
        model.save(update_fields=["description", "tags"])
        audit_record(actor=actor, action=AuditAction.MODEL_CREATED, subject=f"model:{name}", reason=description[:500],
                     extra={"via": "mlflow"})
    return model


def _source_owner(source: str, run: Run | None, model_id: str) -> LoggedModel | None:
    """The logged model a version's source names (`models:/m-...`), or the one passed as model_id."""
    if model_id:
        return logged_model_get(model_id)
    if source.startswith("models:/m-"):
        return logged_model_get(source.removeprefix("models:/").split("/")[0])
    return None


def version_create(*, name, actor, source, run_id: str = "", model_id: str = "", description: str = "", tags=None) -> ModelVersion:
    """Register the next version of `name` from an MLflow client: a candidate whose params, latest metrics and git
    commit come from its run, its artifacts from the logged model (`models:/m-...`, pinned by the digest of its files:
    artifact_sha256 and artifact_size, see run_artifacts.folder_digest), the run folder (`runs:/<run_id>/path`) or the
    given URI. The model must exist (MLflow's rule: create it first)."""
    require_role(actor, EDITOR, "Registering a version")
    if not isinstance(source, str) or not source or len(source) > 1000 or "\x00" in source:
        raise _invalid("Missing value for required parameter 'source'.")
    model_get(name)
    tag_map = tag_values(tags, limit=MAX_REGISTRY_TAG_VALUE)
    run = run_get(run_id) if run_id else None
    logged = _source_owner(source, run, model_id or "")
    if run is None and logged is not None and logged.run_id:
        run = Run.objects.get(pk=logged.run_id)
    if logged is not None and logged.status != "LOGGED_MODEL_READY":
        raise _invalid(f"Logged model {logged.model_id} is {logged.status}: finish uploading it before registering it.")
    # A final logged model's files never change: their digest pins the version to them (read before the transaction).
    sha256, size = folder_digest(logged.artifact_folder) if logged is not None else ("", None)
    params, metrics, commit = {}, {}, ""
    if run is not None:
        params = dict(run.params.values_list("key", "value"))
        latest = run_latest_metrics([run])[run.pk]
        metrics = {k: m.value for k, m in latest.items() if not m.is_nan}
        commit = run.tags.filter(key=GIT_COMMIT_TAG).values_list("value", flat=True).first() or ""
    return model_version_register(
        model_name=name, actor=actor, params=params, metrics=metrics, tags=tag_map, code_commit=commit[:64],
        description=description or "", artifact_uri=source, run=run, logged_model=logged,
        files_digest=(sha256, size) if logged is not None else None,
    )


def download_uri(version: ModelVersion) -> str:
    """Where an MLflow client downloads the version's files from (the artifact proxy), or its own URI."""
    if version.logged_model_id:
        return LoggedModel.objects.get(pk=version.logged_model_id).artifact_uri
    source = version.artifact_uri
    if source.startswith("runs:/"):
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        run = Run.objects.filter(run_id=run_id).first()
        if run is not None:
            return f"{run.artifact_uri}/{path}".rstrip("/")
    return source


# ---------------------------------------------------------------- aliases and stage moves


def protected_stage(alias: str) -> str | None:
    """The stage an alias stands for when it is protected, else None. Case does not matter."""
    key = alias.lower()
    if key in ALWAYS_PROTECTED:
        return ALWAYS_PROTECTED[key]
    return ProtectedAlias.objects.filter(alias__iexact=key).values_list("stage", flat=True).first()


def aliases_of(model: RegisteredModel) -> dict[str, ModelVersion]:
    """Every alias of a model: its stored ones, and each protected alias whose stage has a holder."""
    found = {a.alias: a.version for a in ModelAlias.objects.filter(model=model).select_related("version", "version__model")}
    return {**found, **protected_holders([model]).get(model.pk, {})}


def _alias_name(alias) -> str:
    if not isinstance(alias, str) or not alias.strip():
        raise _invalid("Missing value for required parameter 'alias'.")
    if len(alias) > MAX_ALIAS_LENGTH or not all(c.isalnum() or c in "_-" for c in alias):
        raise _invalid(f"Invalid alias {alias[:60]!r}: use letters, digits, '_' and '-' (at most {MAX_ALIAS_LENGTH}).")
    if alias.lower() == "latest" or (alias[0] in "vV" and alias[1:].isdigit()):
        raise _invalid(f"'{alias}' is reserved and cannot be used as an alias.")
    return alias


def alias_get(*, name, alias) -> ModelVersion:
    model = model_get(name)
    alias = _alias_name(alias)
    version = {k.lower(): v for k, v in aliases_of(model).items()}.get(alias.lower())
    if version is None:
        raise NotFound(f"Registered model alias {alias} not found.", code="resource_does_not_exist")
    return version


@dataclass(frozen=True)
class MoveOutcome:
    """What a stage transition or protected alias move did: moved at once, or a promotion request now waits."""

    version: ModelVersion
    promotion: PromotionRequest | None
    message: str


def stage_move(*, version: ModelVersion, stage: str, actor, via: str) -> MoveOutcome:
    """Ask for `version` to enter `stage` (staging or production) as an MLflow client asks: a promotion request,
    or a direct move for an approver whose gates pass (see the module's note)."""
    require_role(actor, EDITOR, "Moving a version's stage")
    reason = f"Requested by an MLflow client ({via})."
    if has_role(actor, APPROVER) and version.created_by_id != actor.pk:
        try:
            promotion = promotion_direct(version=version, to_stage=stage, reason=reason, actor=actor,
                                         comment=f"Moved directly by an approver whose gates pass ({via}).")
            version.refresh_from_db()
            return MoveOutcome(version, promotion, f"{version.model.name} v{version.version} moved to {stage} "
                                                   f"(promotion #{promotion.pk}, approved directly: your gates pass).")
        except (Conflict, Forbidden) as refusal:
            if getattr(refusal, "code", "") not in ("gates_failed", "four_eyes"):
                raise
    pending = PromotionRequest.objects.filter(version=version, to_stage=stage, status=PromotionStatus.PENDING).first()
    if pending is None:
        pending = promotion_request_create(version=version, to_stage=stage, reason=reason, actor=actor)
    version.refresh_from_db()
    return MoveOutcome(version, pending, f"Waiting for approval: promotion request #{pending.pk} asks to move "
                                         f"{version.model.name} v{version.version} to {stage}; an approver decides it on the site "
                                         f"(/promotions/). The version stays in {version.stage} until then.")


def stage_transition(*, name, version, stage, actor) -> MoveOutcome:
    """MLflow's transition_model_version_stage. Staging and Production make a promotion request (see the module's
    note). None and Archived are refused: a version leaves a stage only when another is approved into it or by a
    rollback on the site, so that a stage is never emptied from a training script."""
    target = STAGES_BY_NAME.get(str(stage).lower()) if isinstance(stage, str) else None
    if target is None:
        raise _invalid(f"Invalid Model Version stage: {str(stage)[:50]}. Value must be one of None, Staging, Production, Archived.")
    found = version_get(name, version)
    if target in (Stage.CANDIDATE, Stage.ARCHIVED):
        if found.stage == target:
            return MoveOutcome(found, None, f"{found} is already in {STAGE_NAMES[target]}.")
        raise Forbidden(f"Moving a version to {STAGE_NAMES[target]} is not done from a client here: a version leaves its stage "
                        "when another is approved into it, or by a rollback on the site.", code="permission_denied")
    if found.stage == target:
        return MoveOutcome(found, None, f"{found} is already in {STAGE_NAMES[target]}.")
    return stage_move(version=found, stage=target, actor=actor, via=f"transition to {STAGE_NAMES[target]}")


def alias_set(*, name, alias, version, actor) -> MoveOutcome:
    """Point `alias` at a version. A protected alias is a stage move (see stage_move); others are set at once by an
    editor, with an audit event."""
    require_role(actor, EDITOR, "Setting an alias")
    alias = _alias_name(alias)
    found = version_get(name, version)
    stage = protected_stage(alias)
    if stage is not None:
        if found.stage == stage:
            return MoveOutcome(found, None, f"{alias} already names {found}.")
        return stage_move(version=found, stage=stage, actor=actor, via=f"alias {alias}")
    try:
        with transaction.atomic():
            previous = ModelAlias.objects.filter(model=found.model, alias=alias).select_related("version").first()
            ModelAlias.objects.update_or_create(model=found.model, alias=alias, defaults={"version": found, "set_by": actor})
            audit_record(actor=actor, action=AuditAction.ALIAS_SET, subject=f"model:{found.model.name}", version=found.version,
                         reason=f"alias {alias}", extra={"alias": alias, "previous_version": previous.version.version if previous else None})
    except IntegrityError:
        raise Conflict(f"The alias {alias} was set by someone else at the same moment; try again.", code="conflict") from None
    return MoveOutcome(found, None, f"{alias} now names {found}.")


def alias_delete(*, name, alias, actor) -> None:
    require_role(actor, EDITOR, "Deleting an alias")
    alias = _alias_name(alias)
    model = model_get(name)
    if protected_stage(alias) is not None:
        raise Forbidden(f"{alias} is protected: it names the version in its stage; roll the stage back on the site instead.",
                        code="permission_denied")
    with transaction.atomic():
        row = ModelAlias.objects.filter(model=model, alias=alias).select_related("version").first()
        if row is None:
            raise NotFound(f"Registered model alias {alias} not found.", code="resource_does_not_exist")
        row.delete()
        audit_record(actor=actor, action=AuditAction.ALIAS_DELETED, subject=f"model:{model.name}", version=row.version.version,
                     reason=f"alias {alias}", extra={"alias": alias})



def protected_holders(models: list[RegisteredModel]) -> dict[int, dict[str, ModelVersion]]:
    """For a page of models, the protected aliases that name a version (their stage's holder): two queries."""
    protected = [*ALWAYS_PROTECTED.items(), *ProtectedAlias.objects.values_list("alias", "stage")]
    found: dict[int, dict[str, ModelVersion]] = {}
    holders = ModelVersion.objects.filter(model__in=models, stage__in=[Stage.STAGING, Stage.PRODUCTION]).select_related("model")
    for version in holders:
        for alias, stage in protected:
            if stage == version.stage:
                found.setdefault(version.model_id, {})[alias] = version
    return found


def protected_alias_clean(alias) -> str:
    """An alias name an admin may protect: the alias rule, and not one of those always protected."""
    alias = _alias_name(alias)
    if alias.lower() in ALWAYS_PROTECTED:
        raise _invalid(f"{alias} is always protected.")
    return alias


def protected_alias_set(*, alias, stage: str, actor) -> ProtectedAlias:
    """Mark an alias protected (admins only): from now on it names the holder of `stage` for every model, and
    moving it is a promotion request. A model's stored alias of that name is removed (it would be shadowed)."""
    require_role(actor, ADMIN, "Protecting an alias")
    alias = protected_alias_clean(alias)
    if stage not in (Stage.STAGING, Stage.PRODUCTION):
        raise _invalid("A protected alias stands for staging or production.")
    with transaction.atomic():
        row, created = ProtectedAlias.objects.update_or_create(alias=alias.lower(), defaults={"stage": stage, "created_by": actor})
        shadowed = list(ModelAlias.objects.filter(alias__iexact=alias).values_list("model__name", "version__version"))
        ModelAlias.objects.filter(alias__iexact=alias).delete()
        audit_record(actor=actor, action=AuditAction.ALIAS_PROTECTED, subject=f"alias:{row.alias}", to_stage=stage,
                     reason=f"alias {row.alias} now names the {stage} version of every model",
                     extra={"created": created, "removed_aliases": [{"model": m, "version": v} for m, v in shadowed]})
    return row


def protected_alias_delete(*, alias_id: int, actor) -> None:
    require_role(actor, ADMIN, "Unprotecting an alias")
    with transaction.atomic():
        row = ProtectedAlias.objects.filter(pk=alias_id).first()
        if row is None:
            raise NotFound(f"No protected alias {alias_id}.")
        row.delete()
        audit_record(actor=actor, action=AuditAction.ALIAS_UNPROTECTED, subject=f"alias:{row.alias}", from_stage=row.stage,
                     reason=f"alias {row.alias} is an ordinary alias again")
