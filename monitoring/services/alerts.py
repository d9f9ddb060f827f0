"""Alert rules: evaluate after each drift report, change state, notify once per change; a rule's action.

The default rules, created for a model when its first reference
is set: feature drift PSI > 0.25 (warning above 0.1), prediction drift PSI > 0.2,
any schema violation, a share of nulls above the reference's.

A rule whose `action` is rollback_production (approvers set it; off by default) rolls its model's production
(its prompt's prod) back through the registry when it enters the alert state, as the system, once per change
of state (rule_update, the one place states change).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from mlops_site.exceptions import Conflict, DomainError, NotFound, ValidationFailed
from mlops_site.formatting import number_text
from mlops_site.queue import enqueue_on_commit
from mlops_site.roles import ADMIN, APPROVER, EDITOR, require_role
from registry.models import AuditAction, Environment, Stage
from registry.services import audit_record, model_rollback, prompt_rollback

from ..drift import Severity
from ..models import ActionStatus, AlertAction, AlertEvent, AlertMetric, AlertRule, AlertState, Comparison, DriftReport
from .notifications import notification_send, signing_secret

DEFAULT_RULES = [
    ("Feature drift", AlertMetric.FEATURE_PSI, Comparison.GT, 0.25, 0.1),
    ("Prediction drift", AlertMetric.PREDICTION_PSI, Comparison.GT, 0.2, None),
    ("Schema violation", AlertMetric.SCHEMA_VIOLATIONS, Comparison.GT, 0, None),
    ("More missing values", AlertMetric.NULL_SHARE_INCREASE, Comparison.GT, 0, None),
    ("Label drift", AlertMetric.LABEL_PSI, Comparison.GT, 0.2, 0.1),
]
DRIFT_METRICS = [
    AlertMetric.FEATURE_PSI, AlertMetric.PREDICTION_PSI, AlertMetric.SCHEMA_VIOLATIONS, AlertMetric.DRIFTED_FEATURES,
    AlertMetric.NULL_SHARE_INCREASE, AlertMetric.LABEL_PSI,
]
COMPARE = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}
# An editor may silence a rule for up to this long in all; longer needs an approver. "In all": a silence
# renewed before it ends continues it, so seven-day silences one after another count as one long one.
EDITOR_SILENCE = timedelta(days=7)
MAX_SILENCE_HOURS = 24 * 90


def default_rules_ensure(*, model) -> list[AlertRule]:
    """The default drift rules for `model`, created once (existing rules are left as they are)."""
    rules = []
    for name, metric, comparison, threshold, warning in DEFAULT_RULES:
        rule, _ = AlertRule.objects.get_or_create(
            model=model, metric=metric, name=name,
            defaults={"comparison": comparison, "threshold": threshold, "warning_threshold": warning,
                      "webhook_url": settings.MLOPS_ALERT_WEBHOOK_URL, "webhook_secret": settings.MLOPS_ALERT_WEBHOOK_SECRET,
                      "emails": settings.MLOPS_ALERT_EMAILS},
        )
        rules.append(rule)
    return rules


def metric_value(metric: str, results: list[dict], schema_check: dict | None = None) -> float | None:
    """The value of a rule's metric in one report's per-column results (None: not measurable in this report)."""
    features = [r for r in results if r["column"] not in ("prediction", "label")]
    if metric == AlertMetric.FEATURE_PSI:
        values = [r["psi"] for r in features if r.get("psi") is not None]
        return max(values) if values else None
    if metric == AlertMetric.PREDICTION_PSI:
        found = next((r for r in results if r["column"] == "prediction" and r.get("psi") is not None), None)
        return found["psi"] if found else None
    if metric == AlertMetric.SCHEMA_VIOLATIONS:
        against_reference = sum(1 for r in features if r.get("invalid_current") or r["reason"] in ("new column, not in the reference", "column missing from the current data"))
        return float(against_reference + len((schema_check or {}).get("violations", [])))
    if metric == AlertMetric.DRIFTED_FEATURES:
        return float(sum(1 for r in features if r.get("drifted")))
    if metric == AlertMetric.NULL_SHARE_INCREASE:
        increases = [r["missing_current"] - r["missing_reference"] for r in features if r["severity"] != Severity.NO_DATA]
        return max(increases) if increases else None
    if metric == AlertMetric.LABEL_PSI:
        found = next((r for r in results if r["column"] == "label" and r.get("psi") is not None), None)
        return found["psi"] if found else None
    raise ValidationFailed(f"Unknown metric {metric!r}.")


def state_for(rule: AlertRule, value: float | None) -> str:
    if value is None:
        return rule.state  # nothing measured: keep the state, do not flap
    breached = COMPARE[rule.comparison]
    if breached(float(value), float(rule.threshold)):
        return AlertState.ALERT
    if rule.warning_threshold is not None and breached(float(value), float(rule.warning_threshold)):
        return AlertState.WARNING
    return AlertState.OK


def alerts_evaluate(*, report: DriftReport) -> list[AlertEvent]:
    """Evaluate the model's enabled drift rules on a finished report; one AlertEvent per state change, notified after commit."""
    changes = []
    with transaction.atomic():
        rules = AlertRule.objects.select_for_update().filter(model_id=report.model_version.model_id, enabled=True, metric__in=DRIFT_METRICS)
        for rule in rules:
            value = metric_value(rule.metric, report.results, report.schema_check)
            event = rule_update(rule, value, message=lambda state, rule=rule, value=value: _message(rule, state, value, report), report=report)
            if event is not None:
                changes.append(event)
    return changes


