"""Stage changes of models and prompts: requests, four-eyes decisions, rollback and expiry, canaries.

A model version enters `staging` or `production`, and a prompt version an
environment (`dev`, `staging`, `prod`), only through an approved request or a
rollback. Every change first locks the model's (or prompt's) row, so the checks
below see the state they change; unique constraints are the last line.

A canary request (strategy `canary`, into production / prod) is approved like any
other, but its approval does not move the stage: the request becomes `rolling_out`
and the task named by MLOPS_ROLLOUT_START_TASK (experiments) rolls the version out.
Experiments then calls down: `promotion_rollout_complete` moves the stage,
`promotion_rollout_abort` closes the request as `rolled_back`. The registry never
imports experiments.
"""

from __future__ import annotations

import re
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from mlops_site.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from mlops_site.queue import enqueue_on_commit
from mlops_site.roles import APPROVER, EDITOR, require_role

from ..models import (
    CANARY_STAGES,
    NAME_PATTERN,
    AuditAction,
    PromotionRequest,
    PromotionStatus,
    PromotionStrategy,
    StageChange,
    StageChangeKind,
    WebhookEvent,
)
from .audit import audit_record
from .gates import gate_status, gates_require
from .subjects import ModelSubject, PromptSubject, subject_for_request, subject_for_version
from .webhooks import webhooks_fire


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


def _require_strategy(strategy: str, policy: str, to_stage: str, kind) -> tuple[str, str]:
    if strategy not in PromotionStrategy.values:
        raise ValidationFailed(f"'strategy' must be one of {', '.join(PromotionStrategy.values)}.",
                               fields={"strategy": [f"Not one of them: {strategy!r}."]})
    policy = (policy or "").strip() if isinstance(policy, str) else policy
    if strategy == PromotionStrategy.DIRECT:
        if policy:
            raise ValidationFailed("A rollout policy goes with a canary only.", fields={"policy": ["Only with \"strategy\": \"canary\"."]})
        return strategy, ""
    target = CANARY_STAGES[kind.kind]
    if to_stage != target:
        raise ValidationFailed(f"A canary of a {kind.kind} rolls out into {target}, not {to_stage}.",
                               fields={"strategy": [f"A canary goes to {target} only."]})
    if policy and not (isinstance(policy, str) and len(policy) <= 100 and re.match(NAME_PATTERN, policy)):
        raise ValidationFailed("'policy' must be a rollout policy's name.", fields={"policy": ["1 to 100 letters, digits, '.', '_' or '-'."]})
    return strategy, policy


def _rollout_in_progress(subject, stage: str, exclude: int | None = None) -> None:
    """409 while a canary of the subject rolls out into `stage`: the controller compares its candidate with the
    stage's holder, which nothing else may replace meanwhile."""
    running = subject.requests().filter(to_stage=stage, status=PromotionStatus.ROLLING_OUT).exclude(pk=exclude).select_related("version", "prompt_version").first()
    if running is not None:
        raise Conflict(
            f"v{running.target.version} of {subject.name} is rolling out into {stage} (promotion #{running.pk}); "
            "wait until it completes or roll it back.",
            code="rollout_in_progress",
            extra={"promotion_id": running.pk},
        )


def promotion_request_create(
    *, version, to_stage: str, reason: str, actor, override_reason: str = "", strategy: str = PromotionStrategy.DIRECT, policy: str = "",
) -> PromotionRequest:
    """Ask for a model or prompt `version` to move into `to_stage`; remembers what holds it now.

    For prompt environments that need no approval (MLOPS_PROMPT_DIRECT_ENVIRONMENTS,
    dev by default) the request is approved at once by the requester. With an enforced gate
    policy, a version whose gates failed or never ran is refused (409) unless an admin
    overrides with a reason (`override_reason`).

    `strategy="canary"` (models: production only; prompts: prod only) asks for a staged rollout under the
    rollout policy named `policy` (blank: the default); 409 `rollout_in_progress` while the subject already
    has one, 409 `already_in_stage` for the version that holds the stage.
    """
    require_role(actor, EDITOR, "Requesting a promotion")
    kind = subject_for_version(version)
    _require_stage(to_stage, "to", kind)
    strategy, policy = _require_strategy(strategy, policy, to_stage, kind)
    reason = _require_reason(reason)
    name = kind.parent_name(version)
    already = Conflict(f"{name} v{version.version} already has a pending request for {to_stage}.", code="already_pending")
    try:
        with transaction.atomic():
            subject = kind.lock(name)
            version = kind.version_class.objects.get(pk=version.pk)
            subject.check_move(version, to_stage)
            if strategy == PromotionStrategy.CANARY:
                _rollout_in_progress(subject, to_stage)
            gates_require(version=version, to_stage=to_stage, actor=actor, requester=actor, subject=subject.subject,
                          override_reason=override_reason)
            if subject.requests().filter(**{_version_field(subject): version}, to_stage=to_stage, status=PromotionStatus.PENDING).exists():
                raise already
            holder = subject.holder(to_stage)
            promotion = PromotionRequest.objects.create(
                to_stage=to_stage, reason=reason, requested_by=actor, strategy=strategy, policy=policy, **subject.request_fields(version, holder)
            )
            requested = audit_record(
                actor=actor,
                action=AuditAction.PROMOTION_REQUESTED,
                subject=subject.subject,
                version=version.version,
                from_stage=subject.where(version),
                to_stage=to_stage,
                reason=reason,
                extra={"promotion_id": promotion.pk, "replaces_version": holder.version if holder else None,
                       **({"strategy": strategy, "policy": policy or "default"} if strategy == PromotionStrategy.CANARY else {})},
            )
            webhooks_fire(requested, WebhookEvent.PROMOTION_REQUESTED)
            if not subject.needs_approval(to_stage):
                _approve(subject, promotion, actor, comment="Direct move: this environment needs no approval.", direct=True)
    except IntegrityError:
        raise already from None
    return promotion


