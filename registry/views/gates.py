"""HTML pages of quality gates: run an evaluation, read one, edit a gate policy, edit a model's dataset schema.

Every write goes through the services (evaluation_request, gate_policy_set, dataset_schema_set/infer);
a refused write re-renders the form with the service's message and the input as typed, nothing saved.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from mlops_site.exceptions import DomainError, TooLarge, ValidationFailed
from mlops_site.formatting import number_text
from mlops_site.pages import call_and_redirect, get_or_404, paginate, querystring
from mlops_site.parsers import StrictJSONError, strict_loads
from mlops_site.roles import ADMIN, EDITOR, has_role, require_role
from mlops_site.uploads import read_upload

from .. import selectors
from ..models import (
    DatasetSchema,
    Evaluation,
    EvaluationKind,
    EvaluationRow,
    EvaluationStatus,
    EvidenceOrigin,
    GatePolicy,
    ModelVersion,
    PromotionStatus,
)
from ..services import evaluations, gates, schemas

EVALUATIONS_PER_PAGE = 20

MODEL_COLUMNS = ("label_column", "prediction_column", "score_column", "group_column")
# Figures the model and data evaluations produce (registry/services/evaluations.py); offered as suggestions.
MODEL_FIGURES = ("accuracy", "precision", "recall", "f1", "roc_auc", "demographic_parity_difference", "equalized_odds_difference",
                 "schema_violations", "invalid_rows", "valid_share")
PROMPT_FIGURES = ("format_valid", "relevance", "safety")
SCHEMA_EXAMPLE = {"columns": [{"name": "amount", "type": "numeric", "min": 0, "nullable_share": 0.01},
                              {"name": "country", "type": "categorical", "categories": ["DE", "FR"]}], "allow_extra_columns": True}


# --- the gate card and the evaluations on the version pages ---------------------------------------------------------------

def _origin_label(origin: str) -> str:
    return EvidenceOrigin(origin).label if origin in EvidenceOrigin.values else "unknown"


def _failure_reason(state: gates.GateStatus) -> str:
    return "Gates failed: " + "; ".join(gates.check_problem(c) for c in state.failed) if state.policy is not None and not state.passed else ""


def gate_card(version, user, promotions) -> dict:
    """The gate card of a model or prompt version, and whether (and why) approving its pending requests is blocked.

    The checks are judged for the requester of the first pending gated request, else for the viewing user (which
    matters only under a policy that needs evidence from someone other than the requester; then each other pending
    request is judged for its own requester, from the evaluations read once more for all of them). Three queries
    otherwise (the policy, the finished evaluations, the newest A/B test result). Requests into an ungated stage (a prompt's dev) are not blocked.
    """
    pending = [p for p in promotions if p.status == PromotionStatus.PENDING and p.to_stage not in gates.UNGATED_STAGES]
    you = user if user.is_authenticated else None
    shown_for = pending[0].requested_by if pending else you
    state = gates.gate_status(version=version, requester=shown_for)
    by_identity = state.policy is not None and state.policy.evidence_from_other_identity
    evidence: list = []  # read on the first other requester, then shared

    def judged_for(requester) -> gates.GateStatus:
        if not by_identity or getattr(requester, "pk", None) == getattr(shown_for, "pk", None):
            return state
        if not evidence:
            evidence.append(gates.finished_evidence(version))
        return gates.gate_status(version=version, policy=state.policy, requester=requester, evidence=evidence[0])

    blocked_ids = set()
    if state.enforced:
        for promotion in pending:
            theirs = judged_for(promotion.requested_by)
            if not theirs.passed:
                blocked_ids.add(promotion.pk)
                promotion.gate_reason = _failure_reason(theirs)  # the approve button's title says why for this request
    yours = judged_for(you)
    return {
        "gates": state,
        "gate_rows": [
            {"check": c.check, "op": c.op, "threshold": f"{c.threshold:g}", "status": c.status, "value": number_text(c.value),
             "evaluation_id": c.evaluation_id, "kind": c.kind, "ran_at": c.ran_at, "source": c.source,
             "producer": c.producer or "unknown", "origin": _origin_label(c.origin), "problem": gates.check_problem(c) if c.status != "passed" else "",
             "passed_over": [{"evaluation_id": o.evaluation_id, "value": number_text(o.value), "producer": o.producer or "unknown",
                              "origin": _origin_label(o.origin), "reason": o.reason} for o in c.passed_over]}
            for c in state.checks
        ],
        "gate_requester": state.requester if by_identity else "",
        "gate_reason": _failure_reason(state),
        "gate_blocked": yours.enforced and not yours.passed,
        "gate_blocked_ids": blocked_ids,
        "can_override": has_role(user, ADMIN),
        "ab_evidence": ab_evidence(version),
    }


# The A/B figures shown on the gate card, in this order, when the recorded result has them.
AB_FIGURES = (("ab_lift", "lift"), ("ab_diff", "difference"), ("ab_ci_low", "interval low"), ("ab_ci_high", "interval high"),
              ("ab_p_value", "p-value"), ("ab_always_valid_low", "always-valid low"), ("ab_always_valid_high", "always-valid high"))


def ab_evidence(version) -> dict | None:
    """The newest A/B test result recorded for the version (an evaluation of kind experiment), for the gate card."""
    field = "model_version" if isinstance(version, ModelVersion) else "prompt_version"
    found = (Evaluation.objects.filter(**{field: version}, kind=EvaluationKind.EXPERIMENT, status=EvaluationStatus.DONE)
             .order_by("-finished_at", "-id").only("pk", "finished_at", "source", "metrics", "details").first())
    if found is None:
        return None
    figures = [(label, number_text(found.metrics[key])) for key, label in AB_FIGURES if key in found.metrics]
    summary = found.details.get("summary") if isinstance(found.details, dict) else None
    return {"evaluation_id": found.pk, "source": found.source, "finished_at": found.finished_at, "figures": figures,
            "summary": summary if isinstance(summary, str) else "", "significant": found.metrics.get("ab_significant") == 1}


def evaluation_page(request: HttpRequest, **subject):
    """A version's evaluations, newest first, one page; the uploaded file and the details stay in the database."""
    rows = Evaluation.objects.filter(**subject).select_related("requested_by").defer("data", "details", "options")
    page = paginate(request, rows, EVALUATIONS_PER_PAGE)
    if page.paginator.count:
        for evaluation in page:
            evaluation.figures = [(k, number_text(v)) for k, v in sorted(evaluation.metrics.items())]
    return page


# --- run an evaluation (POST) ------------------------------------------------------------------


@require_POST
def version_evaluate(request: HttpRequest, name: str, version: int) -> HttpResponse:
    """Upload a predictions file (kind model) or a data file (kind data) of a model version; a worker computes it."""
    found = get_or_404(selectors.version_get, model_name=name, version=version)
    back = reverse("registry:version-detail", args=[name, version]) + "#evaluations"
    kind = request.POST.get("kind", EvaluationKind.MODEL)
    keys = (*MODEL_COLUMNS, "data_version") if kind == EvaluationKind.MODEL else ("data_version",)
    options = {key: request.POST[key].strip() for key in keys if request.POST.get(key, "").strip()}
    upload = request.FILES.get("file")

    def request_evaluation():
        # A viewer's upload is never read; a too large one is refused before it is read into memory (the service
        # checks the role and the same limit again on the bytes).
        require_role(request.user, EDITOR, "Running an evaluation")
        if upload is not None and upload.size > evaluations.MAX_UPLOAD_MB * 1024 * 1024:
            raise TooLarge(f"The file is larger than {evaluations.MAX_UPLOAD_MB} MB.")
        return evaluations.evaluation_request(
            kind=kind, model_version=found, data=upload.read() if upload else b"", filename=upload.name if upload else "",
            options=options, actor=request.user,
        )

    return call_and_redirect(
        request, request_evaluation, success=lambda created: f"Evaluation #{created.pk} queued; a worker computes it.", fallback=back, then=lambda _: back
    )


@require_POST
def prompt_version_evaluate(request: HttpRequest, name: str, version: int) -> HttpResponse:
    """Run a prompt version over its eval set (provider replay by default, openai when the server has an LLM endpoint)."""
    found = get_or_404(selectors.prompt_version_get, prompt_name=name, version=version)
    back = reverse("registry:prompt-version-detail", args=[name, version]) + "#evaluations"
    return call_and_redirect(
        request,
        lambda: evaluations.evaluation_request(
            kind=EvaluationKind.PROMPT, prompt_version=found, options={"provider": request.POST.get("provider") or "replay"}, actor=request.user,
        ),
        success=lambda created: f"Evaluation #{created.pk} queued; a worker computes it.", fallback=back, then=lambda _: back,
    )


# --- one evaluation -----------------------------------------------------------------------------


def _evaluation_get(evaluation_id: int) -> Evaluation:
    # Not services.evaluations.evaluation_get: that one loads the uploaded file too (up to 200 MB).
    try:
        return Evaluation.objects.select_related("model_version__model", "prompt_version__prompt", "requested_by").defer("data").get(pk=evaluation_id)
    except (Evaluation.DoesNotExist, OverflowError):  # OverflowError: an id too large for the column (SQLite)
        raise Http404(f"No evaluation {evaluation_id}.") from None


def _criteria(details: dict, metrics: dict) -> list[dict]:
    """The per-criterion summary of a prompt evaluation (a list, or a dict by name), with each criterion's gate figure."""
    raw = next((details[key] for key in ("criteria", "summary") if key in details), None)
    if isinstance(raw, dict):
        items = [{"name": name, **value} for name, value in raw.items() if isinstance(value, dict)]
    else:
        items = [item for item in raw or [] if isinstance(item, dict)]
    return [
        {**item, "pass_rate": number_text(item.get("pass_rate")), "mean_value": number_text(item.get("mean_value")),
         "figure": number_text(metrics.get(item.get("name")))}
        for item in items
    ]


def _group_rows(fairness: dict) -> list[dict]:
    """Per group: rows and rates; an undefined TPR or FPR (no positives, no negatives) reads "undefined (0)"."""
    return [
        {"group": g.get("group"), "n": g.get("n"),
         **{k: number_text(g.get(k)) for k in ("selection_rate", "accuracy")},
         **{k: "undefined (0)" if g.get(k) is None else number_text(g.get(k)) for k in ("tpr", "fpr")}}
        for g in fairness.get("by_group", [])
    ]


def _row_view(row: EvaluationRow) -> dict:
    return {
        "index": row.index, "input": json.dumps(row.input, indent=2, ensure_ascii=False) if not isinstance(row.input, str) else row.input,
        "output": row.output, "expected": row.expected, "error": row.error, "latency_ms": row.latency_ms, "cost_usd": row.cost_usd,
        "checks": [{**c, "value": number_text(c.get("value"))} for c in row.checks if isinstance(c, dict)],
    }


def evaluation_detail(request: HttpRequest, evaluation_id: int) -> HttpResponse:
    """Status, figures, and what they came from: confusion matrix, per-group fairness, violations, per-row prompt results."""
    evaluation = _evaluation_get(evaluation_id)
    details = evaluation.details if isinstance(evaluation.details, dict) else {}
    if evaluation.model_version_id:
        subject, name = evaluation.model_version, evaluation.model_version.model.name
        subject_url = reverse("registry:version-detail", args=[name, subject.version])
    else:
        subject, name = evaluation.prompt_version, evaluation.prompt_version.prompt.name
        subject_url = reverse("registry:prompt-version-detail", args=[name, subject.version])
    classification = details.get("classification") or {}
    confusion = classification.get("confusion") or []
    labels = classification.get("labels") or []
    fairness = details.get("fairness") or {}
    rows = None
    if evaluation.kind == EvaluationKind.PROMPT:
        rows = paginate(request, EvaluationRow.objects.filter(evaluation=evaluation).order_by("index"))
    context = {
        "evaluation": evaluation,
        "subject": subject,
        "subject_name": name,
        "subject_url": subject_url,
        "figures": [(k, number_text(v)) for k, v in sorted(evaluation.metrics.items())],
        "options": sorted(evaluation.options.items()),
        "classification": classification,
        "confusion": [(labels[i] if i < len(labels) else i, row) for i, row in enumerate(confusion)],
        "labels": labels,
        "fairness": fairness,
        "fairness_figures": [(k, number_text(fairness.get(k))) for k in ("demographic_parity_difference", "equalized_odds_difference")],
        "groups": _group_rows(fairness),
        "report": details.get("report") or {},
        "criteria": _criteria(details, evaluation.metrics),
        "page": rows,
        "rows": [_row_view(r) for r in rows] if rows is not None else [],
        "qs": querystring(request),
        "details_json": json.dumps(details, indent=2, ensure_ascii=False, default=str) if details else "",
        "in_progress": evaluation.status in ("pending", "running"),
    }
    return render(request, "registry/evaluation_detail.html", context)


# --- gate policies ------------------------------------------------------------------------------


def _posted_rows(post) -> list[dict]:
    """The rows of the policy form as typed; a row with neither a name nor a threshold is an unused blank row."""
    removed = set(post.getlist("remove"))
    rows = []
    for i, (check, op, threshold) in enumerate(zip(post.getlist("check"), post.getlist("op"), post.getlist("threshold"), strict=False)):
        if str(i) in removed or not (check.strip() or threshold.strip()):
            continue
        rows.append({"check": check.strip(), "op": op, "threshold": threshold.strip()})
    return rows


def _number_or_text(text: str):
    try:
        return float(text)
    except ValueError:
        return text  # the service refuses it, naming the row: "threshold: a finite number"


def _policy_page(request: HttpRequest, *, subject: dict, kind: str, name: str, back_url: str, defaults: list[dict], figures) -> HttpResponse:
    policy = GatePolicy.objects.filter(**subject).select_related("updated_by").first()
    current = [{"check": c["check"], "op": c["op"], "threshold": f"{c['threshold']:g}"} for c in policy.checks] if policy else []
    rows = [dict(r) for r in current]
    enforced = policy.enforced if policy else True
    other_identity = policy.evidence_from_other_identity if policy else False
    error, status = "", 200
    if request.method == "POST":
        action = request.POST.get("action", "save")
        rows, enforced = _posted_rows(request.POST), request.POST.get("enforced") == "on"
        other_identity = request.POST.get("evidence_from_other_identity") == "on"
        if action == "add":
            rows.append({"check": "", "op": ">=", "threshold": ""})
        else:
            checks = defaults if action == "defaults" else [{**r, "threshold": _number_or_text(r["threshold"])} for r in rows]
            try:
                gates.gate_policy_set(**subject, checks=checks, enforced=enforced, evidence_from_other_identity=other_identity,
                                      actor=request.user)
            except DomainError as exc:
                error, status = exc.message, exc.status
            else:
                what = "the default checks" if action == "defaults" else f"{len(checks)} check(s)"
                messages.success(request, f"Gate policy of {name} saved: {what}, {'enforced' if enforced else 'not enforced'}.")
                return redirect(request.path)
    if not rows or rows[-1]["check"]:
        rows.append({"check": "", "op": ">=", "threshold": ""})  # one blank row to add a check without a round trip
    context = {
        "kind": kind,
        "name": name,
        "back_url": back_url,
        "policy": policy,
        "current": current,
        "rows": rows,
        "enforced": enforced,
        "evidence_from_other_identity": other_identity,
        "error": error,
        "ops": list(gates.OPS),
        "figures": figures,
        "defaults": defaults,
    }
    return render(request, "registry/gate_policy.html", context, status=status)


def model_gates(request: HttpRequest, name: str) -> HttpResponse:
    """The checks every promotion of the model's versions must pass; approvers edit them."""
    model = get_or_404(selectors.model_get, name=name)
    return _policy_page(request, subject={"model": model}, kind="model", name=name, back_url=reverse("registry:model-detail", args=[name]),
                        defaults=gates.DEFAULT_MODEL_CHECKS, figures=MODEL_FIGURES)


def prompt_gates(request: HttpRequest, name: str) -> HttpResponse:
    """The checks every move of the prompt into staging or prod must pass; approvers edit them."""
    prompt = get_or_404(selectors.prompt_get, name=name)
    latest = selectors.prompt_version_list(prompt=prompt).values_list("eval_criteria", flat=True).first() or []
    named = [c["name"] for c in latest if isinstance(c, dict) and isinstance(c.get("name"), str)]
    return _policy_page(request, subject={"prompt": prompt}, kind="prompt", name=name, back_url=reverse("registry:prompt-detail", args=[name]),
                        defaults=gates.DEFAULT_PROMPT_CHECKS, figures=list(dict.fromkeys([*PROMPT_FIGURES, *named])))


# --- dataset schema -----------------------------------------------------------------------------


def _range_text(low, high) -> str:
    if low is not None and high is not None:
        return f"{number_text(low)} … {number_text(high)}"
    if low is not None:
        return f">= {number_text(low)}"
    return f"<= {number_text(high)}" if high is not None else ""


def _schema_rows(schema: dict) -> list[dict]:
    rows = []
    for column in schema.get("columns", []):
        categories = column.get("categories")
        rows.append({
            "name": column.get("name"), "type": column.get("type"), "required": column.get("required", True),
            "range": _range_text(column.get("min"), column.get("max")),
            "categories": categories[:20] if categories is not None else None,
            "more_categories": len(categories) - 20 if categories is not None and len(categories) > 20 else 0,
            "allow_new_categories": column.get("allow_new_categories", False),
            "nullable_share": number_text(column.get("nullable_share", 0)),
        })
    return rows


def model_schema(request: HttpRequest, name: str) -> HttpResponse:
    """The model's dataset schema as a table; editors infer it from a reference file or edit its JSON."""
    model = get_or_404(selectors.model_get, name=name)
    row = DatasetSchema.objects.filter(model=model).select_related("updated_by").first()
    text = json.dumps(row.schema if row else SCHEMA_EXAMPLE, indent=2, ensure_ascii=False)
    error, status = "", 200
    if request.method == "POST":
        action = request.POST.get("action", "edit")
        try:
            require_role(request.user, EDITOR, "Setting a dataset schema")  # before a viewer's upload or JSON is read
            if action == "infer":
                upload = request.FILES.get("file")
                if upload is None:
                    raise ValidationFailed("Choose a reference file (CSV, JSON lines or Parquet) to infer the schema from.")
                saved = schemas.dataset_schema_infer(model=model, data=read_upload(upload, limit=evaluations.MAX_UPLOAD_MB * 1024 * 1024), filename=upload.name, actor=request.user)
            else:
                text = request.POST.get("schema", "")
                try:
                    parsed = strict_loads(text)
                except StrictJSONError as exc:
                    raise ValidationFailed(f"The schema is not valid JSON: {exc}.") from None
                saved = schemas.dataset_schema_set(model=model, schema=parsed, actor=request.user)
        except DomainError as exc:
            error, status = exc.message, exc.status
        else:
            messages.success(request, f"Dataset schema of {name} saved ({len(saved.schema['columns'])} columns; {saved.source}).")
            return redirect(request.path)
    context = {
        "model": model,
        "schema_row": row,
        "columns": _schema_rows(row.schema) if row else [],
        "text": text,
        "error": error,
    }
    return render(request, "registry/model_schema.html", context, status=status)
