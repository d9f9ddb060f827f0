"""Stage changes: promotion requests, four-eyes decisions, rollback and expiry.

A version enters `staging` or `production` only through an approved request or a
rollback. Both lock the model's row first, so the checks below see the state
they change; the partial unique index on (model, stage) is the last line.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from mlops_site.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from mlops_site.roles import APPROVER, EDITOR

from ..models import (
    PROMOTABLE_STAGES,
    AuditAction,
    ModelVersion,
    PromotionRequest,
    PromotionStatus,
    RegisteredModel,
    Stage,
    StageChange,
    StageChangeKind,
)
from .audit import audit_record, lock_model, require_role, stage_holder

# A request may not take a version out of a stage ranked higher: demoting the
# production version to staging would leave production empty without a rollback.
STAGE_RANK = {Stage.CANDIDATE: 0, Stage.ARCHIVED: 0, Stage.STAGING: 1, Stage.PRODUCTION: 2}


def _label(version: ModelVersion | None) -> str:
    return f"v{version.version}" if version is not None else "empty"


def _check_move(model: RegisteredModel, version: ModelVersion, to_stage: str) -> None:
    if version.stage == to_stage:
        raise Conflict(f"{model.name} v{version.version} is already in {to_stage}.", code="already_in_stage")
    if STAGE_RANK[version.stage] > STAGE_RANK[to_stage]:
        raise Conflict(
            f"{model.name} v{version.version} is in {version.stage}; moving it to {to_stage} would empty {version.stage}. "
            f"Roll {version.stage} back instead.",
            code="demotion",
        )


def _require_stage(stage: str, field: str) -> None:
    if stage not in PROMOTABLE_STAGES:
        raise ValidationFailed(f"'{field}' must be one of {', '.join(PROMOTABLE_STAGES)}.", fields={field: [f"Not one of them: {stage!r}."]})


def _require_reason(text: str, field: str = "reason") -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationFailed(f"A {field} is required.", fields={field: ["This field may not be blank."]})
    return text


def promotion_request_create(*, version: ModelVersion, to_stage: str, reason: str, actor) -> PromotionRequest:
    """Ask for `version` to move into `to_stage`; remembers the version that holds it now."""
    require_role(actor, EDITOR, "Requesting a promotion")
    _require_stage(to_stage, "to")
    reason = _require_reason(reason)
    name = version.model.name
    already = Conflict(f"{name} v{version.version} already has a pending request for {to_stage}.", code="already_pending")
    try:
        with transaction.atomic():
            model = lock_model(name)
            version = ModelVersion.objects.get(pk=version.pk)
            _check_move(model, version, to_stage)
            if PromotionRequest.objects.filter(version=version, to_stage=to_stage, status=PromotionStatus.PENDING).exists():
                raise already
            holder = stage_holder(model, to_stage)
            promotion = PromotionRequest.objects.create(
                model=model,
                version=version, to_stage=to_stage, from_version=holder, reason=reason, requested_by=actor
            )
            audit_record(
                actor=actor,
                action=AuditAction.PROMOTION_REQUESTED,
                subject=f"model:{name}",
                version=version.version,
                from_stage=version.stage,
                to_stage=to_stage,
                reason=reason,
                extra={"promotion_id": promotion.pk, "replaces_version": holder.version if holder else None},
            )
    except IntegrityError:
        raise already from None
    return promotion


def _move_to_stage(*, model, version, stage: str, actor, kind: str, reason: str, promotion=None) -> ModelVersion | None:
    """Put `version` into `stage`, archive the previous holder, record the change. Returns the previous holder.

    Pending requests aimed at this stage were made against a holder that is gone
    now: they become `superseded`, each with its own audit event.
    """
    previous = stage_holder(model, stage)
    if previous is not None:
        ModelVersion.objects.filter(pk=previous.pk).update(stage=Stage.ARCHIVED)
    ModelVersion.objects.filter(pk=version.pk).update(stage=stage)
    StageChange.objects.create(
        model=model, stage=stage, version=version, previous_version=previous, kind=kind, promotion=promotion, actor=actor, reason=reason
    )
    stale = list(
        PromotionRequest.objects.filter(model=model, to_stage=stage, status=PromotionStatus.PENDING)
        .exclude(pk=getattr(promotion, "pk", None))
        .select_related("version")
    )
    if stale:
        note = f"v{version.version} entered {stage} ({kind})."
        PromotionRequest.objects.filter(pk__in=[p.pk for p in stale], status=PromotionStatus.PENDING).update(
            status=PromotionStatus.SUPERSEDED, decided_at=timezone.now(), comment=f"Superseded: {note}"
        )
        for p in stale:
            audit_record(
                actor=actor, action=AuditAction.PROMOTION_SUPERSEDED, subject=f"model:{model.name}", version=p.version.version,
                from_stage=p.version.stage, to_stage=stage, reason=note, extra={"promotion_id": p.pk},
            )
    return previous


def _decide(promotion_id: int, actor, status: str, comment: str) -> tuple[PromotionRequest, RegisteredModel]:
    """Lock the model, check four eyes, and claim the pending request with a conditional UPDATE.

    The claim (`status = pending` in the WHERE clause) is what makes a decision
    race-free against the expiry task and a second approver: only one of them
    changes the row; the others get 409.
    """
    try:
        promotion = PromotionRequest.objects.select_related("version__model").get(pk=promotion_id)
    except (PromotionRequest.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No promotion request {promotion_id}.") from None
    model = lock_model(promotion.version.model.name)
    if promotion.requested_by_id == actor.pk:
        verb = "approve" if status == PromotionStatus.APPROVED else "reject"
        raise Forbidden(f"You requested this promotion; someone else must {verb} it.", code="four_eyes")
    now = timezone.now()
    claimed = PromotionRequest.objects.filter(pk=promotion.pk, status=PromotionStatus.PENDING).update(
        status=status, decided_by=actor, decided_at=now, comment=comment
    )
    if not claimed:
        current = PromotionRequest.objects.values_list("status", flat=True).get(pk=promotion.pk)
        raise Conflict(f"Promotion #{promotion.pk} is {current}, not pending.", code="not_pending")
    promotion = PromotionRequest.objects.select_related("version__model", "from_version", "requested_by").get(pk=promotion.pk)
    return promotion, model


def promotion_approve(*, promotion_id: int, actor, comment: str = "") -> PromotionRequest:
    """Approve a pending request: the version enters the stage, the previous holder is archived.

    Four eyes: the requester can never approve their own request. If the stage
    has changed since the request was made, the request is stale: 409.
    """
    require_role(actor, APPROVER, "Approving a promotion")
    comment = (comment or "").strip()
    try:
        with transaction.atomic():
            promotion, model = _decide(promotion_id, actor, PromotionStatus.APPROVED, comment)
            version, stage = promotion.version, promotion.to_stage
            holder = stage_holder(model, stage)
            if getattr(holder, "pk", None) != promotion.from_version_id:
                raise Conflict(
                    f"{stage} of {model.name} changed since this request was made "
                    f"(was {_label(promotion.from_version)}, now {_label(holder)}); request again.",
                    code="stage_changed",
                )
            _check_move(model, version, stage)
            from_stage = version.stage
            previous = _move_to_stage(
                model=model, version=version, stage=stage, actor=actor, kind=StageChangeKind.PROMOTION,
                reason=promotion.reason, promotion=promotion,
            )
            audit_record(
                actor=actor,
                action=AuditAction.PROMOTION_APPROVED,
                subject=f"model:{model.name}",
                version=version.version,
                from_stage=from_stage,
                to_stage=stage,
                reason=comment,
                extra={
                    "promotion_id": promotion.pk,
                    "requested_by": promotion.requested_by.username,
                    "request_reason": promotion.reason,
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
    require_role(actor, APPROVER, "Rejecting a promotion")
    comment = (comment or "").strip()
    if not comment:
        raise ValidationFailed("Say why you reject it.", fields={"comment": ["This field may not be blank."]})
    with transaction.atomic():
        promotion, model = _decide(promotion_id, actor, PromotionStatus.REJECTED, comment)
        audit_record(
            actor=actor,
            action=AuditAction.PROMOTION_REJECTED,
            subject=f"model:{model.name}",
            version=promotion.version.version,
            from_stage=promotion.version.stage,
            to_stage=promotion.to_stage,
            reason=comment,
            extra={"promotion_id": promotion.pk, "requested_by": promotion.requested_by.username, "request_reason": promotion.reason},
        )
    return promotion


def _rollback_target(model: RegisteredModel, stage: str, current: ModelVersion) -> ModelVersion | None:
    """The version that held `stage` before the current one.

    The stage history is a stack: a promotion pushes, a rollback pops. So
    rolling back twice after v1 -> v2 -> v3 gives v2, then v1 (not v3 again).
    A version that holds another stage now (it went on from staging to
    production) is skipped: rolling staging back must never empty production.
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
    free = set(ModelVersion.objects.filter(pk__in=earlier, stage__in=[Stage.ARCHIVED, Stage.CANDIDATE]).values_list("pk", flat=True))
    for version_id in reversed(earlier):
        if version_id in free:
            return ModelVersion.objects.get(pk=version_id)
    return None


