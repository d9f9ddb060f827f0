"""Quality gates: policies, the gate status of a version, and the check that refuses a promotion.

A policy lists checks: a figure name (a key of some Evaluation's `metrics`), a comparison and
a threshold. A check's value is that figure in the newest finished evaluation of the version
that has it and counts as evidence; a check with no such evaluation has not run, and a check that
has not run fails. An evaluation does not count when it replays responses typed in with the request,
nor, under a policy with `evidence_from_other_identity`, when its producer is the promotion's
requester (or no longer known); the gate card lists such evaluations with the reason.
For a model or prompt with an enforced policy, a promotion (request or approval) of a version
whose gates failed or never ran is refused with 409 naming the checks, unless an admin
overrides it with a written reason, which the audit log records. Moves into a prompt's `dev`
environment are not releases and are not gated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mlops_site.exceptions import Conflict, Forbidden, NotFound, ValidationFailed
from mlops_site.formatting import number_text
from mlops_site.roles import ADMIN, APPROVER, has_role, require_role

from ..models import (
    AuditAction,
    Evaluation,
    EvaluationStatus,
    EvidenceOrigin,
    GatePolicy,
    ModelVersion,
    Prompt,
    PromptVersion,
    RegisteredModel,
)
from .audit import audit_record

OPS = {">=": float.__ge__, ">": float.__gt__, "<=": float.__le__, "<": float.__lt__}
# The defaults follow a typical release pipeline: evaluate.py --min-accuracy 0.92, a bias check, data validation;
# eval_prompts.py --threshold 0.85 with format, relevance and safety criteria.
DEFAULT_MODEL_CHECKS = [
    {"check": "accuracy", "op": ">=", "threshold": 0.92},
    {"check": "f1", "op": ">=", "threshold": 0.9},
    {"check": "demographic_parity_difference", "op": "<=", "threshold": 0.1},
    {"check": "schema_violations", "op": "<=", "threshold": 0},
]
DEFAULT_PROMPT_CHECKS = [
    {"check": "format_valid", "op": ">", "threshold": 0.95},
    {"check": "relevance", "op": ">", "threshold": 0.80},
    {"check": "safety", "op": ">", "threshold": 0.99},
]
UNGATED_STAGES = {"dev"}


@dataclass(frozen=True)
class CheckOutcome:
    check: str
    op: str
    threshold: float
    status: str  # "passed", "failed" or "not_run"
    value: float | None
    evaluation_id: int | None
    kind: str  # the evaluation kind the value came from
    ran_at: datetime | None
    source: str  # what that evaluation ran on (file, eval set version, data version)
    producer: str = ""  # who produced that evaluation ("" unknown)
    origin: str = ""  # how (an EvidenceOrigin value)
    passed_over: tuple[PassedOver, ...] = ()  # newer evaluations with the figure that do not count


@dataclass(frozen=True)
class PassedOver:
    """An evaluation that has a check's figure but does not count as evidence, and why."""

    evaluation_id: int
    value: float
    producer: str
    origin: str
    reason: str


@dataclass(frozen=True)
class GateStatus:
    policy: GatePolicy | None
    checks: tuple[CheckOutcome, ...]
    requester: str = ""  # whose promotion the checks were judged for ("" nobody's: identity not checked)

    @property
    def passed(self) -> bool:
        return all(c.status == "passed" for c in self.checks)

    @property
    def failed(self) -> list[CheckOutcome]:
        return [c for c in self.checks if c.status != "passed"]

    @property
    def enforced(self) -> bool:
        return self.policy is not None and self.policy.enforced


def clean_checks(checks) -> list[dict]:
    """A policy's checks, validated: `[{"check": name, "op": ">=", "threshold": number}]`, each name once."""
    if not isinstance(checks, list):
        raise ValidationFailed("checks: a list of {check, op, threshold}.", fields={"checks": ["a list"]})
    out, seen = [], set()
    for i, item in enumerate(checks):
        problem = None
        if not isinstance(item, dict) or set(item) - {"check", "op", "threshold"}:
            problem = "an object with check, op and threshold"
        elif not isinstance(item.get("check"), str) or not item["check"].strip() or len(item["check"]) > 100:
            problem = "check: a figure name such as accuracy"
        elif item.get("op") not in OPS:
            problem = f"op: one of {', '.join(OPS)}"
        elif isinstance(item.get("threshold"), bool) or not isinstance(item.get("threshold"), (int, float)) or not math.isfinite(item["threshold"]):
            problem = "threshold: a finite number"
        elif item["check"] in seen:
            problem = f"{item['check']} is listed twice"
        if problem:
            raise ValidationFailed(f"checks[{i}]: {problem}.", fields={"checks": [f"[{i}] {problem}"]})
        seen.add(item["check"])
        out.append({"check": item["check"].strip(), "op": item["op"], "threshold": float(item["threshold"])})
    return out


