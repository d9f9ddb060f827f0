"""The design form (`/experiments/new/`): hypothesis, subject, variants, metrics, guardrails and the test's size.

The form is read as typed and handed to `experiment_create`, which validates everything; a refused
design re-renders the form with the service's message and the input as typed, nothing saved. Rows
(variants, secondary metrics) are added and removed by submit buttons, which static/js/experiment_form.js
handles in the page instead when it runs; the same script fills the sample-size calculator live.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from mlops_site.exceptions import DomainError

from .. import selectors, services
from ..models import Direction, EventMetric, GuardrailMetric, MetricKind
from ..services.design import DEFAULT_GUARDRAILS, MAX_SECONDARY_METRICS, MAX_VARIANTS, MIN_VARIANTS

METRIC_SUGGESTIONS = ("conversion", "revenue", *EventMetric.values)
GUARDRAIL_TEXT = {
    GuardrailMetric.ERROR_RATE: "error rate",
    GuardrailMetric.LATENCY_P95: "latency P95",
    GuardrailMetric.COST_PER_REQUEST: "cost per request",
    GuardrailMetric.GUARDRAIL_RATE: "guardrail triggers",
}


def _blank_variant() -> dict:
    return {"name": "", "version": "", "weight": ""}


def _defaults(request: HttpRequest, subjects: dict) -> dict:
    """A first form: A against B at 50/50, conversion at a 10 % baseline and 2 points, the default guardrails;
    `?model=NAME` or `?prompt=NAME` preselects the subject (and its two newest versions)."""
    subject = ""
    for kind in ("model", "prompt"):
        if request.GET.get(kind) in subjects[kind]:
            subject = f"{kind}:{request.GET[kind]}"
    newest = subjects[subject.split(":")[0]][subject.split(":", 1)[1]] if subject else []
    versions = [str(newest[1]) if len(newest) > 1 else "", str(newest[0]) if newest else ""]
    return {
        "key": "", "hypothesis": "", "subject": subject,
        "variants": [{"name": "A", "version": versions[0], "weight": "50"}, {"name": "B", "version": versions[1], "weight": "50"}],
        "primary_name": "conversion", "primary_kind": MetricKind.PROPORTION.value, "primary_direction": "",
        "secondary": [{"name": "", "kind": MetricKind.MEAN.value}],
        "guardrails": [{"metric": g["metric"], "text": GUARDRAIL_TEXT[g["metric"]], "enabled": True, "max_degradation": f"{g['max_degradation']:g}",
                        "relative": g["relative"]} for g in DEFAULT_GUARDRAILS],
        "alpha": "0.05", "power": "0.8", "mde": "0.02", "baseline_rate": "0.1", "baseline_std": "",
    }


def _posted(post) -> dict:
    """The form as typed (text), rows in order; a row left wholly blank is dropped."""
    variants = [{"name": n.strip(), "version": v.strip(), "weight": w.strip()}
                for n, v, w in zip(post.getlist("variant_name"), post.getlist("variant_version"), post.getlist("variant_weight"), strict=False)]
    secondary = [{"name": n.strip(), "kind": k} for n, k in zip(post.getlist("secondary_name"), post.getlist("secondary_kind"), strict=False)]
    enabled = set(post.getlist("guardrail"))
    guardrails = [{"metric": m, "text": GUARDRAIL_TEXT[m], "enabled": m in enabled, "max_degradation": post.get(f"guardrail_{m}_max", "").strip(),
                   "relative": post.get(f"guardrail_{m}_relative") == "on"} for m in GuardrailMetric.values]
    return {
        "key": post.get("key", "").strip(), "hypothesis": post.get("hypothesis", "").strip(), "subject": post.get("subject", ""),
        "variants": [r for r in variants if any(r.values())] or [_blank_variant(), _blank_variant()],
        "primary_name": post.get("primary_name", "").strip(), "primary_kind": post.get("primary_kind", ""),
        "primary_direction": post.get("primary_direction", ""),
        "secondary": [r for r in secondary if r["name"]],
        "guardrails": guardrails,
        **{name: post.get(name, "").strip() for name in ("alpha", "power", "mde", "baseline_rate", "baseline_std")},
    }


def _number_or_text(text: str):
    """A number as typed, or the text itself for the service to refuse ("alpha: a finite number")."""
    try:
        return float(text)
    except ValueError:
        return text


def _design(form: dict) -> dict:
    """The form as experiment_create's keyword arguments."""
    kind, _, name = form["subject"].partition(":")
    primary = {"name": form["primary_name"], "kind": form["primary_kind"]}
    if form["primary_direction"] in Direction.values:
        primary["direction"] = form["primary_direction"]
    design = {
        "key": form["key"], "hypothesis": form["hypothesis"],
        "model": name if kind == "model" else None, "prompt": name if kind == "prompt" else None,
        "variants": [{"name": r["name"], "version": int(r["version"]) if r["version"].isascii() and r["version"].isdigit() else r["version"] or None,
                      "weight": r["weight"]} for r in form["variants"]],
        "primary_metric": primary,
        "secondary_metrics": [{"name": r["name"], "kind": r["kind"]} for r in form["secondary"]],
        "guardrails": [{"metric": g["metric"], "max_degradation": _number_or_text(g["max_degradation"]), "relative": g["relative"]}
                       for g in form["guardrails"] if g["enabled"]],
        "mde": _number_or_text(form["mde"]),
    }
    for field in ("alpha", "power"):
        if form[field]:
            design[field] = _number_or_text(form[field])
    # Only the baseline the metric's kind sizes the test with: a value left in the other field is not stored.
    baseline = "baseline_rate" if form["primary_kind"] == MetricKind.PROPORTION else "baseline_std"
    if form[baseline]:
        design[baseline] = _number_or_text(form[baseline])
    return design


