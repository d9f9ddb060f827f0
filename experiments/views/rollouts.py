"""Pages of canary rollouts: the list (stage, share, health) and one rollout (its stages, its decisions with the numbers
each read, candidate against baseline charts with the policy's thresholds) with a person's Advance, Pause, Resume and
Roll back now.

Figures come from the rollout's stored evaluations (`last_numbers`, each decision's `numbers`: what the controller read
of the stage's window) and from the roll-ups (`rollout_series`); a figure the controller could not compute is None
there and "—" or "not enough data" here.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from mlops_site.formatting import number_text
from mlops_site.pages import call_and_redirect, get_or_404, paginate, querystring
from registry.templatetags.registry_extras import prompt_version_url, version_url

from .. import charts, selectors, services
from ..canary import Action, CheckState, GateName, TriggerAction
from ..models import Rollout, RolloutStatus
from ..selectors import Health

RATES = {"error_rate", "guardrail_rate", "negative_feedback_rate"}
METRIC_TEXT = {
    "error_rate": "error rate",
    "latency_p95": "P95 latency",
    "guardrail_rate": "guardrail rate",
    "negative_feedback_rate": "negative feedback rate",
    "cost_per_request": "cost per request",
}
GATE_TEXT = {
    GateName.NO_ERRORS: "no errors",
    GateName.ERROR_RATE: "error rate",
    GateName.LATENCY_P95: "P95 latency",
    GateName.BUSINESS_METRIC_NOT_WORSE: "business metric not worse",
}
HEALTH_TEXT = {
    Health.NO_DATA: "not evaluated yet",
    Health.TRIGGERED: "a trigger fired",
    Health.FAILING: "gate failing",
    Health.WAITING: "not enough data",
    Health.HEALTHY: "healthy",
}
# The state of one check, as the pages word and colour it.
OK, WARNING, FAILING, NO_DATA = "ok", "warning", "failing", "not enough data"
STATE_CLASS = {OK: "severity-none", WARNING: "severity-moderate", FAILING: "severity-significant", NO_DATA: "severity-no_data"}
HEALTH_CLASS = {Health.HEALTHY: STATE_CLASS[OK], Health.FAILING: STATE_CLASS[WARNING], Health.TRIGGERED: STATE_CLASS[FAILING],
                Health.WAITING: STATE_CLASS[NO_DATA], Health.NO_DATA: STATE_CLASS[NO_DATA]}
STATUS_TEXT = {RolloutStatus.RUNNING: "running", RolloutStatus.PAUSED: "paused", RolloutStatus.ROLLED_BACK: "rolled back",
               RolloutStatus.COMPLETED: "completed"}
ACTION_TEXT = {Action.START: "started", Action.ADVANCE: "advanced", Action.HOLD: "holding", Action.PAUSE: "paused", Action.RESUME: "resumed",
               Action.ROLLBACK: "rolled back", Action.COMPLETE: "completed"}


# --- how figures read --------------------------------------------------------------------------------------------------


def figure_text(metric: str, value) -> str:
    """A figure of `metric` for people: rates in percent, P95 in ms, cost in USD; "—" when there is none."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    if metric in RATES:
        return f"{number_text(value * 100)} %"
    if metric == "latency_p95":
        return f"{number_text(value)} ms"
    if metric == "cost_per_request":
        return f"${number_text(value)}"
    return number_text(value)


def minutes_text(minutes: int | None) -> str:
    if minutes is None:
        return "no maximum"
    if minutes and minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def gate_text(gate: dict | None) -> str:
    """A stage's gate as its rule reads: "error rate < baseline + 0.5 points"."""
    if not gate:
        return "no gate (all metrics healthy: no trigger fires)"
    name, threshold = gate["name"], gate.get("threshold")
    if name == GateName.NO_ERRORS:
        return "no errors (the candidate's errors = 0)"
    if name == GateName.ERROR_RATE:
        return f"error rate < baseline + {number_text(threshold * 100)} points"
    if name == GateName.LATENCY_P95:
        return f"P95 latency < {number_text(threshold)} × baseline"
    return f"business metric not significantly worse (one-sided p ≥ {number_text(threshold)})"


def trigger_rule(trigger: dict) -> str:
    """A policy's trigger as its rule reads: "error rate > 5 % → roll back"."""
    metric = trigger["metric"]
    limit = f"{number_text(trigger['threshold'])} × baseline" if trigger.get("relative") else figure_text(metric, trigger["threshold"])
    return f"{METRIC_TEXT.get(metric, metric)} > {limit} → {'roll back' if trigger['action'] == TriggerAction.ROLLBACK else 'pause'}"


