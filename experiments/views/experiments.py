"""Pages of experiments: the list, one experiment (checklist, results, charts, decision) and its buttons.

Figures come from the newest finished analysis's snapshot (experiments/services/results.py); a figure
the snapshot could not compute is None there and "—" or a "not enough data" state here, never NaN.
"""

from __future__ import annotations

import math

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from mlops_site.formatting import number_text
from mlops_site.pages import call_and_redirect, get_or_404, paginate, querystring
from registry import selectors as registry_selectors
from registry.templatetags.registry_extras import prompt_version_url, target_url, version_url

from .. import charts, selectors, services
from ..models import Decision, Direction, ExperimentStatus, GuardrailMetric, GuardrailState, MetricKind, Recommendation

RECOMMENDATION_TEXT = {
    Recommendation.PROMOTE: "promote",
    Recommendation.KEEP_RUNNING: "keep running",
    Recommendation.ITERATE: "iterate",
    Recommendation.DISCARD: "discard",
    Recommendation.INVESTIGATE: "investigate (sample ratio mismatch)",
}
TEST_TEXT = {"always_valid": "always-valid interval", "fixed_horizon": "fixed-horizon test"}
DECISION_CHOICES = ("promote", "iterate", "discard")


# --- how figures read -----------------------------------------------------------------------------------------------------


def _finite(value) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value) -> str:
    return number_text(_finite(value))


def _signed(value, unit: str = "") -> str:
    value = _finite(value)
    if value is None:
        return "—"
    return ("+" if value > 0 else "") + number_text(value) + unit


def _percent(value) -> str:
    value = _finite(value)
    return "—" if value is None else f"{number_text(value * 100)} %"


def _diff(value, kind: str) -> str:
    """A difference B - A: points of a rate (0.02 -> +2 points), or the metric's units."""
    value = _finite(value)
    if value is None:
        return "—"
    return _signed(value * 100, " points") if kind == MetricKind.PROPORTION else _signed(value)


def _interval(low, high, kind: str) -> str:
    low, high = _finite(low), _finite(high)
    if low is None or high is None:
        return "—"
    if kind == MetricKind.PROPORTION:
        return f"[{_signed(low * 100)}, {_signed(high * 100)}] points"
    return f"[{_signed(low)}, {_signed(high)}]"


def _value(value, kind: str) -> str:
    return _percent(value) if kind == MetricKind.PROPORTION else _text(value)


# --- the list -------------------------------------------------------------------------------------------------------------


def experiment_list(request: HttpRequest) -> HttpResponse:
    """Experiments, newest first: status, subject, days running, progress to the planned sample, leading variant."""
    status = request.GET.get("status", "")
    status = status if status in ExperimentStatus.values else ""
    search = request.GET.get("q", "").strip()
    page = paginate(request, selectors.experiment_search(search=search, status=status or None))
    rows = []
    for experiment in page:
        units = [getattr(v, "units", 0) for v in experiment.variants.all()]
        days = experiment.days_running()
        rows.append({
            "experiment": experiment,
            "days": f"{days:.1f}" if days is not None else "—",
            "progress": round(selectors.progress(experiment) * 100),
            "smallest_arm_text": f"{min(units) if units else 0:,}",
            "planned_text": f"{experiment.sample_size_per_arm:,}",
            "recommendation": RECOMMENDATION_TEXT.get(experiment.recommendation, ""),
        })
    context = {"page": page, "rows": rows, "status": status, "statuses": ExperimentStatus.values, "search": search, "qs": querystring(request)}
    return render(request, "experiments/experiment_list.html", context)


# --- one experiment -------------------------------------------------------------------------------------------------------


