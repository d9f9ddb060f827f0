"""Pages of LLM cost: spend, cost per request and budgets (with the budget form), and the price table (with its form)."""

from __future__ import annotations

from datetime import date
from urllib.parse import urlencode

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from mlops_site.exceptions import DomainError, ValidationFailed
from mlops_site.pages import call_and_redirect, paginate
from mlops_site.roles import EDITOR, require_role
from mlops_site.uploads import read_upload

from .. import charts, selectors, services
from ..services.prices import MAX_PRICE_FILE_BYTES
from .operations import KINDS, chart_entry, range_picker, window_from

TOP_PROMPTS = 5  # lines on the cost-per-request chart
MAX_BUDGETS = 12  # burn-down charts on the cost page (each reads its status: two queries)
RECENT_BUDGET_ALERTS = 20
PRICES_PAGE_SIZE = 100
PER_MILLION = 1_000_000
FORM_FIELDS = ("pattern", "input", "output", "cached", "reasoning", "cache_creation", "effective_from")


def costs(request: HttpRequest) -> HttpResponse:
    """Spend per day by prompt or model, cost per request of the top prompts, budget burn-downs, the most expensive prompts."""
    now = timezone.now()
    window = window_from(request, now)
    by = request.GET.get("by", "prompt")
    if by not in KINDS:
        messages.warning(request, f"Unknown grouping {by[:20]!r}: choose prompt or model. Showing spend by prompt.")
        by = "prompt"
    spend = selectors.rollup_spend(start=window.start, end=window.end, group_by=by)
    table = selectors.prompt_costs(start=window.start, end=window.end)
    top = [row.name for row in table if row.cost_requests][:TOP_PROMPTS]
    per_request = selectors.cost_per_request_series(names=top, start=window.start, end=window.end)
    budgets = list(selectors.budget_list(enabled=True)[: MAX_BUDGETS + 1])
    hourly = selectors.budget_hourly_spend(budgets=budgets[:MAX_BUDGETS], now=now)
    burndowns = []
    for budget in budgets[:MAX_BUDGETS]:
        status = selectors.budget_status(budget=budget, now=now)
        figure = charts.budget_burndown(
            name=budget.name, amount=budget.amount_usd, thresholds=budget.thresholds, period_start=status.period_start, period_end=status.period_end,
            now=now, hourly=hourly[budget.pk], forecast=status.forecast_usd,
        )
        burndowns.append({"budget": budget, "status": status, **chart_entry(f"budget-{budget.pk}", figure)})
    figures, has_spend = [], any(row.cost_usd for row in spend)
    if has_spend:
        figures.append(chart_entry("spend", charts.spend_per_day([tuple(row) for row in spend], by=by)))
    if per_request:
        figures.append(chart_entry("cost-per-request", charts.cost_per_request(per_request)))
    group_links = []
    for key in KINDS[::-1]:
        params = request.GET.copy()
        params["by"] = key
        group_links.append({"by": key, "query": params.urlencode(), "active": key == by})
    context = {
        "by": by, "group_links": group_links, "charts": figures, "has_spend": has_spend, "table": table, "burndowns": burndowns, "more_budgets": len(budgets) > MAX_BUDGETS,
        "budget_alerts": selectors.budget_alert_list(limit=RECENT_BUDGET_ALERTS),
        "missing_total": sum(row.pricing_missing for row in table),
        **range_picker(request, window, None, None, [("by", by)]),
    }
    return render(request, "monitoring/costs.html", context)


def _numbers(text: str) -> list[float] | None:
    try:
        return [float(part) for part in text.replace("%", " ").replace(",", " ").split()]
    except ValueError:
        return None


@require_POST
def budget_save(request: HttpRequest) -> HttpResponse:
    """The cost page's form: create or change a budget through services.budget_set (which checks it)."""
    post = request.POST
    amount = _numbers(post.get("amount_usd", ""))
    shares = _numbers(post.get("thresholds", "80 100"))
    return call_and_redirect(
        request,
        lambda: services.budget_set(
            name=post.get("name", ""), amount_usd=amount[0] if amount and len(amount) == 1 else float("nan"),
            period=post.get("period", "day"), scope=post.get("scope", "all"),
            members=[m.strip() for m in post.get("members", "").replace("\n", ",").split(",") if m.strip()],
            thresholds=[s / 100 for s in shares] if shares else [], actor=request.user,
        ),
        success=lambda budget: f"Budget “{budget.name}” saved: {budget.amount_usd:,.2f} USD per {budget.period}.",
        fallback=reverse("monitoring:costs") + "#budgets",
    )