def _check(name: str, state: str, text: str) -> dict:
    return {"name": name, "state": state, "css": STATE_CLASS[state], "text": text}


def _trigger_check(t: dict, min_requests: int | None) -> dict:
    metric = t["metric"]
    name = f"{METRIC_TEXT.get(metric, metric)} ({'roll back' if t['action'] == TriggerAction.ROLLBACK else 'pause'})"
    if t["state"] == CheckState.NOT_ENOUGH_DATA:
        if min_requests is not None and t["requests"] < min_requests:
            return _check(name, NO_DATA, f"{t['requests']} of {min_requests} requests")
        return _check(name, NO_DATA, "the baseline has too few requests")
    relative = f" ({number_text(t['threshold'])} × baseline {figure_text(metric, t.get('baseline'))})" if t.get("relative") else ""
    if t["state"] == CheckState.FIRED:
        state = FAILING if t["action"] == TriggerAction.ROLLBACK else WARNING
        return _check(name, state, f"{figure_text(metric, t['value'])} > {figure_text(metric, t['limit'])}{relative}")
    return _check(name, OK, f"{figure_text(metric, t['value'])} ≤ {figure_text(metric, t['limit'])}{relative}")


def _gate_check(g: dict, min_requests: int | None) -> dict:
    name = f"gate: {GATE_TEXT.get(g['name'], g['name'])}"
    state = {CheckState.PASS: OK, CheckState.FAIL: WARNING}.get(g["state"], NO_DATA)
    counted = "units" if g["name"] == GateName.BUSINESS_METRIC_NOT_WORSE else "requests"
    if state == NO_DATA:
        needed = f" of {min_requests}" if min_requests is not None else ""
        return _check(name, NO_DATA, f"{g.get('requests', 0)}{needed} {counted} on the smaller side")
    if g["name"] == GateName.NO_ERRORS:
        return _check(name, state, f"{number_text(g['value'])} errors in {g['requests']} requests (must be 0)")
    if g["name"] == GateName.BUSINESS_METRIC_NOT_WORSE:
        sign = "≥" if state == OK else "<"
        return _check(name, state, f"conversion {figure_text('error_rate', g.get('value'))} against {figure_text('error_rate', g.get('baseline'))}: "
                                   f"p = {number_text(g.get('p_value'))} {sign} {number_text(g.get('limit'))}")
    metric = "error_rate" if g["name"] == GateName.ERROR_RATE else "latency_p95"
    sign = "<" if state == OK else "≥"
    how = (f"baseline {figure_text(metric, g.get('baseline'))} + {number_text(g['threshold'] * 100)} points" if metric == "error_rate"
           else f"{number_text(g['threshold'])} × baseline {figure_text(metric, g.get('baseline'))}")
    return _check(name, state, f"{figure_text(metric, g['value'])} {sign} {figure_text(metric, g['limit'])} ({how})")


def checks(numbers: dict | None) -> list[dict]:
    """Each check of one evaluation (the stage's gate, then every trigger), its figure against its threshold, and its state:
    ok, warning (a pause trigger fired, or the gate does not pass: the rollout holds), failing (a rollback trigger fired) or
    not enough data. Nothing before the first evaluation."""
    numbers = numbers or {}
    out = []
    gate = numbers.get("gate")
    if gate and gate.get("name"):
        out.append(_gate_check(gate, numbers.get("gate_min_requests")))
    for trigger in numbers.get("triggers", []):
        out.append(_trigger_check(trigger, numbers.get("trigger_min_requests")))
    return out


def sides(numbers: dict | None) -> list[dict]:
    """The candidate's and the baseline's figures over the evaluated window, one row per metric."""
    numbers = numbers or {}
    candidate, baseline = numbers.get("candidate"), numbers.get("baseline") or {}
    if not candidate:
        return []
    rows = [{"name": "requests", "candidate": str(candidate.get("requests", 0)), "baseline": str(baseline.get("requests", 0)) if baseline else "—"}]
    for metric in selectors.ROLLOUT_METRICS:
        rows.append({"name": METRIC_TEXT[metric], "candidate": figure_text(metric, candidate.get(metric)), "baseline": figure_text(metric, baseline.get(metric))})
    return rows


