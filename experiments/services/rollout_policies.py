"""Rollout policies: versioned rows, never edited. Creating a policy of an existing name makes its next version;
rollouts keep the version they started with. The policy "default" (the product's defaults, canary.DEFAULT_POLICY)
is created on first use."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction
from django.db.models import Max

from mlops_site.exceptions import Conflict, ValidationFailed
from mlops_site.roles import APPROVER, require_role
from registry.models import AuditAction
from registry.services import audit_record

from .. import canary
from ..models import POLICY_NAME_PATTERN, RolloutPolicy

DEFAULT_POLICY_NAME = "default"


def policy_rules(row: RolloutPolicy) -> canary.Policy:
    """The stored policy as the canary rules read it (stored rows were checked when created)."""
    return canary.policy_from_json(
        stages=row.stages, triggers=row.triggers, business_metric=row.business_metric, gate_min_requests=row.gate_min_requests,
        trigger_min_requests=row.trigger_min_requests,
    )


def rollout_policy_default_ensure() -> RolloutPolicy:
    """The newest version of the policy "default", created as version 1 with the product's defaults if there is none."""
    found = RolloutPolicy.objects.filter(name=DEFAULT_POLICY_NAME).order_by("-version").first()
    if found is not None:
        return found
    rules = canary.DEFAULT_POLICY
    try:
        with transaction.atomic():
            return RolloutPolicy.objects.create(
                name=DEFAULT_POLICY_NAME, version=1, description="The product's defaults.", stages=rules.stages_json(), triggers=rules.triggers_json(),
                business_metric=rules.business_metric, gate_min_requests=rules.gate_min_requests, trigger_min_requests=rules.trigger_min_requests,
            )
    except IntegrityError:  # created a moment ago by a concurrent first use
        return RolloutPolicy.objects.get(name=DEFAULT_POLICY_NAME, version=1)


def rollout_policy_create(
    *, name: str, stages, triggers, actor, business_metric="conversion", gate_min_requests=100, trigger_min_requests=20, description: str = "",
) -> RolloutPolicy:
    """A new version of the policy `name` (approvers): version 1 of a new name, else the next number. Checked by
    canary.policy_from_json (400 naming the field: shares never decrease and end at 100, min <= max, known gates and
    triggers, thresholds finite and above 0); audited. Running rollouts keep the version they started with."""
    require_role(actor, APPROVER, "Changing a rollout policy")
    if not isinstance(name, str) or not re.match(POLICY_NAME_PATTERN, name):
        raise ValidationFailed("name: 1 to 100 letters, digits, '.', '_' or '-'.", fields={"name": ["1 to 100 letters, digits, '.', '_' or '-'"]})
    try:
        rules = canary.policy_from_json(
            stages=stages, triggers=triggers, business_metric=business_metric, gate_min_requests=gate_min_requests,
            trigger_min_requests=trigger_min_requests,
        )
    except canary.PolicyError as exc:
        raise ValidationFailed(f"{exc.field}: {exc.message}.", fields={exc.field: [exc.message]}) from None
    description = description.strip() if isinstance(description, str) else ""
    if name == DEFAULT_POLICY_NAME:
        rollout_policy_default_ensure()  # version 1 stays the product's defaults
    for _ in range(3):
        try:
            with transaction.atomic():
                number = (RolloutPolicy.objects.filter(name=name).aggregate(n=Max("version"))["n"] or 0) + 1
                policy = RolloutPolicy.objects.create(
                    name=name, version=number, description=description, stages=rules.stages_json(), triggers=rules.triggers_json(),
                    business_metric=rules.business_metric, gate_min_requests=rules.gate_min_requests,
                    trigger_min_requests=rules.trigger_min_requests, created_by=actor,
                )
                audit_record(
                    actor=actor, action=AuditAction.ROLLOUT_POLICY_SET, subject=f"rollout-policy:{name}", version=number, reason=description,
                    extra={"stages": policy.stages, "triggers": policy.triggers, "business_metric": policy.business_metric,
                           "gate_min_requests": policy.gate_min_requests, "trigger_min_requests": policy.trigger_min_requests},
                )
                return policy
        except IntegrityError:  # another version of the name was created at the same moment: take the next number
            continue
    raise Conflict(f"Could not number a new version of {name}: others were being created at the same moment; try again.")