def _per_token(raw: str, *, required: bool = False):
    """The form asks for USD per 1M tokens (how providers list them); the table keeps USD per token.
    Text that is not a number (or a required price left empty) goes to the service as it is, so its message is the one shown."""
    raw = raw.strip()
    if not raw and not required:
        return None
    try:
        return float(raw) / PER_MILLION
    except ValueError:
        return raw


def _day(raw: str):
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        return raw


def _per_million(value: float | None) -> str:
    return "" if value is None else f"{value * PER_MILLION:.6g}"


def price_list(request: HttpRequest) -> HttpResponse:
    """GET: the prices, per 1M tokens (`?q=` searches the pattern). POST: add one through services.price_set."""
    form = {"effective_from": timezone.now().date().isoformat()}
    status = 200
    if request.method == "POST":
        form = {name: request.POST.get(name, "") for name in FORM_FIELDS}
        try:
            price = services.price_set(
                pattern=form["pattern"], input_per_token=_per_token(form["input"], required=True),
                output_per_token=_per_token(form["output"], required=True),
                cached_input_per_token=_per_token(form["cached"]), reasoning_per_token=_per_token(form["reasoning"]),
                cache_creation_per_token=_per_token(form["cache_creation"]), effective_from=_day(form["effective_from"]), actor=request.user,
            )
        except DomainError as exc:
            # Shown on the page itself (not after a redirect) so the form keeps what was typed.
            messages.error(request, exc.message)
            status = exc.status
        else:
            messages.success(request, f"Price of {price.pattern} from {price.effective_from:%Y-%m-%d} added.")
            return redirect("monitoring:prices")
    search = request.GET.get("q", "").strip()
    page = paginate(request, selectors.price_list(search=search), PRICES_PAGE_SIZE)
    rows = [
        {
            "price": p, "input": _per_million(p.input_per_token), "output": _per_million(p.output_per_token),
            "cached": _per_million(p.cached_input_per_token), "reasoning": _per_million(p.reasoning_per_token),
            "cache_creation": _per_million(p.cache_creation_per_token),
            "long_input": _per_million(p.long_context_input_per_token), "long_output": _per_million(p.long_context_output_per_token),
        }
        for p in page
    ]
    context = {"page": page, "rows": rows, "search": search, "qs": urlencode({"q": search}) if search else "", "form": form}
    return render(request, "monitoring/prices.html", context, status=status)


@require_POST
def prices_import(request: HttpRequest) -> HttpResponse:
    """POST: import an uploaded LiteLLM price map (`file`, in force from `effective_from`, default today), or with
    `defaults` the snapshot shipped with the server (in force from its date); only changed prices are added."""

    def run():
        require_role(request.user, EDITOR, "Importing prices")  # before the form is read: a viewer hears about the role, not the file
        if request.POST.get("defaults"):
            return services.prices_import_defaults(actor=request.user)
        upload = request.FILES.get("file")
        if upload is None:
            raise ValidationFailed("Choose a LiteLLM price file (model_prices_and_context_window.json) to import.")
        raw_day = request.POST.get("effective_from", "").strip()
        day = _day(raw_day) if raw_day else None
        if isinstance(day, str):
            raise ValidationFailed(f"In force from {day[:20]!r}: a date as YYYY-MM-DD.")
        return services.prices_import_file(data=read_upload(upload, limit=MAX_PRICE_FILE_BYTES, what="The price file"),
                                           effective_from=day, actor=request.user, filename=upload.name)

    return call_and_redirect(
        request, run,
        success=lambda done: (
            f"Prices from {done.effective_from:%Y-%m-%d} ({done.source}): {len(done.result.created)} added (new or changed), "
            f"{len(done.result.unchanged)} unchanged, {len(done.result.conflicts)} conflicts (another price from that day, left as it is)."
        ),
        fallback=reverse("monitoring:prices"),
    )