def gate_policy_set(
    *, model: RegisteredModel | None = None, prompt: Prompt | None = None, checks, enforced: bool = True,
    evidence_from_other_identity: bool | None = None, actor,
) -> GatePolicy:
    """Create or replace the gate policy of a model or a prompt (approvers: it decides what approval needs).

    `evidence_from_other_identity`: evidence produced by a promotion's requester does not count for it; None keeps the
    policy's current setting (off for a new policy), so a caller that does not know the option never turns it off."""
    require_role(actor, APPROVER, "Changing a gate policy")
    checks = clean_checks(checks)
    if evidence_from_other_identity is not None and not isinstance(evidence_from_other_identity, bool):
        raise ValidationFailed("evidence_from_other_identity: true or false.", fields={"evidence_from_other_identity": ["true or false"]})
    subject = {"model": model} if model is not None else {"prompt": prompt}
    with transaction.atomic():
        policy, created = GatePolicy.objects.select_for_update().get_or_create(**subject, defaults={"checks": checks})
        before = [] if created else policy.checks
        before_identity = policy.evidence_from_other_identity
        policy.checks, policy.enforced, policy.updated_at, policy.updated_by = checks, bool(enforced), timezone.now(), actor
        if evidence_from_other_identity is not None:
            policy.evidence_from_other_identity = evidence_from_other_identity
        policy.save()
        audit_record(actor=actor, action=AuditAction.GATE_POLICY_SET, subject=f"{'model' if model else 'prompt'}:{(model or prompt).name}",
                     reason="", extra={"checks": checks, "before": before, "enforced": policy.enforced,
                                       "evidence_from_other_identity": policy.evidence_from_other_identity,
                                       "evidence_from_other_identity_before": before_identity})
    return policy


def gate_policy_delete(*, policy_id: int, actor) -> None:
    """Delete a gate policy (approvers), audited with the checks it held: without a policy a version has no gate."""
    require_role(actor, APPROVER, "Deleting a gate policy")
    with transaction.atomic():
        policy = GatePolicy.objects.select_for_update(of=("self",)).select_related("model", "prompt").filter(pk=policy_id).first()
        if policy is None:
            raise NotFound(f"No gate policy {policy_id}.")
        subject = f"model:{policy.model.name}" if policy.model_id else f"prompt:{policy.prompt.name}"
        before = {"checks": policy.checks, "enforced": policy.enforced}
        policy.delete()
        audit_record(actor=actor, action=AuditAction.GATE_POLICY_DELETED, subject=subject, extra={"before": before})


def gate_policy_default_ensure(*, model: RegisteredModel | None = None, prompt: Prompt | None = None) -> GatePolicy | None:
    """The default policy for a new model or prompt, when MLOPS_GATE_POLICY_FOR_NEW says so (called at creation)."""
    if not settings.MLOPS_GATE_POLICY_FOR_NEW:
        return None
    subject = {"model": model} if model is not None else {"prompt": prompt}
    policy, _ = GatePolicy.objects.get_or_create(**subject, defaults={"checks": DEFAULT_MODEL_CHECKS if model is not None else DEFAULT_PROMPT_CHECKS})
    return policy


def _policy_of(version) -> GatePolicy | None:
    if isinstance(version, ModelVersion):
        return GatePolicy.objects.filter(model_id=version.model_id).first()
    return GatePolicy.objects.filter(prompt_id=version.prompt_id).first()


def _producer(evaluation: Evaluation) -> str:
    return evaluation.requested_by.username if evaluation.requested_by_id else ""


def evidence_refusal(evaluation: Evaluation, *, policy: GatePolicy, requester) -> str:
    """Why an evaluation does not count as evidence for a promotion requested by `requester` ("" when it counts).

    The one wording, on the gate card, in the API and in 409 messages. `requester` None: nobody's promotion yet,
    so the identity rule is not applied (the card says whose promotion it judged)."""
    if evaluation.origin == EvidenceOrigin.TYPED_REPLAY:
        return "a replay of responses typed in with the request never counts for a gate"
    if policy.evidence_from_other_identity and requester is not None:
        if not evaluation.requested_by_id:
            return "its producer is unknown, and the policy needs evidence from someone other than the requester"
        if evaluation.requested_by_id == requester.pk:
            return f"produced by {requester.username}, who requested the promotion; the policy needs evidence from another identity"
    return ""


