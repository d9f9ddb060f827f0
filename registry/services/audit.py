"""The audit log writer, and the locked get-or-create of a model or prompt row that registering services share."""

from __future__ import annotations

from django.db import IntegrityError, transaction

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


def get_or_create_locked(model_class, *, name: str, actor):
    """The row named `name` of a model or prompt table, created if missing, locked until the transaction ends."""
    try:
        return model_class.objects.select_for_update().get(name=name)
    except model_class.DoesNotExist:
        pass
    try:
        with transaction.atomic():
            created = model_class.objects.create(name=name, created_by=actor)
            from .gates import gate_policy_default_ensure  # gates imports audit_record from here: a cycle at the top

            gate_policy_default_ensure(**{"model" if model_class is RegisteredModel else "prompt": created})
            return created
    except IntegrityError:
        # Someone else created it a moment ago.
        return model_class.objects.select_for_update().get(name=name)

