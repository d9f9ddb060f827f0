"""Every write to the registry: register, request, approve, reject, roll back, expire.

Each service takes plain keyword arguments, runs in one transaction, checks the
actor's role itself (so the API, the pages, the admin, commands and tasks obey
the same rules) and writes one append-only audit event per change.

Stage changes of one model are serialised by locking that model's row
(`SELECT ... FOR UPDATE` on PostgreSQL; SQLite's IMMEDIATE transactions already
serialise writers). The partial unique index on (model, stage) is the backstop.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from mlops_site.exceptions import Conflict, Forbidden, NotFound, TooLarge, ValidationFailed
from mlops_site.roles import APPROVER, EDITOR, has_role

from .models import (
    NAME_PATTERN,
    PROMOTABLE_STAGES,
    AuditAction,
    AuditEvent,
    ModelVersion,
    PromotionRequest,
    PromotionStatus,
    RegisteredModel,
    Stage,
    StageChange,
    StageChangeKind,
    artifact_path,
)

TEXT_LIMITS = {"code_commit": 64, "data_version": 255, "image_tag": 255, "artifact_uri": 1000, "description": 20_000}


# --- helpers ------------------------------------------------------------------------


def audit_record(
    *,
    actor,
    action: str,
    subject: str,
    version: int | None = None,
    from_stage: str = "",
    to_stage: str = "",
    reason: str = "",
    extra: dict | None = None,
) -> AuditEvent:
    """Append one audit event. Called only from inside other services' transactions."""
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_name=getattr(actor, "username", "") or "system",
        action=action,
        subject=subject,
        version=version,
        from_stage=from_stage,
        to_stage=to_stage,
        reason=reason,
        extra=extra or {},
    )


def _require_role(actor, role: str, doing: str) -> None:
    if not has_role(actor, role):
        raise Forbidden(f"{doing} needs the {role} role.", code="role_required")


def _non_finite_paths(value: Any, path: str) -> list[str]:
    if isinstance(value, float) and not math.isfinite(value):
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite_paths(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_finite_paths(v, f"{path}[{i}]")]
    return []