def rule_update(rule: AlertRule, value: float | None, *, message, report: DriftReport | None = None) -> AlertEvent | None:
    """Record a rule's new value; on a change of state, an AlertEvent (notified after the commit unless
    silenced). The caller holds the rule's row lock. `message(state)` writes the notification text."""
    new_state = state_for(rule, value)
    rule.last_value = value
    if new_state == rule.state:
        rule.save(update_fields=["last_value"])
        return None
    now = timezone.now()
    silenced = bool(rule.silenced_until and rule.silenced_until > now)
    event = AlertEvent.objects.create(
        rule=rule, from_state=rule.state, to_state=new_state, value=value, report=report, silenced=silenced, message=message(new_state)
    )
    rule.state, rule.state_since, rule.acknowledged_by, rule.acknowledged_at = new_state, now, None, None
    rule.save(update_fields=["state", "state_since", "last_value", "acknowledged_by", "acknowledged_at"])
    if new_state == AlertState.ALERT and rule.action == AlertAction.ROLLBACK_PRODUCTION:
        # In this transaction, not a task queued after the commit: the change of state and the rollback it causes
        # commit together or not at all, so the action happens once per change of state by construction (a crash
        # in between leaves neither, and the next evaluation enters the alert state again), and no broker outage can
        # lose it. The rollback is one locked model (prompt) row and a few writes, small beside an evaluation.
        # Silencing a rule stops its notifications, not its action.
        _act(rule, event, value)
    if not silenced:
        enqueue_on_commit("monitoring.tasks.alert_notify", event.pk)
    return event


def _act(rule: AlertRule, event: AlertEvent, value: float | None) -> None:
    """Roll the rule's model's production (prompt's prod) back as the system, and record on the event what became of
    it. A refusal (nothing earlier to roll back to, an empty stage, a canary rolling out into the stage) is undone by
    the registry's own savepoint and recorded, never raised into the evaluation."""
    kind, name, stage = ("model", rule.model.name, Stage.PRODUCTION) if rule.model_id else ("prompt", rule.prompt.name, Environment.PROD)
    reason = (f"Alert rule {rule.name!r} (#{rule.pk}) entered the alert state: {AlertMetric(rule.metric).label} = {number_text(value)} "
              f"{rule.comparison} {number_text(rule.threshold)}; its action rolls {kind} {name}'s {stage} back.")
    extra = {"alert_rule_id": rule.pk, "alert_event_id": event.pk, "metric": rule.metric, "value": value, "threshold": rule.threshold}
    try:
        if kind == "model":
            target = model_rollback(model_name=name, stage=stage, reason=reason, actor=None, extra=extra)
        else:
            target = prompt_rollback(prompt_name=name, environment=stage, reason=reason, actor=None, extra=extra)
    except DomainError as exc:
        event.action_status, event.action_detail = ActionStatus.REFUSED, f"Rollback of {stage} refused ({exc.code}): {exc.message}"
    else:
        event.action_status, event.action_detail = ActionStatus.DONE, f"{stage} of {kind} {name} rolled back to v{target.version}."
    event.message = f"{event.message} Action: {event.action_detail}"
    event.save(update_fields=["action_status", "action_detail", "message"])