def _comparison_row(c: dict, kind: str) -> dict:
    figures = c.get("cuped") or {}
    always_valid = c.get("always_valid") or {}
    row = {
        "variant": c["variant"], "control": c["control"], "ok": c.get("state") == "ok", "message": c.get("message") or "not enough data",
        "diff": _diff(c.get("diff"), kind), "lift": _signed(_finite(c.get("lift")) * 100, " %") if _finite(c.get("lift")) is not None else "—",
        "ci": _interval(c.get("ci_low"), c.get("ci_high"), kind),
        "statistic": f"{c.get('statistic_name') or 'statistic'} = {_text(c.get('statistic'))}" + (f" (df {_text(c.get('df'))})" if c.get("df") else ""),
        "p": _text(c.get("p_value")), "significant": bool(c.get("significant")),
        "always_valid": _interval(always_valid.get("ci_low"), always_valid.get("ci_high"), kind),
        "always_valid_p": _text(always_valid.get("p_value")), "always_valid_significant": bool(always_valid.get("significant")),
        "decision_test": TEST_TEXT.get(c.get("decision_test"), ""), "decisive": bool(c.get("decisive")), "better": c.get("better"),
        "cuped": None,
    }
    if figures:
        av = figures.get("always_valid") or {}
        row["cuped"] = {
            "diff": _diff(figures.get("diff"), kind), "ci": _interval(figures.get("ci_low"), figures.get("ci_high"), kind),
            "p": _text(figures.get("p_value")), "always_valid": _interval(av.get("ci_low"), av.get("ci_high"), kind),
            "variance_reduction": _percent(figures.get("variance_reduction")),
        }
    return row


def _metric_view(metric: dict) -> dict:
    kind = metric["kind"]
    return {
        "name": metric["name"], "kind": kind, "primary": metric.get("primary", False), "source": metric.get("source", ""),
        "direction": "higher is better" if metric.get("direction") == Direction.INCREASE else "lower is better",
        "arms": [{"variant": a["variant"], "units": a["units"], "value": _value(a.get("value"), kind), "conversions": a.get("conversions"),
                  "std": _text(a.get("std"))} for a in metric.get("arms", [])],
        "comparisons": [_comparison_row(c, kind) for c in metric.get("comparisons", [])],
        "cuped_note": metric.get("cuped_note", ""),
    }


def _guardrail_value(metric: str, value) -> str:
    if metric in (GuardrailMetric.ERROR_RATE, GuardrailMetric.GUARDRAIL_RATE):
        return _percent(value)
    if metric == GuardrailMetric.LATENCY_P95:
        return "—" if _finite(value) is None else f"{_text(value)} ms"
    return "—" if _finite(value) is None else f"${_text(value)}"


GUARDRAIL_STATUS = {GuardrailState.OK: "within", GuardrailState.WARNING: "warning", GuardrailState.VIOLATED: "violated",
                    GuardrailState.NOT_ENOUGH_DATA: "not enough data"}


def _guardrail_status(check: dict) -> str:
    # Snapshots from before the significance test have state "ok" with violated true.
    if check.get("violated"):
        return GUARDRAIL_STATUS[GuardrailState.VIOLATED]
    return GUARDRAIL_STATUS.get(check.get("state"), GUARDRAIL_STATUS[GuardrailState.NOT_ENOUGH_DATA])


def _guardrail_view(g: dict) -> dict:
    allowed = _finite(g.get("max_degradation")) or 0.0
    if g.get("relative"):
        limit = f"+{number_text(allowed * 100)} % of the control's"
    elif g["metric"] in (GuardrailMetric.ERROR_RATE, GuardrailMetric.GUARDRAIL_RATE):
        limit = f"+{number_text(allowed * 100)} point{'' if allowed == 0.01 else 's'}"
    else:
        limit = f"+{number_text(allowed)}"
    return {
        "metric": g["metric"], "limit": limit,
        "arms": [{"variant": a["variant"], "requests": a["requests"], "value": _guardrail_value(g["metric"], a.get("value"))} for a in g.get("arms", [])],
        "checks": [{**c, "status": _guardrail_status(c)} for c in g.get("checks", [])],
    }


def _item(name: str, state: str, reason: str) -> dict:
    return {"name": name, "state": state, "reason": reason}