def _version_url(rollout: Rollout, version) -> str:
    if version is None:
        return ""
    if rollout.model_id:
        return version_url(rollout.model.name, version.version)
    return prompt_version_url(rollout.prompt.name, version.version)


def _health(rollout: Rollout) -> dict:
    health = selectors.rollout_health(rollout)
    return {"value": health.value, "text": HEALTH_TEXT[health], "css": HEALTH_CLASS[health]}


def _share(value) -> str:
    return f"{float(value):g} %"


# --- the list ----------------------------------------------------------------------------------------------------------------


def rollout_list(request: HttpRequest) -> HttpResponse:
    """Rollouts, newest first: subject, candidate against baseline, stage, share, health (each check against its threshold)
    and status; `?status=`, `?promotion=` (the rollout of one promotion request, as the version pages link it)."""
    status = request.GET.get("status", "")
    status = status if status in RolloutStatus.values else ""
    promotion = request.GET.get("promotion", "")
    promotion = int(promotion) if promotion.isascii() and promotion.isdigit() and len(promotion) < 10 else None
    page = paginate(request, selectors.rollout_list(status=status or None, promotion_id=promotion))
    rows = []
    for rollout in page:
        stages = rollout.policy.stages
        rows.append({
            "rollout": rollout,
            "candidate_url": _version_url(rollout, rollout.candidate),
            "baseline_url": _version_url(rollout, rollout.baseline),
            "stage": stages[rollout.stage_index]["name"],
            "stage_number": rollout.stage_index + 1,
            "stage_count": len(stages),
            "share": _share(rollout.traffic_percent),
            "health": _health(rollout),
            "checks": checks(rollout.last_numbers),
            "status": STATUS_TEXT[rollout.status],
        })
    context = {
        "page": page, "rows": rows, "status": status, "status_text": STATUS_TEXT.get(status, ""), "statuses": list(STATUS_TEXT.items()),
        "promotion": promotion, "qs": querystring(request),
    }
    return render(request, "experiments/rollout_list.html", context)


# --- one rollout -------------------------------------------------------------------------------------------------------------


def stage_timeline(rollout: Rollout, decisions: list) -> list[dict]:
    """The policy's stages in order, each `done`, `current`, `next`, `planned`, `stopped` (where a rollback ended it) or
    `skipped` (never reached), with its share, durations, gate and when the rollout entered it."""
    entered: dict[int, object] = {}
    for d in decisions:
        if d.action in (Action.START, Action.ADVANCE) and d.to_stage is not None:
            entered.setdefault(d.to_stage, d.at)
    out = []
    for i, stage in enumerate(rollout.policy.stages):
        if rollout.status == RolloutStatus.COMPLETED or i < rollout.stage_index:
            state = "done"
        elif i == rollout.stage_index:
            state = "stopped" if rollout.status == RolloutStatus.ROLLED_BACK else "current"
        elif rollout.status == RolloutStatus.ROLLED_BACK:
            state = "skipped"
        else:
            state = "next" if i == rollout.stage_index + 1 else "planned"
        out.append({
            "index": i, "name": stage["name"], "share": _share(stage["traffic_percent"]), "state": state,
            "min": minutes_text(stage["min_minutes"]), "max": minutes_text(stage.get("max_minutes")), "gate": gate_text(stage.get("gate")),
            "manual": stage.get("manual", False), "entered": entered.get(i),
        })
    return out


def decision_rows(decisions: list) -> list[dict]:
    """Each decision, newest first: when, who (a person, or the controller), what, why, and the numbers it read."""
    return [{
        "decision": d, "actor": d.actor.username if d.actor_id else "system", "action": ACTION_TEXT.get(d.action, d.action),
        "share": _share(d.traffic_percent), "checks": checks(d.numbers), "sides": sides(d.numbers),
        "stage": d.numbers.get("stage") if d.numbers else None,
    } for d in reversed(decisions)]


# Which buttons a rollout's status offers, in order: (action, label, css class).
BUTTONS = {
    RolloutStatus.RUNNING: (("advance", "Advance", "primary"), ("pause", "Pause", ""), ("rollback", "Roll back now", "reject")),
    RolloutStatus.PAUSED: (("resume", "Resume", "primary"), ("advance", "Advance", ""), ("rollback", "Roll back now", "reject")),
}