def model_rollback(*, model_name: str, stage: str, reason: str, actor) -> ModelVersion:
    """Return `stage` to the version that held it before the current one; the current one is archived."""
    require_role(actor, APPROVER, "Rolling back")
    _require_stage(stage, "stage")
    reason = _require_reason(reason)
    with transaction.atomic():
        model = lock_model(model_name)
        current = stage_holder(model, stage)
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


def promotions_expire_stale(*, max_age_days: int | None = None, now=None) -> int:
    """Expire pending requests older than MLOPS_PROMOTION_TTL_DAYS. Idempotent: a conditional UPDATE claims each."""
    max_age = settings.MLOPS_PROMOTION_TTL_DAYS if max_age_days is None else max_age_days
    now = now or timezone.now()
    cutoff = now - timedelta(days=max_age)
    expired = 0
    stale = list(PromotionRequest.objects.filter(status=PromotionStatus.PENDING, requested_at__lt=cutoff).select_related("version__model"))
    for promotion in stale:
        with transaction.atomic():
            claimed = PromotionRequest.objects.filter(pk=promotion.pk, status=PromotionStatus.PENDING).update(
                status=PromotionStatus.EXPIRED, decided_at=now, comment=f"Expired after {max_age} days without a decision."
            )
            if not claimed:
                continue  # decided meanwhile
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