def _message(rule: AlertRule, state: str, value, report: DriftReport) -> str:
    version = report.model_version
    shown = "n/a" if value is None else f"{value:.3g}"
    return (
        f"[{state.upper()}] {rule.name} on {version.model.name} v{version.version}: {AlertMetric(rule.metric).label} = {shown} "
        f"({rule.comparison} {rule.threshold} alerts{f', {rule.comparison} {rule.warning_threshold} warns' if rule.warning_threshold is not None else ''}); "
        f"window {report.window_start:%Y-%m-%d %H:%M} to {report.window_end:%H:%M} UTC."
    )


def subject_of(rule: AlertRule) -> dict:
    return {"model": rule.model.name} if rule.model_id else {"prompt": rule.prompt.name}


def alert_notify(*, event_id: int) -> AlertEvent:
    """Try to send one state change to the rule's webhook (Slack-compatible JSON, signed) and e-mail: each
    channel until it goes through, retried with backoff (services/notifications.py: notification_send)."""
    event = AlertEvent.objects.select_related("rule", "rule__model", "rule__prompt").get(pk=event_id)
    rule = event.rule
    return notification_send(
        event, webhook_url=rule.webhook_url, webhook_secret=signing_secret(webhook_url=rule.webhook_url, own_secret=rule.webhook_secret),
        emails=rule.emails, message=event.message,
        payload={"rule": rule.name, **subject_of(rule), "state": event.to_state, "previous_state": event.from_state,
                 "value": event.value, "at": event.at.isoformat()},
    )


def alert_acknowledge(*, rule_id: int, actor) -> AlertRule:
    """Say that someone is on it (editors); audited with the rule's state and value."""
    require_role(actor, EDITOR, "Acknowledging an alert")
    with transaction.atomic():
        rule = _lock(rule_id)
        if rule.state == AlertState.OK:
            raise Conflict("Nothing to acknowledge: the rule is ok.", code="not_alerting")
        rule.acknowledged_by, rule.acknowledged_at = actor, timezone.now()
        rule.save(update_fields=["acknowledged_by", "acknowledged_at"])
        _audit(rule, actor, AuditAction.ALERT_ACKNOWLEDGED, extra={"state": rule.state, "value": rule.last_value})
    return rule


def alert_silence(*, rule_id: int, hours: int, actor) -> AlertRule:
    """No notifications for `hours` (state changes are still recorded); 0 ends a silence.

    An editor may silence for at most EDITOR_SILENCE in all: a silence set while another runs continues
    it (`silenced_since` stays), and the whole, from when it began to the new end, is what the rule
    weighs, so renewing a seven-day silence every few days needs an approver as one long silence does."""
    require_role(actor, EDITOR, "Silencing an alert")
    if isinstance(hours, bool) or not isinstance(hours, int) or not 0 <= hours <= MAX_SILENCE_HOURS:
        raise ValidationFailed(f"Silence for 0 to {MAX_SILENCE_HOURS} hours.", fields={"hours": [f"From 0 to {MAX_SILENCE_HOURS}."]})
    with transaction.atomic():
        rule = _lock(rule_id)
        now = timezone.now()
        running = rule.silenced_until is not None and rule.silenced_until > now
        since = (rule.silenced_since or now) if running else now
        until = now + timedelta(hours=hours) if hours else None
        if until is not None and until - since > EDITOR_SILENCE:
            require_role(actor, APPROVER, f"Silencing an alert for more than {EDITOR_SILENCE.days} days in all (with the silence running now)")
        before = rule.silenced_until
        rule.silenced_until, rule.silenced_since = until, (since if until else None)
        rule.save(update_fields=["silenced_until", "silenced_since"])
        _audit(rule, actor, AuditAction.ALERT_SILENCED, reason=f"{hours} h" if hours else "silence ended", extra={
            "before": {"silenced_until": before.isoformat() if running else None},
            "after": {"silenced_until": until.isoformat() if until else None, "silenced_since": since.isoformat() if until else None},
        })
    return rule


