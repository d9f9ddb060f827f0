"""Pages of models: home, models, a model, a version, compare, promotions, the audit log, and their buttons."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib import messages
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from mlops_site.pages import call_and_redirect, get_or_404, paginate, querystring
from mlops_site.roles import APPROVER, has_role

from .. import charts, selectors, services
from ..models import CANARY_STAGES, PROMOTABLE_STAGES, AuditAction, PromotionStatus, PromotionStrategy, Run
from ..templatetags.registry_extras import target_url
from .gates import evaluation_page, gate_card
from .webhooks import webhook_section

MAX_VERSION = 2**31 - 1  # what the column holds; a larger number in a URL is simply not found


def home(request: HttpRequest) -> HttpResponse:
    """What needs attention: pending approvals, what runs in production, recent changes."""
    pending = list(selectors.promotion_list(status=PromotionStatus.PENDING)[:20])
    production = list(selectors.model_list().filter(production_version__isnull=False)[:20])
    context = {
        "pending": pending,
        "can_approve_any": has_role(request.user, APPROVER),
        "production": production,
        "prompts_in_prod": list(selectors.prompt_list().filter(prod_version__isnull=False)[:20]),
        "recent": list(selectors.audit_list()[:15]),
        "model_count": selectors.model_list().count(),
    }
    return render(request, "registry/home.html", context)


def model_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    page = paginate(request, selectors.model_list(search=search))
    return render(request, "registry/model_list.html", {"page": page, "search": search, "qs": querystring(request)})


def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    model = get_or_404(selectors.model_get, name=name)
    versions = paginate(request, selectors.version_list(model=model))
    # The chart shows the most recent 500 versions: enough to see a trend, cheap to draw.
    history = list(selectors.version_list(model=model).values_list("version", "metrics")[:500])
    context = {
        "model": model,
        "versions": versions,
        "timeline": list(selectors.stage_change_list(model=model)[:100]),
        "pending": list(selectors.promotion_list(status=PromotionStatus.PENDING, model=model)),
        "stages": PROMOTABLE_STAGES,
        "history_figure": charts.metric_history(history) if any(m for _, m in history) else None,
        **webhook_section(request.user, model=model),
    }
    return render(request, "registry/model_detail.html", context)


def version_detail(request: HttpRequest, name: str, version: int) -> HttpResponse:
    found = get_or_404(selectors.version_get, model_name=name, version=version)
    promotions = list(selectors.promotion_list(version=found))
    production = selectors.stage_holder_find(model=found.model, stage="production")
    baseline = production if production is not None and production.pk != found.pk else None
    context = {
        "version": found,
        "model": found.model,
        "baseline": baseline,
        "run": Run.objects.select_related("group").filter(pk=found.run_id).first() if found.run_id else None,
        "metric_rows": _metric_rows(found.metrics, baseline.metrics if baseline else {}),
        "promotions": promotions,
        "pending": [p for p in promotions if p.status == PromotionStatus.PENDING],
        "rolling_out": next((p for p in promotions if p.status == PromotionStatus.ROLLING_OUT), None),
        "canary_stage": CANARY_STAGES["model"],
        "stages": [s for s in PROMOTABLE_STAGES if s != found.stage],
        "audit": list(selectors.audit_list(subject=f"model:{name}", version=found.version)[:50]),
        "evaluations": evaluation_page(request, model_version=found),
        "qs": querystring(request),
        "column_defaults": {"label_column": "label", "prediction_column": "prediction", "score_column": "score"},
        **gate_card(found, request.user, promotions),
    }
    return render(request, "registry/version_detail.html", context)


def _metric_rows(metrics: dict, baseline: dict) -> list[dict]:
    """This version's metrics beside the production version's, with the difference where both are numbers."""
    rows = []
    for key in sorted(set(metrics) | set(baseline)):
        value, base = metrics.get(key), baseline.get(key)
        numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (value, base))
        rows.append({"key": key, "value": value, "baseline": base, "delta": value - base if numeric else None})
    return rows


def version_artifact(request: HttpRequest, name: str, version: int) -> HttpResponse:
    found = get_or_404(selectors.version_get, model_name=name, version=version)
    if not found.artifact:
        raise Http404("This version has no stored artifact file.")
    return FileResponse(default_storage.open(found.artifact.name, "rb"), as_attachment=True, filename=found.artifact.name.rsplit("/", 1)[-1])


def version_compare(request: HttpRequest, name: str) -> HttpResponse:
    """Two or more versions side by side; `?v=3&v=5`. Without `v`, the two newest."""
    model = get_or_404(selectors.model_get, name=name)
    raw = request.GET.getlist("v")
    try:
        numbers = list(dict.fromkeys(int(v) for v in raw if v.strip()))
    except ValueError:
        messages.error(request, "Versions to compare must be numbers.")
        numbers = []
    if any(not 1 <= n <= MAX_VERSION for n in numbers):
        raise Http404("No such version.")
    if not raw:
        numbers = list(selectors.version_list(model=model).values_list("version", flat=True)[:2])[::-1]
    versions = get_or_404(selectors.versions_get_many, model_name=name, numbers=numbers[:10])
    rows = [(section, _diff_rows(versions, section)) for section in ("metrics", "params", "tags")]
    fields = [
        (label, [getattr(v, attr) or "" for v in versions])
        for label, attr in (("stage", "stage"), ("code commit", "code_commit"), ("data version", "data_version"), ("image tag", "image_tag"), ("artifact sha256", "artifact_sha256"))
    ]
    context = {
        "model": model,
        "versions": versions,
        "rows": rows,
        "fields": [(label, values, len(set(map(str, values))) > 1) for label, values in fields],
        "all_versions": list(selectors.version_list(model=model).values_list("version", flat=True)[:200]),
        "figure": charts.metrics_comparison([(f"v{v.version}", _numeric(v.metrics)) for v in versions]) if len(versions) >= 1 and any(v.metrics for v in versions) else None,
    }
    return render(request, "registry/version_compare.html", context)


def _numeric(metrics: dict) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _diff_rows(versions, attr: str) -> list[dict]:
    """One row per key in any version: its values, whether they differ, and the best numeric value for metrics."""
    keys = sorted({k for v in versions for k in getattr(v, attr)})
    rows = []
    missing = object()
    for key in keys:
        values = [getattr(v, attr).get(key, missing) for v in versions]
        shown = ["—" if value is missing else value for value in values]
        differs = len({repr(value) for value in values}) > 1
        rows.append({"key": key, "values": shown, "differs": differs})
    return rows


def promotion_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", PromotionStatus.PENDING)
    if status not in PromotionStatus.values and status != "all":
        status = PromotionStatus.PENDING
    page = paginate(request, selectors.promotion_list(status=None if status == "all" else status))
    return render(
        request,
        "registry/promotion_list.html",
        {"page": page, "status": status, "statuses": [*PromotionStatus.values, "all"], "qs": querystring(request)},
    )


def _parse_day(value: str, *, plus_days: int = 0) -> datetime | None:
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date() + timedelta(days=plus_days)
    except (TypeError, ValueError, OverflowError):
        return None
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def audit_list(request: HttpRequest) -> HttpResponse:
    g = request.GET
    # `until` includes that whole day.
    since, until = _parse_day(g.get("since", "")), _parse_day(g.get("until", ""), plus_days=1)
    filters = {
        "subject": g.get("subject", "").strip(),
        "action": g.get("action", "") if g.get("action", "") in AuditAction.values else "",
        "actor": g.get("actor", "").strip(),
        "search": g.get("q", "").strip(),
        "since": since,
        "until": until,
    }
    page = paginate(request, selectors.audit_list(**filters))
    context = {"page": page, "filters": g, "actions": AuditAction.choices, "qs": querystring(request)}
    return render(request, "registry/audit_list.html", context)


# --- buttons (POST) ------------------------------------------------------------------------


def strategy_of(request: HttpRequest) -> tuple[str, str]:
    """The promote form's strategy (its "Roll out as a canary" box) and the rollout policy's name, which only a canary takes."""
    strategy = request.POST.get("strategy") or PromotionStrategy.DIRECT
    return strategy, request.POST.get("policy", "") if strategy == PromotionStrategy.CANARY else ""


def requested_text(name: str, version: int, to_stage: str, strategy: str, policy: str) -> str:
    if strategy == PromotionStrategy.CANARY:
        return (f"Requested {name} v{version} → {to_stage} as a canary (rollout policy {policy or 'default'}). Once someone with the approver "
                "role approves it, it rolls out in stages while the current version keeps serving the rest.")
    return f"Requested {name} v{version} → {to_stage}. Someone with the approver role must approve it."


@require_POST
def version_promote(request: HttpRequest, name: str, version: int) -> HttpResponse:
    found = get_or_404(selectors.version_get, model_name=name, version=version)
    to_stage = request.POST.get("to", "")
    strategy, policy = strategy_of(request)
    return call_and_redirect(
        request,
        lambda: services.promotion_request_create(
            version=found, to_stage=to_stage, reason=request.POST.get("reason", ""), actor=request.user,
            override_reason=request.POST.get("override_reason", ""), strategy=strategy, policy=policy,
        ),
        success=requested_text(name, version, to_stage, strategy, policy),
        fallback=reverse("registry:version-detail", args=[name, version]),
    )


@require_POST
def promotion_approve(request: HttpRequest, promotion_id: int) -> HttpResponse:
    promotion = get_or_404(selectors.promotion_get, promotion_id=promotion_id)
    label = f"{promotion.subject_name} v{promotion.target.version}"
    return call_and_redirect(
        request,
        lambda: services.promotion_approve(
            promotion_id=promotion_id, actor=request.user, comment=request.POST.get("comment", ""),
            override_reason=request.POST.get("override_reason", ""),
        ),
        success=lambda approved: (
            f"Approved: {label} rolls out into {approved.to_stage} as a canary, stage by stage; the version there keeps serving the rest "
            "until the rollout completes." if approved.status == PromotionStatus.ROLLING_OUT else f"Approved: {label} is now in {approved.to_stage}."
        ),
        fallback=target_url(promotion),
    )


@require_POST
def promotion_reject(request: HttpRequest, promotion_id: int) -> HttpResponse:
    promotion = get_or_404(selectors.promotion_get, promotion_id=promotion_id)
    label = f"{promotion.subject_name} v{promotion.target.version}"
    return call_and_redirect(
        request,
        lambda: services.promotion_reject(promotion_id=promotion_id, actor=request.user, comment=request.POST.get("comment", "")),
        success=f"Rejected the request to move {label} to {promotion.to_stage}.",
        fallback=target_url(promotion),
    )


@require_POST
def model_rollback(request: HttpRequest, name: str) -> HttpResponse:
    stage = request.POST.get("stage", "")
    return call_and_redirect(
        request,
        lambda: services.model_rollback(model_name=name, stage=stage, reason=request.POST.get("reason", ""), actor=request.user),
        success=f"Rolled back {name} {stage} to the version that held it before.",
        fallback=reverse("registry:model-detail", args=[name]),
    )