def checklist(experiment, results: dict | None, smallest_arm: int) -> list[dict]:
    """The A/B checklist (hypothesis, metrics, sample size, randomisation, duration, significance, decision), each step `done`, `active` (under way), `todo` or `failed`, with why."""
    planned = experiment.sample_size_per_arm
    started = experiment.status != ExperimentStatus.DRAFT
    secondary, guardrails = len(experiment.secondary_metrics), len(experiment.guardrails)
    baseline = (f"baseline rate {number_text(experiment.baseline_rate)}" if experiment.primary_metric_kind == MetricKind.PROPORTION
                else f"standard deviation {number_text(experiment.baseline_std)}")
    items = [
        _item("Hypothesis", "done", f"“{experiment.hypothesis}”"),
        _item("Metrics", "done", f"primary {experiment.primary_metric_name} ({experiment.primary_metric_kind}); "
                                 f"{secondary} secondary; {guardrails} guardrail{'s' if guardrails != 1 else ''}"),
        _item("Sample size", "done", f"{planned:,} units per arm (alpha {number_text(experiment.alpha)}, power {number_text(experiment.power)}, "
                                     f"MDE {number_text(experiment.mde)}, {baseline})"),
    ]
    srm = (results or {}).get("srm") or {}
    if not started:
        items.append(_item("Randomisation", "todo", "units are bucketed by a hash of the key and the unit id once the test starts"))
    elif not results:
        items.append(_item("Randomisation", "active", "the sample ratio check runs with the first analysis"))
    elif srm.get("flagged"):
        items.append(_item("Randomisation", "failed", f"sample ratio mismatch (p = {_text(srm.get('p_value'))} < {_text(srm.get('threshold'))})"))
    else:
        items.append(_item("Randomisation", "done", f"SRM check passes (p = {_text(srm.get('p_value'))})"))
    days = experiment.days_running()
    reached = f"{smallest_arm:,} of {planned:,} units per arm"
    if not started:
        items.append(_item("Duration", "todo", f"not started; runs until {planned:,} units per arm"))
    elif smallest_arm >= planned:
        items.append(_item("Duration", "done", f"planned sample reached ({reached}) after {days:.1f} days"))
    elif experiment.status == ExperimentStatus.RUNNING:
        items.append(_item("Duration", "active", f"day {days:.1f}: {reached} ({smallest_arm / planned:.0%})"))
    else:
        items.append(_item("Duration", "failed", f"stopped after {days:.1f} days at {reached}"))
    items.append(_significance_item(experiment, results))
    if experiment.decision:
        who = f" by {experiment.decided_by.username}" if experiment.decided_by_id else ""
        what = f"{experiment.decision} {experiment.decision_variant}".strip()
        items.append(_item("Decision", "done", f"{what}{who}: “{experiment.decision_reason}”"))
    elif results:
        verdict = results.get("recommendation") or {}
        items.append(_item("Decision", "active" if started else "todo", f"not decided; the analysis recommends: {RECOMMENDATION_TEXT.get(verdict.get('action'), '—')}"))
    else:
        items.append(_item("Decision", "todo", "not decided; the analysis will recommend promote, keep running, iterate or discard"))
    return items


def _deciding_p(c: dict):
    """The p-value of the test that decided the comparison (on the CUPED-adjusted figures when there are some)."""
    figures = c.get("cuped") or c
    return (figures.get("always_valid") or {}).get("p_value") if c.get("decision_test") == "always_valid" else figures.get("p_value")


def _significance_item(experiment, results: dict | None) -> dict:
    if not results:
        return _item("Significance", "todo" if experiment.status == ExperimentStatus.DRAFT else "active", "no results yet")
    primary = next((m for m in results.get("metrics", []) if m.get("primary")), None)
    comparisons = [c for c in (primary or {}).get("comparisons", []) if c.get("state") == "ok"]
    if not comparisons:
        return _item("Significance", "active", "not enough data yet for a test")
    test = TEST_TEXT.get(results.get("decision_test"), "the test")
    decisive = [c for c in comparisons if c.get("decisive")]
    if decisive:
        parts = [f"{c['variant']} {'better' if c.get('better') else 'worse'} by the {test} (p = {_text(_deciding_p(c))})" for c in decisive]
        return _item("Significance", "done", "; ".join(parts))
    best = min(comparisons, key=lambda c: _finite(c.get("p_value")) if _finite(c.get("p_value")) is not None else 1.0)
    return _item("Significance", "active", f"not significant by the {test} yet (fixed-horizon p = {_text(best.get('p_value'))})")


def _variant_url(experiment, variant) -> str:
    if experiment.model_id:
        return version_url(experiment.model.name, variant.version.version)
    return prompt_version_url(experiment.prompt.name, variant.version.version)