def _validate_version_fields(*, params, metrics, tags, texts: dict[str, str]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    for field, value in (("params", params), ("metrics", metrics), ("tags", tags)):
        if not isinstance(value, dict):
            errors[field] = ["Must be a JSON object."]
        elif any(not isinstance(k, str) or not k.strip() for k in value):
            errors[field] = ["Keys must be non-empty strings."]
    if "metrics" not in errors:
        bad = [k for k, v in metrics.items() if isinstance(v, bool) or not isinstance(v, (int, float))]
        non_finite = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            errors["metrics"] = [f"Metric values must be numbers: {', '.join(sorted(bad))}."]
        elif non_finite:
            errors["metrics"] = [f"Metric values must be finite (no NaN or Infinity): {', '.join(sorted(non_finite))}."]
    if "params" not in errors:
        non_finite = _non_finite_paths(params, "params")
        if non_finite:
            errors["params"] = [f"Values must be finite (no NaN or Infinity): {', '.join(non_finite)}."]
    if "tags" not in errors:
        bad = [k for k, v in tags.items() if not isinstance(v, str)]
        if bad:
            errors["tags"] = [f"Tag values must be strings: {', '.join(sorted(bad))}."]
    for field, text in texts.items():
        if not isinstance(text, str):
            errors[field] = ["Must be a string."]
        elif len(text) > TEXT_LIMITS[field]:
            errors[field] = [f"At most {TEXT_LIMITS[field]} characters."]
    return errors


def _lock_model(name: str) -> RegisteredModel:
    try:
        return RegisteredModel.objects.select_for_update().get(name=name)
    except RegisteredModel.DoesNotExist:
        raise NotFound(f"No model named '{name}'.") from None


def _stage_holder(model: RegisteredModel, stage: str) -> ModelVersion | None:
    return ModelVersion.objects.filter(model=model, stage=stage).first()


def _hash_upload(upload: UploadedFile) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    for chunk in upload.chunks():
        digest.update(chunk)
        size += len(chunk)
    upload.seek(0)
    return digest.hexdigest(), size


# --- register -----------------------------------------------------------------------


def model_version_register(
    *,
    model_name: str,
    actor,
    params: dict | None = None,
    metrics: dict | None = None,
    tags: dict | None = None,
    code_commit: str = "",
    data_version: str = "",
    image_tag: str = "",
    description: str = "",
    artifact: UploadedFile | None = None,
    artifact_uri: str = "",
) -> ModelVersion:
    """Register the next version of `model_name` (created on its first version) as a candidate.

    The version number is max + 1 under the model's row lock, so concurrent
    registrations get 1, 2, 3... with no gaps or duplicates. An uploaded artifact
    is stored through Django's default storage with its size and sha256.
    """
    _require_role(actor, EDITOR, "Registering a version")
    params, metrics, tags = params if params is not None else {}, metrics if metrics is not None else {}, tags if tags is not None else {}
    texts = {
        "code_commit": code_commit,
        "data_version": data_version,
        "image_tag": image_tag,
        "description": description,
        "artifact_uri": artifact_uri,
    }
    errors = _validate_version_fields(params=params, metrics=metrics, tags=tags, texts=texts)
    if not isinstance(model_name, str) or not re.match(NAME_PATTERN, model_name):
        errors["model"] = ["Use 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit."]
    if artifact is not None and artifact_uri:
        errors["artifact"] = ["Give either an uploaded artifact or an artifact_uri, not both."]
    if errors:
        raise ValidationFailed("Invalid version: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()), fields=errors)
    if artifact is not None and artifact.size is not None and artifact.size > settings.MLOPS_MAX_ARTIFACT_BYTES:
        raise TooLarge(f"Artifact is {artifact.size} bytes; the limit is {settings.MLOPS_MAX_ARTIFACT_BYTES} bytes.")

    sha256, size = _hash_upload(artifact) if artifact is not None else ("", None)
    stored_name = ""
    try:
        with transaction.atomic():
            model = _model_get_or_create_locked(model_name, actor)
            last = ModelVersion.objects.filter(model=model).order_by("-version").values_list("version", flat=True).first()
            version = ModelVersion(
                model=model,
                version=(last or 0) + 1,
                params=params,
                metrics=metrics,
                tags=tags,
                created_by=actor,
                artifact_uri=artifact_uri,
                artifact_sha256=sha256,
                artifact_size=size,
                **{k: v for k, v in texts.items() if k != "artifact_uri"},
            )
            if artifact is not None:
                stored_name = default_storage.save(artifact_path(version, artifact.name or "artifact"), artifact)
                version.artifact.name = stored_name
            version.save()
            audit_record(
                actor=actor,
                action=AuditAction.REGISTERED,
                subject=f"model:{model.name}",
                version=version.version,
                to_stage=Stage.CANDIDATE,
                reason=description[:500],
                extra={"artifact_sha256": sha256} if sha256 else {},
            )
    except BaseException:
        # The row was rolled back; do not leave an orphan file behind it.
        if stored_name:
            default_storage.delete(stored_name)
        raise
    return version


def _model_get_or_create_locked(name: str, actor) -> RegisteredModel:
    try:
        return RegisteredModel.objects.select_for_update().get(name=name)
    except RegisteredModel.DoesNotExist:
        pass
    try:
        with transaction.atomic():
            return RegisteredModel.objects.create(name=name, created_by=actor)
    except IntegrityError:
        # Someone else created it a moment ago.
        return RegisteredModel.objects.select_for_update().get(name=name)


# --- promotion requests ---------------------------------------------------------------


def promotion_request_create(*, version: ModelVersion, to_stage: str, reason: str, actor) -> PromotionRequest:
    """Ask for `version` to move into `to_stage`; remembers the version that holds it now."""
    _require_role(actor, EDITOR, "Requesting a promotion")
    if to_stage not in PROMOTABLE_STAGES:
        raise ValidationFailed(
            f"'to' must be one of {', '.join(PROMOTABLE_STAGES)}.", fields={"to": [f"Not a promotable stage: {to_stage!r}."]}
        )
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("A reason is required.", fields={"reason": ["This field may not be blank."]})
    subject = f"model:{version.model.name}"
    try:
        with transaction.atomic():
            model = _lock_model(version.model.name)
            version = ModelVersion.objects.get(pk=version.pk)
            if version.stage == to_stage:
                raise Conflict(f"{model.name} v{version.version} is already in {to_stage}.", code="already_in_stage")
            if PromotionRequest.objects.filter(version=version, to_stage=to_stage, status=PromotionStatus.PENDING).exists():
                raise Conflict(
                    f"{model.name} v{version.version} already has a pending request for {to_stage}.", code="already_pending"
                )
            holder = _stage_holder(model, to_stage)
            promotion = PromotionRequest.objects.create(
                version=version, to_stage=to_stage, from_version=holder, reason=reason, requested_by=actor
            )
            audit_record(
                actor=actor,
                action=AuditAction.PROMOTION_REQUESTED,
                subject=subject,
                version=version.version,
                from_stage=version.stage,
                to_stage=to_stage,
                reason=reason,
                extra={"promotion_id": promotion.pk, "replaces_version": holder.version if holder else None},
            )
    except IntegrityError:
        raise Conflict(f"{version.model.name} v{version.version} already has a pending request for {to_stage}.", code="already_pending") from None
    return promotion


def _move_to_stage(*, model, version, stage: str, actor, kind: str, reason: str, promotion=None) -> ModelVersion | None:
    """Put `version` into `stage`, archive the previous holder, record the change. Returns the previous holder."""
    previous = _stage_holder(model, stage)
    if previous is not None:
        ModelVersion.objects.filter(pk=previous.pk).update(stage=Stage.ARCHIVED)
    ModelVersion.objects.filter(pk=version.pk).update(stage=stage)
    StageChange.objects.create(
        model=model, stage=stage, version=version, previous_version=previous, kind=kind,
        promotion=promotion, actor=actor, reason=reason,
    )
    # Requests aimed at this stage were made against a holder that is gone now.
    PromotionRequest.objects.filter(version__model=model, to_stage=stage, status=PromotionStatus.PENDING).exclude(
        pk=getattr(promotion, "pk", None)
    ).update(
        status=PromotionStatus.SUPERSEDED,
        decided_at=timezone.now(),
        comment=f"Superseded: v{version.version} entered {stage} ({kind}).",
    )
    return previous


def _lock_pending_promotion(promotion_id: int) -> tuple[PromotionRequest, RegisteredModel]:
    try:
        promotion = PromotionRequest.objects.select_related("version__model").get(pk=promotion_id)
    except (PromotionRequest.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No promotion request {promotion_id}.") from None
    model = _lock_model(promotion.version.model.name)
    # Re-read under the lock: another approver may have decided it meanwhile.
    promotion = PromotionRequest.objects.select_related("version__model", "from_version").get(pk=promotion_id)
    return promotion, model


def promotion_approve(*, promotion_id: int, actor, comment: str = "") -> PromotionRequest:
    """Approve a pending request: the version enters the stage, the previous holder is archived.

    Four eyes: the requester can never approve their own request. If the stage
    has changed since the request was made, the request is stale: 409.
    """
    _require_role(actor, APPROVER, "Approving a promotion")
    try:
        with transaction.atomic():
            promotion, model = _lock_pending_promotion(promotion_id)
            if promotion.requested_by_id == actor.pk:
                raise Forbidden("You requested this promotion; someone else must approve it.", code="four_eyes")
            if promotion.status != PromotionStatus.PENDING:
                raise Conflict(f"Promotion #{promotion.pk} is {promotion.status}, not pending.", code="not_pending")
            version, stage = promotion.version, promotion.to_stage
            holder = _stage_holder(model, stage)
            if getattr(holder, "pk", None) != promotion.from_version_id:
                raise Conflict(
                    f"{stage} of {model.name} changed since this request was made "
                    f"(was {_label(promotion.from_version)}, now {_label(holder)}); request again.",
                    code="stage_changed",
                )
            from_stage = version.stage
            previous = _move_to_stage(
                model=model, version=version, stage=stage, actor=actor, kind=StageChangeKind.PROMOTION,
                reason=promotion.reason, promotion=promotion,
            )
            promotion.status = PromotionStatus.APPROVED
            promotion.decided_by = actor
            promotion.decided_at = timezone.now()
            promotion.comment = comment or ""
            promotion.save(update_fields=["status", "decided_by", "decided_at", "comment"])
            audit_record(
                actor=actor,
                action=AuditAction.PROMOTION_APPROVED,
                subject=f"model:{model.name}",
                version=version.version,
                from_stage=from_stage,
                to_stage=stage,
                reason=comment or promotion.reason,
                extra={
                    "promotion_id": promotion.pk,
                    "requested_by": promotion.requested_by.username,
                    "archived_version": previous.version if previous else None,
                },
            )
    except IntegrityError:
        # Only reachable if the row lock was bypassed; the unique index still holds.
        raise Conflict("Another version entered that stage at the same moment; request again.", code="stage_changed") from None
    version.stage = stage
    return promotion


def promotion_reject(*, promotion_id: int, actor, comment: str) -> PromotionRequest:
    """Reject a pending request, with a comment that says why."""
    _require_role(actor, APPROVER, "Rejecting a promotion")
    comment = (comment or "").strip()
    if not comment:
        raise ValidationFailed("Say why you reject it.", fields={"comment": ["This field may not be blank."]})
    with transaction.atomic():
        promotion, model = _lock_pending_promotion(promotion_id)
        if promotion.requested_by_id == actor.pk:
            raise Forbidden("You requested this promotion; someone else must decide it.", code="four_eyes")
        if promotion.status != PromotionStatus.PENDING:
            raise Conflict(f"Promotion #{promotion.pk} is {promotion.status}, not pending.", code="not_pending")
        promotion.status = PromotionStatus.REJECTED
        promotion.decided_by = actor
        promotion.decided_at = timezone.now()
        promotion.comment = comment
        promotion.save(update_fields=["status", "decided_by", "decided_at", "comment"])
        audit_record(
            actor=actor,
            action=AuditAction.PROMOTION_REJECTED,
            subject=f"model:{model.name}",
            version=promotion.version.version,
            from_stage=promotion.version.stage,
            to_stage=promotion.to_stage,
            reason=comment,
            extra={"promotion_id": promotion.pk, "requested_by": promotion.requested_by.username},
        )
    return promotion


def _label(version: ModelVersion | None) -> str:
    return f"v{version.version}" if version is not None else "empty"


# --- rollback -----------------------------------------------------------------------------


def _rollback_target(model: RegisteredModel, stage: str, current: ModelVersion) -> ModelVersion | None:
    """The version that held `stage` before the current one.

    The stage history is a stack: a promotion pushes, a rollback pops. So
    rolling back twice after v1 -> v2 -> v3 gives v2, then v1 (not v3 again).
    """
    stack: list[int] = []
    for kind, version_id in StageChange.objects.filter(model=model, stage=stage).order_by("id").values_list("kind", "version_id"):
        if kind == StageChangeKind.ROLLBACK:
            if stack:
                stack.pop()
            if not stack or stack[-1] != version_id:
                stack.append(version_id)
        else:
            stack.append(version_id)
    earlier = [v for v in stack if v != current.pk]
    return ModelVersion.objects.get(pk=earlier[-1]) if earlier else None


def model_rollback(*, model_name: str, stage: str, reason: str, actor) -> ModelVersion:
    """Return `stage` to the version that held it before the current one; the current one is archived."""
    _require_role(actor, APPROVER, "Rolling back")
    if stage not in PROMOTABLE_STAGES:
        raise ValidationFailed(
            f"'stage' must be one of {', '.join(PROMOTABLE_STAGES)}.", fields={"stage": [f"Not a rollback stage: {stage!r}."]}
        )
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("A reason is required.", fields={"reason": ["This field may not be blank."]})
    with transaction.atomic():
        model = _lock_model(model_name)
        current = _stage_holder(model, stage)
        if current is None:
            raise Conflict(f"No version of {model.name} is in {stage}.", code="stage_empty")
        target = _rollback_target(model, stage, current)
        if target is None:
            raise Conflict(f"{model.name} has no earlier {stage} version to roll back to.", code="no_previous_version")
        from_stage = target.stage
        _move_to_stage(model=model, version=target, stage=stage, actor=actor, kind=StageChangeKind.ROLLBACK, reason=reason)
        audit_record(
            actor=actor,
            action=AuditAction.ROLLED_BACK,
            subject=f"model:{model.name}",
            version=target.version,
            from_stage=from_stage,
            to_stage=stage,
            reason=reason,
            extra={"replaced_version": current.version},
        )
    target.stage = stage
    return target


# --- housekeeping (beat) -------------------------------------------------------------------


def promotions_expire_stale(*, max_age_days: int | None = None, now=None) -> int:
    """Expire pending requests older than MLOPS_PROMOTION_TTL_DAYS. Idempotent: a conditional UPDATE claims each."""
    max_age = settings.MLOPS_PROMOTION_TTL_DAYS if max_age_days is None else max_age_days
    now = now or timezone.now()
    cutoff = now - timedelta(days=max_age)
    expired = 0
    with transaction.atomic():
        stale = list(
            PromotionRequest.objects.filter(status=PromotionStatus.PENDING, requested_at__lt=cutoff).select_related("version__model")
        )
        for promotion in stale:
            claimed = PromotionRequest.objects.filter(pk=promotion.pk, status=PromotionStatus.PENDING).update(
                status=PromotionStatus.EXPIRED, decided_at=now, comment=f"Expired after {max_age} days without a decision."
            )
            if not claimed:
                continue
            expired += 1
            audit_record(
                actor=None,
                action=AuditAction.PROMOTION_EXPIRED,
                subject=f"model:{promotion.version.model.name}",
                version=promotion.version.version,
                from_stage=promotion.version.stage,
                to_stage=promotion.to_stage,
                reason=f"No decision within {max_age} days.",
                extra={"promotion_id": promotion.pk},
            )
    return expired
