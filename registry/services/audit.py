"""The audit log writer and the checks every service shares."""

from __future__ import annotations

from mlops_site.exceptions import Forbidden, NotFound
from mlops_site.roles import has_role

from ..models import AuditEvent, RegisteredModel


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


def require_role(actor, role: str, doing: str) -> None:
    if not has_role(actor, role):
        raise Forbidden(f"{doing} needs the {role} role.", code="role_required")


def lock_model(name: str) -> RegisteredModel:
    """The model's row, locked until the transaction ends: stage changes of one model run one at a time."""
    try:
        return RegisteredModel.objects.select_for_update().get(name=name)
    except RegisteredModel.DoesNotExist:
        raise NotFound(f"No model named '{name}'.") from None