def _moved(subject) -> tuple[str, ...]:
    """The webhook events a stage move fires besides its own: a prompt's environment moved."""
    return (WebhookEvent.ENVIRONMENT_MOVED,) if subject.kind == "prompt" else ()


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


def four_eyes_refusal(promotion: PromotionRequest, user, *, verb: str = "approve") -> str:
    """Why `user` may not decide `promotion` ("" when they may): neither its requester nor the author of its version
    (whoever registered the model version or imported the prompt version) decides it. The services refuse with
    this text (403 `four_eyes`); the promotion card shows it on a disabled Approve button."""
    if promotion.requested_by_id == user.pk:
        return f"You requested this promotion; someone else must {verb} it."
    if user.pk is not None and promotion.target.created_by_id == user.pk:
        return f"You created this version; someone else must {verb} its promotion."
    return ""


def _claim(promotion_id: int, actor, status: str, comment: str):
    """Lock the subject, check four eyes, and claim the pending request with a conditional UPDATE.

    The claim (`status = pending` in the WHERE clause) is what makes a decision
    race-free against the expiry task and a second approver: only one of them
    changes the row; the others get 409.
    """
    try:
        promotion = PromotionRequest.objects.select_related("model", "prompt", "version", "prompt_version").get(pk=promotion_id)
    except (PromotionRequest.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No promotion request {promotion_id}.") from None
    subject = subject_for_request(promotion).lock(promotion.subject_name)
    refusal = four_eyes_refusal(promotion, actor, verb="approve" if status == PromotionStatus.APPROVED else "reject")
    if refusal:
        raise Forbidden(refusal, code="four_eyes")
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
    _rollout_in_progress(subject, stage, exclude=promotion.pk)
    if not direct:  # a direct move was gated when it was requested, a moment ago in the same transaction
        gates_require(version=version, to_stage=stage, actor=actor, requester=promotion.requested_by, subject=subject.subject,
                      override_reason=override_reason)
    from_stage = subject.where(version)
    canary = promotion.strategy == PromotionStrategy.CANARY
    if direct or canary:
        status = PromotionStatus.ROLLING_OUT if canary else PromotionStatus.APPROVED
        PromotionRequest.objects.filter(pk=promotion.pk).update(status=status, decided_by=actor, decided_at=timezone.now(), comment=comment)
        promotion.status = status
    if canary:
        # No stage move: the holder stays and is the rollout's baseline. Experiments starts the rollout.
        approved = audit_record(
            actor=actor, action=AuditAction.PROMOTION_APPROVED, subject=subject.subject, version=version.version, from_stage=from_stage,
            to_stage=stage, reason=comment,
            extra={"promotion_id": promotion.pk, "requested_by": promotion.requested_by.username, "request_reason": promotion.reason,
                   "strategy": PromotionStrategy.CANARY.value, "policy": promotion.policy or "default", "baseline_version": holder.version if holder else None,
                   **({"direct": True} if direct else {})},
        )
        webhooks_fire(approved, WebhookEvent.PROMOTION_APPROVED)
        enqueue_on_commit(settings.MLOPS_ROLLOUT_START_TASK, promotion.pk)
        return
    previous = _move(subject, version=version, stage=stage, actor=actor, kind=StageChangeKind.PROMOTION, reason=promotion.reason, promotion=promotion)
    approved = audit_record(
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
    webhooks_fire(approved, WebhookEvent.PROMOTION_APPROVED, *_moved(subject))


def promotion_approve(*, promotion_id: int, actor, comment: str = "", override_reason: str = "") -> PromotionRequest:
    """Approve a pending request: the version enters the stage (a model's previous holder is archived).

    Four eyes: neither the requester nor the version's author (`created_by`) can approve it. If the stage
    has changed since the request was made, the request is stale: 409. The gates are
    checked again (an evaluation may have failed since the request): 409 `gates_failed`
    naming the checks, unless an admin overrides with a reason. While a canary of the
    subject rolls out into the stage, nothing else enters it: 409 `rollout_in_progress`.

    A canary's approval moves no stage: the request becomes `rolling_out` (audited as
    approved, strategy canary) and MLOPS_ROLLOUT_START_TASK is queued after the commit.
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
    """Reject a pending request, with a comment that says why. Four eyes as for approval: 403 `four_eyes`."""
    require_role(actor, APPROVER, "Rejecting a promotion")
    comment = (comment or "").strip()
    if not comment:
        raise ValidationFailed("Say why you reject it.", fields={"comment": ["This field may not be blank."]})
    with transaction.atomic():
        promotion, subject = _claim(promotion_id, actor, PromotionStatus.REJECTED, comment)
        rejected = audit_record(
            actor=actor,
            action=AuditAction.PROMOTION_REJECTED,
            subject=subject.subject,
            version=promotion.target.version,
            from_stage=subject.where(promotion.target),
            to_stage=promotion.to_stage,
            reason=comment,
            extra={"promotion_id": promotion.pk, "requested_by": promotion.requested_by.username, "request_reason": promotion.reason},
        )
        webhooks_fire(rejected, WebhookEvent.PROMOTION_REJECTED)
    return promotion


def _rolling_out(promotion_id: int):
    """The rolling-out request, its subject locked; 404 for an unknown id, 409 `not_rolling_out` otherwise."""
    try:
        promotion = PromotionRequest.objects.select_related("model", "prompt").get(pk=promotion_id)
    except (PromotionRequest.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"No promotion request {promotion_id}.") from None
    subject = subject_for_request(promotion).lock(promotion.subject_name)
    promotion = PromotionRequest.objects.select_related(
        "model", "prompt", "version", "prompt_version", "from_version", "from_prompt_version", "requested_by"
    ).get(pk=promotion.pk)
    if promotion.status != PromotionStatus.ROLLING_OUT:
        raise Conflict(f"Promotion #{promotion.pk} is {promotion.status}, not rolling out.", code="not_rolling_out")
    return promotion, subject


def promotion_rollout_complete(*, promotion_id: int, actor=None, reason: str = "") -> PromotionRequest:
    """A canary's rollout completed: its version enters the stage exactly as a direct approval puts it there
    (the previous holder archived, a StageChange, stale requests superseded) and the request is `approved`.

    The approval that started the rollout is its approval: no four eyes or gates again. `actor` None is the
    system (the rollout controller; audited as "system"), else a person with the approver role (a manual
    Advance from the last stage). 409 `not_rolling_out`, or `stage_changed` when the stage got another holder
    during the rollout (a rollback): then the request stays rolling out and the caller aborts it.
    """
    if actor is not None:
        require_role(actor, APPROVER, "Completing a rollout")
    with transaction.atomic():
        promotion, subject = _rolling_out(promotion_id)
        version, stage = promotion.target, promotion.to_stage
        holder = subject.holder(stage)
        if getattr(holder, "pk", None) != getattr(promotion.replaces, "pk", None):
            raise Conflict(
                f"{stage} of {subject.name} changed during the rollout (was {_label(promotion.replaces)}, now {_label(holder)}).",
                code="stage_changed",
            )
        subject.check_move(version, stage)
        from_stage = subject.where(version)
        PromotionRequest.objects.filter(pk=promotion.pk, status=PromotionStatus.ROLLING_OUT).update(status=PromotionStatus.APPROVED)
        promotion.status = PromotionStatus.APPROVED
        previous = _move(subject, version=version, stage=stage, actor=actor, kind=StageChangeKind.PROMOTION, reason=promotion.reason, promotion=promotion)
        completed = audit_record(
            actor=actor,
            action=AuditAction.PROMOTION_COMPLETED,
            subject=subject.subject,
            version=version.version,
            from_stage=from_stage,
            to_stage=stage,
            reason=(reason or "").strip() or "The canary rollout completed.",
            extra={
                "promotion_id": promotion.pk,
                "strategy": PromotionStrategy.CANARY.value,
                "replaced_version" if subject.kind == "prompt" else "archived_version": previous.version if previous else None,
            },
        )
        webhooks_fire(completed, WebhookEvent.PROMOTION_COMPLETED, *_moved(subject))
    return promotion


def promotion_rollout_abort(*, promotion_id: int, reason: str, actor=None, extra: dict | None = None) -> PromotionRequest:
    """A canary stopped before it completed: the request becomes `rolled_back`. The stage never moved, so its
    holder (the baseline) serves all traffic again. One audit event `rollout_rolled_back` says why: `reason`
    and `extra` (the trigger and the numbers it read). `actor` None is the system, else an approver."""
    if actor is not None:
        require_role(actor, APPROVER, "Rolling back a rollout")
    reason = _require_reason(reason)
    with transaction.atomic():
        promotion, subject = _rolling_out(promotion_id)
        PromotionRequest.objects.filter(pk=promotion.pk, status=PromotionStatus.ROLLING_OUT).update(status=PromotionStatus.ROLLED_BACK)
        promotion.status = PromotionStatus.ROLLED_BACK
        holder = subject.holder(promotion.to_stage)
        aborted = audit_record(
            actor=actor,
            action=AuditAction.ROLLOUT_ROLLED_BACK,
            subject=subject.subject,
            version=promotion.target.version,
            from_stage=subject.where(promotion.target),
            to_stage=promotion.to_stage,
            reason=reason,
            extra={"promotion_id": promotion.pk, "serving_version": holder.version if holder else None, **(extra or {})},
        )
        webhooks_fire(aborted, WebhookEvent.ROLLED_BACK)
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


def _rollback(subject_class, *, name: str, stage: str, field: str, reason: str, actor, extra: dict | None):
    if actor is not None:
        require_role(actor, APPROVER, "Rolling back")
    _require_stage(stage, field, subject_class)
    reason = _require_reason(reason)
    with transaction.atomic():
        subject = subject_class.lock(name)
        if actor is None:
            # The system (an alert rule's action) never rolls back a stage a canary rolls out into: the candidate's
            # own traffic may be what fired the rule, and the rollout's triggers roll the candidate back. A person may.
            _rollout_in_progress(subject, stage)
        current = subject.holder(stage)
        if current is None:
            raise Conflict(f"No version of {subject.name} is in {stage}.", code="stage_empty")
        target = _rollback_target(subject, stage, current)
        if target is None:
            raise Conflict(f"{subject.name} has no earlier {stage} version to roll back to.", code="no_previous_version")
        from_stage = subject.where(target)
        _move(subject, version=target, stage=stage, actor=actor, kind=StageChangeKind.ROLLBACK, reason=reason)
        rolled_back = audit_record(
            actor=actor,
            action=AuditAction.ROLLED_BACK,
            subject=subject.subject,
            version=target.version,
            from_stage=from_stage,
            to_stage=stage,
            reason=reason,
            extra={"replaced_version": current.version, **(extra or {})},
        )
        webhooks_fire(rolled_back, WebhookEvent.ROLLED_BACK, *_moved(subject))
    return target


def model_rollback(*, model_name: str, stage: str, reason: str, actor, extra: dict | None = None):
    """Return a model's `stage` to the version that held it before the current one; the current one is archived.

    `actor` None is the system (an alert rule's action; audited as "system"), else an approver. 409 `stage_empty`,
    `no_previous_version`, and for the system only `rollout_in_progress` while a canary rolls out into the stage.
    `extra` goes into the audit event (what asked for the rollback)."""
    return _rollback(ModelSubject, name=model_name, stage=stage, field="stage", reason=reason, actor=actor, extra=extra)


def prompt_rollback(*, prompt_name: str, environment: str, reason: str, actor, extra: dict | None = None):
    """Return a prompt environment to the version it ran before the current one (`actor` None: the system, as for
    model_rollback)."""
    return _rollback(PromptSubject, name=prompt_name, stage=environment, field="environment", reason=reason, actor=actor, extra=extra)


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


def promotion_direct(*, version, to_stage: str, reason: str, actor, comment: str) -> PromotionRequest:
    """An approver's own move of a model version whose gates pass (an MLflow client's stage transition or protected
    alias move by an approver): requested and approved in one transaction, audited as a request and a direct approval.

    Only for a caller with the approver role who is not the version's author, and only when the version has a gate
    policy whose every check passes for this caller; otherwise 403 or 409, and the caller asks for a promotion instead.
    """
    require_role(actor, APPROVER, "Moving a version without a second approver")
    if version.created_by_id == actor.pk:
        raise Forbidden("You created this version; someone else must approve its promotion.", code="four_eyes")
    with transaction.atomic():
        status = gate_status(version=version, requester=actor)
        if status.policy is None or not status.checks or not status.passed:
            raise Conflict(f"{version} has no passing gates for {actor.get_username()}.", code="gates_failed")
        promotion = promotion_request_create(version=version, to_stage=to_stage, reason=reason, actor=actor)
        subject = subject_for_version(version).lock(promotion.subject_name)
        _approve(subject, promotion, actor, comment=comment, direct=True)
    return promotion