def alert_action_set(*, rule_id: int, action: str, actor) -> AlertRule:
    """Set what a rule does when it enters the alert state (approvers): `none`, or `rollback_production` (its
    model's production, its prompt's prod, rolled back by the system). Takes effect at the next change of state: a
    rule already in alert does not act now."""
    require_role(actor, APPROVER, "Setting an alert rule's action")
    if action not in AlertAction.values:
        raise ValidationFailed(f"action: one of {', '.join(AlertAction.values)}.", fields={"action": [f"Not one of them: {action!r}."]})
    with transaction.atomic():
        rule = _lock(rule_id)
        before = rule.action
        rule.action, rule.action_set_by, rule.action_set_at = action, actor, timezone.now()
        rule.save(update_fields=["action", "action_set_by", "action_set_at"])
        _audit(rule, actor, AuditAction.ALERT_ACTION_SET, extra={"before": {"action": before}, "after": {"action": action}})
    return rule


# What the admin may change of a rule (the only place rules are edited): its state, silence,
# acknowledgement and action go through the services above.
RULE_FIELDS = [
    "name", "model", "prompt", "metric", "window_minutes", "parameter", "comparison", "threshold", "warning_threshold", "enabled",
    "webhook_url", "webhook_secret", "emails",
]


def alert_rule_fields(rule: AlertRule) -> dict:
    """A rule's editable fields as the audit log keeps them (a secret only as "set" or "")."""
    out = {}
    for name in RULE_FIELDS:
        value = getattr(rule, f"{name}_id" if name in ("model", "prompt") else name)
        out[name] = ("set" if value else "") if name == "webhook_secret" else value
    return out


def alert_rule_save(*, rule: AlertRule, before: dict | None, secret_before: str = "", actor) -> AlertRule:
    """Save a rule the admin created or changed (admins), audited with the fields before (alert_rule_fields of the
    stored rule; None: a new rule) and after; `secret_before` the stored webhook secret, to say "changed"."""
    require_role(actor, ADMIN, "Changing an alert rule")
    with transaction.atomic():
        rule.save()
        after = alert_rule_fields(rule)
        if secret_before and rule.webhook_secret and rule.webhook_secret != secret_before:
            after["webhook_secret"] = "changed"
        if before != after:
            _audit(rule, actor, AuditAction.ALERT_RULE_CHANGED, reason="created" if before is None else "changed",
                   extra={"before": before, "after": after})
    return rule


def alert_rule_delete(*, rule_id: int, actor) -> None:
    """Delete a rule (admins), audited with what it was. A rule with state changes keeps them: it is refused (409)."""
    require_role(actor, ADMIN, "Deleting an alert rule")
    with transaction.atomic():
        rule = _lock(rule_id)
        if AlertEvent.objects.filter(rule=rule).exists():
            raise Conflict(f"Rule {rule.name!r} has a history of state changes; disable it instead.", code="rule_has_history")
        before = alert_rule_fields(rule)
        _audit(rule, actor, AuditAction.ALERT_RULE_DELETED, extra={"before": before})
        rule.delete()


def _audit(rule: AlertRule, actor, action: str, *, reason: str = "", extra: dict) -> None:
    subject = f"model:{rule.model.name}" if rule.model_id else f"prompt:{rule.prompt.name}"
    audit_record(actor=actor, action=action, subject=subject, reason=reason or f"rule {rule.name!r}",
                 extra={"rule_id": rule.pk, "rule": rule.name, **extra})


def _lock(rule_id: int) -> AlertRule:
    try:
        return AlertRule.objects.select_for_update(of=("self",)).select_related("model", "prompt").get(pk=rule_id)
    except AlertRule.DoesNotExist:
        raise NotFound(f"No alert rule {rule_id}.") from None