def finished_evidence(version: ModelVersion | PromptVersion) -> list[Evaluation]:
    """The version's finished evaluations, newest first, with what judging a gate reads of them. One query."""
    field = "model_version" if isinstance(version, ModelVersion) else "prompt_version"
    return list(Evaluation.objects.filter(**{field: version}, status=EvaluationStatus.DONE).order_by("-finished_at", "-id")
                .select_related("requested_by").only("pk", "kind", "finished_at", "source", "metrics", "origin", "requested_by__username"))


def gate_status(
    *, version: ModelVersion | PromptVersion, policy: GatePolicy | None = None, requester=None, evidence: list[Evaluation] | None = None
) -> GateStatus:
    """Each check of the version's policy with its value, threshold, pass/fail and the evaluation it came from, judged
    for a promotion requested by `requester` (a user, or None before anyone asked). Two queries, fewer when the policy
    and the `evidence` (finished_evidence) are given: judging one version for several requesters reads them once."""
    policy = policy if policy is not None else _policy_of(version)
    judged_for = requester.username if requester is not None else ""
    if policy is None:
        return GateStatus(policy=None, checks=(), requester=judged_for)
    done = evidence if evidence is not None else finished_evidence(version)
    outcomes = []
    for item in policy.checks:
        found, passed_over = None, []
        for evaluation in done:
            figure = evaluation.metrics.get(item["check"])
            if isinstance(figure, bool) or not isinstance(figure, (int, float)):
                continue
            refusal = evidence_refusal(evaluation, policy=policy, requester=requester)
            if not refusal:
                found = evaluation
                break
            passed_over.append(PassedOver(evaluation_id=evaluation.pk, value=float(figure), producer=_producer(evaluation),
                                          origin=evaluation.origin, reason=refusal))
        value = float(found.metrics[item["check"]]) if found else None
        status = "not_run" if value is None else ("passed" if OPS[item["op"]](value, float(item["threshold"])) else "failed")
        outcomes.append(CheckOutcome(
            check=item["check"], op=item["op"], threshold=float(item["threshold"]), status=status, value=value,
            evaluation_id=found.pk if found else None, kind=found.kind if found else "", ran_at=found.finished_at if found else None,
            source=found.source if found else "", producer=_producer(found) if found else "", origin=found.origin if found else "",
            passed_over=tuple(passed_over),
        ))
    return GateStatus(policy=policy, checks=tuple(outcomes), requester=judged_for)


# How a failed comparison reads: a check `accuracy >= 0.92` that failed is "accuracy 0.88 < 0.92".
NEGATED = {">=": "<", ">": "<=", "<=": ">", "<": ">="}


def check_problem(outcome: CheckOutcome) -> str:
    """The one wording of a check that did not pass, on pages, in 409 messages and in the audit log."""
    if outcome.status == "not_run" and outcome.passed_over:
        newest = outcome.passed_over[0]
        return f"{outcome.check} has no evidence that counts (#{newest.evaluation_id}: {newest.reason})"
    if outcome.status == "not_run":
        return f"{outcome.check} never ran"
    return f"{outcome.check} {number_text(outcome.value)} {NEGATED[outcome.op]} {outcome.threshold:g}"


def gates_require(
    *, version: ModelVersion | PromptVersion, to_stage: str, actor, requester, subject: str, override_reason: str = ""
) -> GateStatus:
    """Refuse (409 `gates_failed`) a promotion of a version whose gates failed or never ran, judged for the promotion's
    `requester` (at approval too, where `actor` is the approver), unless an admin overrides with a written reason
    (recorded in the audit log). Called inside the promotion's transaction."""
    status = gate_status(version=version, requester=requester)
    if to_stage in UNGATED_STAGES or not status.enforced or status.passed:
        return status
    failed = status.failed
    names = "; ".join(check_problem(c) for c in failed)
    override_reason = (override_reason or "").strip()
    if not override_reason:
        error = Conflict(f"Gates not passed for {subject} v{version.version}: {names}.", code="gates_failed")
        error.extra["failed"] = [{"check": c.check, "status": c.status, "value": c.value, "op": c.op, "threshold": c.threshold,
                                  "problem": check_problem(c)} for c in failed]
        raise error
    if not has_role(actor, ADMIN):
        raise Forbidden("Only an admin can override failed gates.")
    audit_record(actor=actor, action=AuditAction.GATE_OVERRIDDEN, subject=subject, version=version.version, to_stage=to_stage,
                 reason=override_reason, extra={"failed": [check_problem(c) for c in failed]})
    return status