def _edit_rows(form: dict, action: str) -> None:
    """The row buttons: `add-variant`, `add-secondary`, `remove-variant-<i>`, `remove-secondary-<i>`."""
    if action == "add-variant" and len(form["variants"]) < MAX_VARIANTS:
        form["variants"].append(_blank_variant())
    elif action == "add-secondary" and len(form["secondary"]) < MAX_SECONDARY_METRICS:
        form["secondary"].append({"name": "", "kind": MetricKind.MEAN.value})
    parts = action.split("-")
    if len(parts) == 3 and parts[0] == "remove" and parts[1] in ("variant", "secondary") and parts[2].isdigit():
        rows, index = form["variants" if parts[1] == "variant" else "secondary"], int(parts[2])
        if index < len(rows) and (parts[1] != "variant" or len(rows) > MIN_VARIANTS):
            del rows[index]


def experiment_new(request: HttpRequest) -> HttpResponse:
    """Design an experiment (editors); beside the form, a calculator of the units needed and the expected duration."""
    subjects = selectors.design_subjects()
    form = _defaults(request, subjects)
    error, error_fields, status = "", set(), 200
    if request.method == "POST":
        form = _posted(request.POST)
        action = request.POST.get("action", "create")
        if action != "create":
            _edit_rows(form, action)
        else:
            try:
                experiment = services.experiment_create(**_design(form), actor=request.user)
            except DomainError as exc:
                error, status = exc.message, exc.status
                error_fields = set((exc.extra.get("fields") or {}).keys())
            else:
                messages.success(request, f"Experiment {experiment.key} designed: {experiment.sample_size_per_arm:,} units per arm. Start it when ready.")
                return redirect("experiments:experiment-detail", key=experiment.key)
    if not form["secondary"]:
        form["secondary"].append({"name": "", "kind": MetricKind.MEAN.value})  # one blank row to add a metric without a round trip
    for i, row in enumerate(form["variants"]):
        row["invalid"] = {f for f in ("name", "version", "weight") if f"variants[{i}].{f}" in error_fields}
    context = {
        "form": form,
        "error": error,
        "invalid": {f.split(".")[0].split("[")[0] for f in error_fields},
        "subjects": subjects,
        "has_subjects": bool(subjects["model"] or subjects["prompt"]),
        "kinds": MetricKind.values,
        "directions": Direction.values,
        "suggestions": METRIC_SUGGESTIONS,
        "event_metrics": EventMetric.values,
        "max_variants": MAX_VARIANTS,
        "sample_size_url": reverse("experiments-api:sample-size"),
    }
    return render(request, "experiments/experiment_form.html", context, status=status)
