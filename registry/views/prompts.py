"""HTML pages of the prompt registry: list, prompt (environments and their timeline), version (YAML, diff), eval set."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from mlops_site.exceptions import DomainError, ValidationFailed
from mlops_site.pages import call_and_redirect, get_or_404, paginate, querystring, redirect_back
from mlops_site.roles import EDITOR, require_role
from mlops_site.uploads import read_upload

from .. import selectors, services
from ..models import CANARY_STAGES, Environment, PromotionStatus, PromotionStrategy
from ..prompt_diff import settings_text, side_by_side
from .gates import evaluation_page, gate_card
from .models import requested_text, strategy_of
from .webhooks import webhook_section

BUILT_IN_CRITERIA = {"format_check", "llm_judge"}


def prompt_list(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()
    page = paginate(request, selectors.prompt_list(search=search))
    context = {"page": page, "search": search, "qs": querystring(request), "environments": Environment.values}
    return render(request, "registry/prompt_list.html", context)


def prompt_detail(request: HttpRequest, name: str) -> HttpResponse:
    prompt = get_or_404(selectors.prompt_get, name=name)
    environments = selectors.prompt_environments(prompt=prompt)
    context = {
        "prompt": prompt,
        "environments": [(env, environments.get(env)) for env in Environment.values],
        "versions": paginate(request, selectors.prompt_version_list(prompt=prompt)),
        "running": {v.pk: [env for env, ver in environments.items() if ver.pk == v.pk] for v in environments.values()},
        "pending": list(selectors.promotion_list(status=PromotionStatus.PENDING, prompt=prompt)),
        "timeline": list(selectors.prompt_timeline(prompt=prompt)[:100]),
        **webhook_section(request.user, prompt=prompt),
    }
    return render(request, "registry/prompt_detail.html", context)


def prompt_version_detail(request: HttpRequest, name: str, version: int) -> HttpResponse:
    """The version's YAML, its criteria and eval set, the approval card, and a diff against another version."""
    found = get_or_404(selectors.prompt_version_get, prompt_name=name, version=version)
    numbers = list(selectors.prompt_version_list(prompt=found.prompt).values_list("version", flat=True))
    against_raw = request.GET.get("against", "")
    earlier = [n for n in numbers if n < found.version]
    against_number = int(against_raw) if against_raw.isascii() and against_raw.isdigit() else (earlier[0] if earlier else None)
    against = None
    if against_number is not None and against_number != found.version:
        against = get_or_404(selectors.prompt_version_get, prompt_name=name, version=against_number)
    diff = None
    if against is not None:
        diff = [
            (label, side_by_side(old, new), old != new)
            for label, old, new in (
                ("system", against.system, found.system),
                ("template", against.template, found.template),
                ("settings", settings_text(against), settings_text(found)),
            )
        ]
    promotions = list(selectors.promotion_list(version=found))
    environments = selectors.prompt_environments(prompt=found.prompt)
    context = {
        "prompt": found.prompt,
        "version": found,
        "numbers": numbers,
        "against": against,
        "diff": diff,
        "runs_in": [env for env, v in environments.items() if v.pk == found.pk],
        "environments": Environment.values,
        "criteria": [(c, c.get("type") in BUILT_IN_CRITERIA, {k: v for k, v in c.items() if k not in ("name", "type")}) for c in found.eval_criteria],
        "pending": [p for p in promotions if p.status == PromotionStatus.PENDING],
        "promotions": [p for p in promotions if p.status != PromotionStatus.PENDING],
        "rolling_out": next((p for p in promotions if p.status == PromotionStatus.ROLLING_OUT), None),
        "canary_stage": CANARY_STAGES["prompt"],
        "audit": list(selectors.audit_list(subject=f"prompt:{name}", version=found.version)[:50]),
        "evaluations": evaluation_page(request, prompt_version=found),
        "qs": querystring(request),
        "providers": ["replay", "openai"] if settings.MLOPS_LLM_BASE_URL else ["replay"],
        **gate_card(found, request.user, promotions),
    }
    return render(request, "registry/prompt_version_detail.html", context)


def eval_set_detail(request: HttpRequest, name: str, version: int) -> HttpResponse:
    eval_set = get_or_404(selectors.eval_set_get, prompt_name=name, version=version)
    page = paginate(request, selectors.eval_set_lines(eval_set=eval_set))
    start = page.start_index()
    rows = [(start + i, json.dumps(json.loads(line), indent=2, ensure_ascii=False)) for i, line in enumerate(page.object_list)]
    return render(request, "registry/eval_set_detail.html", {"eval_set": eval_set, "page": page, "rows": rows, "qs": querystring(request)})


@require_POST
def prompt_version_promote(request: HttpRequest, name: str, version: int) -> HttpResponse:
    found = get_or_404(selectors.prompt_version_get, prompt_name=name, version=version)
    env = request.POST.get("to", "")
    strategy, policy = strategy_of(request)
    return call_and_redirect(
        request,
        lambda: services.promotion_request_create(
            version=found, to_stage=env, reason=request.POST.get("reason", ""), actor=request.user,
            override_reason=request.POST.get("override_reason", ""), strategy=strategy, policy=policy,
        ),
        success=requested_text(name, version, env, strategy, policy) if strategy == PromotionStrategy.CANARY else f"Requested {name} v{version} → {env}.",
        fallback=reverse("registry:prompt-version-detail", args=[name, version]),
    )


@require_POST
def prompt_rollback(request: HttpRequest, name: str) -> HttpResponse:
    env = request.POST.get("environment", "")
    return call_and_redirect(
        request,
        lambda: services.prompt_rollback(prompt_name=name, environment=env, reason=request.POST.get("reason", ""), actor=request.user),
        success=f"Rolled back {name} {env} to the version it ran before.",
        fallback=reverse("registry:prompt-detail", args=[name]),
    )


@require_POST
def prompt_import(request: HttpRequest) -> HttpResponse:
    """Upload a .tar.gz or .zip of a prompts folder (the same import as the API and the command).
    The role is checked before the archive is read or unpacked: a viewer's upload is never opened."""
    upload = request.FILES.get("archive")
    try:
        require_role(request.user, EDITOR, "Importing prompts")
        if upload is None:
            raise ValidationFailed("Choose a .tar.gz or .zip of your prompts folder.")
        result = services.prompts_import(files=services.archive_files(read_upload(upload, limit=settings.MLOPS_PROMPT_ARCHIVE_MAX_BYTES, what="The archive"), filename=upload.name), actor=request.user)
    except DomainError as exc:
        for problem in exc.extra.get("problems", [])[:20]:
            messages.error(request, f"{problem['file']}:{problem['line'] or ''} {problem['message']}")
        messages.error(request, exc.message if not exc.extra.get("problems") else "Nothing was imported.")
    else:
        messages.success(
            request, f"Imported: {len(result.created)} created, {len(result.unchanged)} unchanged, {len(result.requested)} environment change(s) requested."
        )
    return redirect_back(request, reverse("registry:prompt-list"))