def experiment_detail(request: HttpRequest, key: str) -> HttpResponse:
    """Hypothesis, checklist, per-variant and per-metric results, guardrails, recommendation, charts and the buttons."""
    experiment = get_or_404(selectors.experiment_get, key=key)
    variants = list(experiment.variants.all())
    analysis = selectors.analysis_latest(experiment=experiment)
    results = analysis.results if analysis is not None else None
    series = (results or {}).get("series")
    smallest_arm = min((getattr(v, "units", 0) for v in variants), default=0)
    promotion = registry_selectors.promotion_get(promotion_id=experiment.promotion_id) if experiment.promotion_id else None
    verdict = (results or {}).get("recommendation") or {}
    challengers = [v.name for v in variants if not v.is_control]
    context = {
        "experiment": experiment,
        "variants": [{"variant": v, "url": _variant_url(experiment, v)} for v in variants],
        "analysis": analysis,
        "current": selectors.analysis_current(experiment=experiment),
        "results": results,
        "checklist": checklist(experiment, results, smallest_arm),
        "smallest_arm": smallest_arm,
        "progress": round(selectors.progress(experiment) * 100),
        "days": experiment.days_running(),
        "metrics": [_metric_view(m) for m in (results or {}).get("metrics", [])],
        "guardrails": [_guardrail_view(g) for g in (results or {}).get("guardrails", [])],
        "srm": (results or {}).get("srm") or {},
        "srm_text": {"p": _text(((results or {}).get("srm") or {}).get("p_value")), "chi2": _text(((results or {}).get("srm") or {}).get("chi2"))},
        "verdict": verdict,
        "verdict_test": TEST_TEXT.get(verdict.get("test"), ""),
        "metric_figure": charts.cumulative_metric(series) if charts.has_points(series) else None,
        "lift_figure": charts.lift_over_time(series, experiment.alpha) if charts.has_points(series) and series.get("lifts") else None,
        "promotion": promotion,
        "promotion_url": f"{target_url(promotion)}#promotion-{promotion.pk}" if promotion else "",
        "challengers": challengers,
        "suggested": verdict.get("variant") if verdict.get("variant") in challengers else (challengers[0] if challengers else ""),
        "can_decide": experiment.status != ExperimentStatus.DRAFT and experiment.decision == Decision.NONE,
    }
    return render(request, "experiments/experiment_detail.html", context)


# --- buttons (POST) -------------------------------------------------------------------------------------------------------


def _back(key: str) -> str:
    return reverse("experiments:experiment-detail", args=[key])


@require_POST
def experiment_start(request: HttpRequest, key: str) -> HttpResponse:
    experiment = get_or_404(selectors.experiment_get, key=key)
    return call_and_redirect(
        request, lambda: services.experiment_start(experiment=experiment, reason=request.POST.get("reason", ""), actor=request.user),
        success=f"Started {key}: units are assigned from now on.", fallback=_back(key), then=lambda _: _back(key),
    )


@require_POST
def experiment_stop(request: HttpRequest, key: str) -> HttpResponse:
    experiment = get_or_404(selectors.experiment_get, key=key)
    return call_and_redirect(
        request, lambda: services.experiment_stop(experiment=experiment, reason=request.POST.get("reason", ""), actor=request.user),
        success=f"Stopped {key}: no more units are assigned; a last analysis is queued.", fallback=_back(key), then=lambda _: _back(key),
    )


@require_POST
def experiment_refresh(request: HttpRequest, key: str) -> HttpResponse:
    experiment = get_or_404(selectors.experiment_get, key=key)

    return call_and_redirect(
        request, lambda: services.analysis_request(experiment=experiment, actor=request.user), success=lambda analysis: f"Analysis #{analysis.pk} queued; a worker computes it (reload in a moment).",
        fallback=_back(key), then=lambda _: _back(key),
    )


@require_POST
def experiment_decide(request: HttpRequest, key: str) -> HttpResponse:
    """Promote a variant (evidence on its gate card + a promotion request an approver decides), iterate or discard."""
    experiment = get_or_404(selectors.experiment_get, key=key)
    decision = request.POST.get("decision", "")
    variant = request.POST.get("variant", "") if decision == "promote" else None

    def success(decided) -> str:
        if decision == "promote" and decided.promotion_id:
            return (f"Promote {variant}: promotion request #{decided.promotion_id} opened with the A/B result on the version's gate card; "
                    "an approver decides it.")
        return f"Decision recorded: {decision}."

    return call_and_redirect(
        request,
        lambda: services.experiment_decide(experiment=experiment, decision=decision, variant=variant, reason=request.POST.get("reason", ""),
                                           actor=request.user),
        success=success, fallback=_back(key), then=lambda _: _back(key),
    )
