"""Stage changes of models and prompts: requests, four-eyes decisions, rollback and expiry.

A model version enters `staging` or `production`, and a prompt version an
environment (`dev`, `staging`, `prod`), only through an approved request or a
rollback. Every change first locks the model's (or prompt's) row, so the checks
below see the state they change; unique constraints are the last line.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from mlops_site.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from mlops_site.roles import APPROVER, EDITOR, require_role

from ..models import AuditAction, PromotionRequest, PromotionStatus, StageChange, StageChangeKind
from .audit import audit_record
from .gates import gates_require
from .subjects import ModelSubject, PromptSubject, subject_for_request, subject_for_version


def _label(version) -> str:
    return f"v{version.version}" if version is not None else "empty"


def _require_stage(stage: str, field: str, subject) -> None:
    if stage not in subject.stages:
        raise ValidationFailed(f"'{field}' must be one of {', '.join(subject.stages)}.", fields={field: [f"Not one of them: {stage!r}."]})


def _require_reason(text: str, field: str = "reason") -> str:
    text = (text or "").strip()
    if not text:
        raise ValidationFailed(f"A {field} is required.", fields={field: ["This field may not be blank."]})
    return text


def promotion_request_create(*, version, to_stage: str, reason: str, actor, override_reason: str = "") -> PromotionRequest:
    """Ask for a model or prompt `version` to move into `to_stage`; remembers what holds it now.

    For prompt environments that need no approval (MLOPS_PROMPT_DIRECT_ENVIRONMENTS,
    dev by default) the request is approved at once by the requester. With an enforced gate
    policy, a version whose gates failed or never ran is refused (409) unless an admin
    overrides with a reason (`override_reason`).
    """
    require_role(actor, EDITOR, "Requesting a promotion")
    kind = subject_for_version(version)
    _require_stage(to_stage, "to", kind)
    reason = _require_reason(reason)
    name = kind.parent_name(version)
    already = Conflict(f"{name} v{version.version} already has a pending request for {to_stage}.", code="already_pending")
    try:
        with transaction.atomic():
            subject = kind.lock(name)
            version = kind.version_class.objects.get(pk=version.pk)
            subject.check_move(version, to_stage)
            gates_require(version=version, to_stage=to_stage, actor=actor, subject=subject.subject, override_reason=override_reason)
            if subject.requests().filter(**{_version_field(subject): version}, to_stage=to_stage, status=PromotionStatus.PENDING).exists():
                raise already
            holder = subject.holder(to_stage)
            promotion = PromotionRequest.objects.create(
                to_stage=to_stage, reason=reason, requested_by=actor, **subject.request_fields(version, holder)
            )
            audit_record(
                actor=actor,
                action=AuditAction.PROMOTION_REQUESTED,
                subject=subject.subject,
                version=version.version,
                from_stage=subject.where(version),
                to_stage=to_stage,
                reason=reason,
                extra={"promotion_id": promotion.pk, "replaces_version": holder.version if holder else None},
            )
            if not subject.needs_approval(to_stage):
                _approve(subject, promotion, actor, comment="Direct move: this environment needs no approval.", direct=True)
    except IntegrityError:
        raise already from None
    return promotion


def _version_field(subject) -> str:
    return "version" if subject.kind == "model" else "prompt_version"


def _move(subject, *, version, stage: str, actor, kind: str, reason: str, promotion=None):
    """Put `version` into `stage`, record the change, supersede stale requests. Returns the previous holder.

    Pending requests aimed at a stage whose holder changed were made against a holder that is gone
    now: they become `superseded`, each with its own audit event, so their requester may ask again.
    That is this stage, and the stage the version left (a model's v1 going on from staging to
    production empties staging).
    """
    left = [s for s in subject.where(version).split(", ") if s and s != stage]
    previous = subject.holder(stage)
    subject.place(version, stage, previous)
    StageChange.objects.create(stage=stage, kind=kind, promotion=promotion, actor=actor, reason=reason, **subject.change_fields(version, previous))
    notes = {stage: f"v{version.version} entered {stage} ({kind})."}
    for former in left:
        if getattr(subject.holder(former), "pk", None) != version.pk:
            notes[former] = f"v{version.version} left {former} for {stage} ({kind})."
    stale = list(
        subject.requests().filter(to_stage__in=list(notes), status=PromotionStatus.PENDING)
        .exclude(pk=getattr(promotion, "pk", None))
        .select_related("version", "prompt_version")
    )
    if stale:
        for target_stage, note in notes.items():
            PromotionRequest.objects.filter(pk__in=[p.pk for p in stale if p.to_stage == target_stage], status=PromotionStatus.PENDING).update(
                status=PromotionStatus.SUPERSEDED, decided_at=timezone.now(), comment=f"Superseded: {note}"
            )
        for p in stale:
            audit_record(
                actor=actor, action=AuditAction.PROMOTION_SUPERSEDED, subject=subject.subject, version=p.target.version,
                from_stage=subject.where(p.target), to_stage=p.to_stage, reason=notes[p.to_stage], extra={"promotion_id": p.pk},
            )
    return previous


def _claim(promotion_id: int, actor, status: str, comment: str):
    """Lock the subject, check four eyes, and claim the pending request with a conditional UPDATE.

    The claim (`status = pending` in the WHERE clause) is what makes a decision
    race-free against the expiry task and a second approver: only one of them
    changes the row; the others get 409.
    """
    try:
        promotion = PromotionRequest.objects.select_related("model", "prompt").get(pk=promotion_id)
    except (PromotionRequest.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No promotion request {promotion_id}.") from None
    subject = subject_for_request(promotion).lock(promotion.subject_name)
    if promotion.requested_by_id == actor.pk:
        verb = "approve" if status == PromotionStatus.APPROVED else "reject"
        raise Forbidden(f"You requested this promotion; someone else must {verb} it.", code="four_eyes")
    claimed = PromotionRequest.objects.filter(pk=promotion.pk, status=PromotionStatus.PENDING).update(
        status=status, decided_by=actor, decided_at=timezone.now(), comment=comment
    )
    if not claimed:
        current = PromotionRequest.objects.values_list("status", flat=True).get(pk=promotion.pk)
        raise Conflict(f"Promotion #{promotion.pk} is {current}, not pending.", code="not_pending")
    promotion = PromotionRequest.objects.select_related(
        "model", "prompt", "version", "prompt_version", "from_version", "from_prompt_version", "requested_by"
    ).get(pk=promotion.pk)
    return promotion, subject


def _approve(subject, promotion: PromotionRequest, actor, *, comment: str, direct: bool = False, override_reason: str = "") -> None:
    version, stage = promotion.target, promotion.to_stage
    holder = subject.holder(stage)
    if getattr(holder, "pk", None) != getattr(promotion.replaces, "pk", None):
        raise Conflict(
            f"{stage} of {subject.name} changed since this request was made "
            f"(was {_label(promotion.replaces)}, now {_label(holder)}); request again.",
            code="stage_changed",
        )
    subject.check_move(version, stage)
    if not direct:  # a direct move was gated when it was requested, a moment ago in the same transaction
        gates_require(version=version, to_stage=stage, actor=actor, subject=subject.subject, override_reason=override_reason)
    from_stage = subject.where(version)
    if direct:
        PromotionRequest.objects.filter(pk=promotion.pk).update(
            status=PromotionStatus.APPROVED, decided_by=actor, decided_at=timezone.now(), comment=comment
        )
        promotion.status = PromotionStatus.APPROVED
    previous = _move(subject, version=version, stage=stage, actor=actor, kind=StageChangeKind.PROMOTION, reason=promotion.reason, promotion=promotion)
    audit_record(
        actor=actor,
        action=AuditAction.PROMOTION_APPROVED,
        subject=subject.subject,
        version=version.version,
        from_stage=from_stage,
        to_stage=stage,
        reason=comment,
        extra={
            "promotion_id": promotion.pk,
            "requested_by": promotion.requested_by.username,
            "request_reason": promotion.reason,
            "replaced_version" if subject.kind == "prompt" else "archived_version": previous.version if previous else None,
            **({"direct": True} if direct else {}),
        },
    )


def promotion_approve(*, promotion_id: int, actor, comment: str = "", override_reason: str = "") -> PromotionRequest:
    """Approve a pending request: the version enters the stage (a model's previous holder is archived).

    Four eyes: the requester can never approve their own request. If the stage
    has changed since the request was made, the request is stale: 409. The gates are
    checked again (an evaluation may have failed since the request): 409 `gates_failed`
    naming the checks, unless an admin overrides with a reason.
    """
    require_role(actor, APPROVER, "Approving a promotion")
    comment = (comment or "").strip()
    try:
        with transaction.atomic():
            promotion, subject = _claim(promotion_id, actor, PromotionStatus.APPROVED, comment)
            _approve(subject, promotion, actor, comment=comment, override_reason=override_reason)
    except IntegrityError:
        # Only reachable if the row lock was bypassed; the unique index still holds.
        raise Conflict("Another version entered that stage at the same moment; request again.", code="stage_changed") from None
    return promotion


def promotion_reject(*, promotion_id: int, actor, comment: str) -> PromotionRequest:
    """Reject a pending request, with a comment that says why."""
    require_role(actor, APPROVER, "Rejecting a promotion")
    comment = (comment or "").strip()
    if not comment:
        raise ValidationFailed("Say why you reject it.", fields={"comment": ["This field may not be blank."]})
    with transaction.atomic():
        promotion, subject = _claim(promotion_id, actor, PromotionStatus.REJECTED, comment)
        audit_record(
            actor=actor,
            action=AuditAction.PROMOTION_REJECTED,
            subject=subject.subject,
            version=promotion.target.version,
            from_stage=subject.where(promotion.target),
            to_stage=promotion.to_stage,
            reason=comment,
            extra={"promotion_id": promotion.pk, "requested_by": promotion.requested_by.username, "request_reason": promotion.reason},
        )
    return promotion


def _rollback_target(subject, stage: str, current):
    """The version that held `stage` before the current one.

    The stage history is a stack: a promotion pushes, a rollback pops. So
    rolling back twice after v1 -> v2 -> v3 gives v2, then v1 (not v3 again).
    """
    field = "version_id" if subject.kind == "model" else "prompt_version_id"
    stack: list[int] = []
    for kind, version_id in subject.changes().filter(stage=stage).order_by("id").values_list("kind", field):
        if kind == StageChangeKind.ROLLBACK:
            if stack:
                stack.pop()
            if not stack or stack[-1] != version_id:
                stack.append(version_id)
        else:
            stack.append(version_id)
    earlier = [v for v in stack if v != current.pk]
    free = subject.rollback_candidates(earlier)
    for version_id in reversed(earlier):
        if version_id in free:
            return subject.version_by_id(version_id)
    return None


def _rollback(subject_class, *, name: str, stage: str, field: str, reason: str, actor):
    require_role(actor, APPROVER, "Rolling back")
    _require_stage(stage, field, subject_class)
    reason = _require_reason(reason)
    with transaction.atomic():
        subject = subject_class.lock(name)
        current = subject.holder(stage)
        if current is None:
            raise Conflict(f"No version of {subject.name} is in {stage}.", code="stage_empty")
        target = _rollback_target(subject, stage, current)
        if target is None:
            raise Conflict(f"{subject.name} has no earlier {stage} version to roll back to.", code="no_previous_version")
        from_stage = subject.where(target)
        _move(subject, version=target, stage=stage, actor=actor, kind=StageChangeKind.ROLLBACK, reason=reason)
        audit_record(
            actor=actor,
            action=AuditAction.ROLLED_BACK,
            subject=subject.subject,
            version=target.version,
            from_stage=from_stage,
            to_stage=stage,
            reason=reason,
            extra={"replaced_version": current.version},
        )
    return target


def model_rollback(*, model_name: str, stage: str, reason: str, actor):
    """Return a model's `stage` to the version that held it before the current one; the current one is archived."""
    return _rollback(ModelSubject, name=model_name, stage=stage, field="stage", reason=reason, actor=actor)


def prompt_rollback(*, prompt_name: str, environment: str, reason: str, actor):
    """Return a prompt environment to the version it ran before the current one."""
    return _rollback(PromptSubject, name=prompt_name, stage=environment, field="environment", reason=reason, actor=actor)


def promotions_expire_stale(*, max_age_days: int | None = None, now=None) -> int:
    """Expire pending requests older than MLOPS_PROMOTION_TTL_DAYS. Idempotent: a conditional UPDATE claims each."""
    max_age = settings.MLOPS_PROMOTION_TTL_DAYS if max_age_days is None else max_age_days
    now = now or timezone.now()
    cutoff = now - timedelta(days=max_age)
    expired = 0
    stale = list(
        PromotionRequest.objects.filter(status=PromotionStatus.PENDING, requested_at__lt=cutoff).select_related(
            "model", "prompt", "version", "prompt_version"
        )
    )
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
                subject=promotion.subject,
                version=promotion.target.version,
                from_stage=promotion.version.stage if promotion.version_id else "",
                to_stage=promotion.to_stage,
                reason=f"No decision within {max_age} days.",
                extra={"promotion_id": promotion.pk},
            )
    return expired