def rollout_detail(request: HttpRequest, rollout_id: int) -> HttpResponse:
    """Header, the stages and the decisions, the latest evaluation, the charts and the buttons."""
    rollout = get_or_404(selectors.rollout_get, rollout_id=rollout_id)
    decisions = list(rollout.decisions.all())
    series = selectors.rollout_series(rollout=rollout)
    stages = rollout.policy.stages
    candidate = f"v{rollout.candidate.version} (candidate)"
    baseline = f"v{rollout.baseline.version} (baseline)" if rollout.baseline else "baseline (none)"
    figures, unreported = [], []
    for metric in selectors.ROLLOUT_METRICS:
        if not charts.rollout_has_points(series, metric):
            unreported.append(METRIC_TEXT[metric])
            continue
        figure = charts.rollout_metric(metric=metric, series=series, stages=stages, triggers=rollout.policy.triggers, candidate=candidate,
                                       baseline=baseline)
        key = metric.replace("_", "-")
        figures.append({"id": key, "json_id": f"figure-{key}", "figure": figure})
    numbers = rollout.last_numbers or {}
    promotion_url = f"{_version_url(rollout, rollout.candidate)}#promotion-{rollout.promotion_id}"
    end = rollout.finished_at or timezone.now()
    context = {
        "rollout": rollout,
        "candidate_url": _version_url(rollout, rollout.candidate),
        "baseline_url": _version_url(rollout, rollout.baseline),
        "promotion_url": promotion_url,
        "stage": stages[rollout.stage_index]["name"],
        "stage_number": rollout.stage_index + 1,
        "stage_count": len(stages),
        "share": _share(rollout.traffic_percent),
        "health": _health(rollout),
        "in_stage_minutes": round((end - rollout.stage_started_at).total_seconds() / 60) if rollout.active else None,
        "timeline": stage_timeline(rollout, decisions),
        "decisions": decision_rows(decisions),
        "latest_checks": checks(numbers),
        "latest_sides": sides(numbers),
        "latest_since": parse_datetime((numbers.get("window") or {}).get("start") or ""),
        "triggers": [trigger_rule(t) for t in rollout.policy.triggers],
        "figures": figures,
        "unreported": unreported,
        "buttons": [{"action": action, "text": text, "css": css, "url": reverse(f"experiments:rollout-{action}", args=[rollout.pk])}
                    for action, text, css in BUTTONS.get(rollout.status, ())],
        "status_text": STATUS_TEXT[rollout.status],
    }
    return render(request, "experiments/rollout_detail.html", context)


# --- buttons (POST) ----------------------------------------------------------------------------------------------------------


def _back(rollout_id: int) -> str:
    return reverse("experiments:rollout-detail", args=[rollout_id])


def _decide(request: HttpRequest, rollout_id: int, service: Callable[..., Rollout], success: Callable[[Rollout], str]) -> HttpResponse:
    rollout = get_or_404(selectors.rollout_get, rollout_id=rollout_id)
    return call_and_redirect(
        request, lambda: service(rollout_id=rollout.pk, reason=request.POST.get("reason", ""), actor=request.user),
        success=success, fallback=_back(rollout.pk), then=lambda _: _back(rollout.pk),
    )


def _stage_of(rollout: Rollout) -> str:
    return f"{rollout.policy.stages[rollout.stage_index]['name']} ({_share(rollout.traffic_percent)})"


def _advanced(rollout: Rollout) -> str:
    if rollout.status == RolloutStatus.COMPLETED:
        return f"Advanced past the last stage: the rollout is complete and v{rollout.candidate.version} takes over."
    return f"Advanced to {_stage_of(rollout)}."


@require_POST
def rollout_advance(request: HttpRequest, rollout_id: int) -> HttpResponse:
    return _decide(request, rollout_id, services.rollout_advance, _advanced)


@require_POST
def rollout_pause(request: HttpRequest, rollout_id: int) -> HttpResponse:
    return _decide(request, rollout_id, services.rollout_pause,
                   lambda r: f"Paused at {_stage_of(r)}: the candidate keeps its share; its rollback triggers still act.")


@require_POST
def rollout_resume(request: HttpRequest, rollout_id: int) -> HttpResponse:
    return _decide(request, rollout_id, services.rollout_resume, lambda r: f"Resumed: stage {_stage_of(r)} starts over.")


@require_POST
def rollout_rollback(request: HttpRequest, rollout_id: int) -> HttpResponse:
    def success(r: Rollout) -> str:
        back = f"v{r.baseline.version}" if r.baseline else "the baseline"
        return f"Rolled back: all traffic is back on {back}; the promotion request is closed as rolled back."

    return _decide(request, rollout_id, services.rollout_rollback, success)
