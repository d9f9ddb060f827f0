"""HTML pages of operations, cost and GenAI quality: stored roll-ups in, charts and totals out.

Every page takes a time range (`?range=24h|7d|30d`, or `?start=&end=` ISO dates, the end day
included) and the operations and quality pages a version filter (`?version=2&version=3`, all
versions when none); input that cannot be read falls back to the default with a message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from mlops_site.exceptions import DomainError

from . import charts_ops, selectors, services
from .models import AlertMetric, AlertState
from .services.ops_alerts import MODEL_DEFAULTS, PROMPT_DEFAULTS

RANGES = {"24h": ("24 h", timedelta(hours=24)), "7d": ("7 d", timedelta(days=7)), "30d": ("30 d", timedelta(days=30))}
DEFAULT_RANGE = "24h"
MAX_WINDOW = timedelta(days=366)
KINDS = ("model", "prompt")
TOP_PROMPTS = 5  # lines on the cost-per-request chart
MAX_BUDGETS = 12  # burn-down charts on the cost page (each reads its status: two queries)
M = AlertMetric


# --- the range picker and the version filter ------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    preset: str  # a key of RANGES, or "custom"

    @property
    def first_day(self) -> str:
        return self.start.date().isoformat()

    @property
    def last_day(self) -> str:
        """The end as an inclusive day, as the date inputs show it."""
        return (self.end - timedelta(microseconds=1)).date().isoformat()


def _moment(raw: str, *, end: bool) -> datetime:
    """An ISO date (a whole UTC day: its start, or for an end the next day's start) or an ISO date and time (UTC when naive)."""
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        when = datetime.fromisoformat(raw)
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return datetime.combine(day, time.min, tzinfo=UTC) + (timedelta(days=1) if end else timedelta())


def window_from(request: HttpRequest, now: datetime) -> Window:
    """The window a page shows: custom start/end when given, else a preset; bad input -> the default, with a message."""
    default = Window(now - RANGES[DEFAULT_RANGE][1], now, DEFAULT_RANGE)
    raw_start, raw_end = request.GET.get("start", "").strip(), request.GET.get("end", "").strip()
    if raw_start or raw_end:
        try:
            if not raw_start:
                raise ValueError("a start date is needed")
            start, end = _moment(raw_start, end=False), min(_moment(raw_end, end=True) if raw_end else now, now)
            if start >= end:
                raise ValueError("the start must be before the end, and in the past")
            if end - start > MAX_WINDOW:
                raise ValueError("at most 366 days")
        except (ValueError, OverflowError) as exc:
            messages.warning(request, f"Could not use that time range ({exc}); showing the last 24 hours. Dates are YYYY-MM-DD (UTC).")
            return default
        return Window(start, end, "custom")
    key = request.GET.get("range", DEFAULT_RANGE)
    if key not in RANGES:
        messages.warning(request, f"Unknown range {key[:20]!r}: choose 24h, 7d or 30d. Showing the last 24 hours.")
        return default
    return Window(now - RANGES[key][1], now, key)


def versions_from(request: HttpRequest, available: dict[int, int]) -> list[int] | None:
    """The version numbers ticked in the filter that exist (None: all versions); anything else is dropped with a message."""
    chosen, unknown = set(), []
    for raw in filter(None, request.GET.getlist("version")):
        number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 10 else None
        if number in available:
            chosen.add(number)
        else:
            unknown.append(raw[:20])
    if unknown:
        messages.warning(request, f"Ignored unknown version(s): {', '.join(unknown)}.")
    return sorted(chosen) or None


def _picker(request: HttpRequest, window: Window, available: dict[int, int] | None, chosen: list[int] | None, keep: list[tuple[str, str]]) -> dict:
    """Context of _range_picker.html: preset links that keep the other filters, the custom dates, the version boxes."""
    presets = []
    for key, (text, _) in RANGES.items():
        params = request.GET.copy()
        for name in ("start", "end", "range"):
            params.pop(name, None)
        params["range"] = key
        presets.append({"key": key, "text": text, "query": params.urlencode(), "active": window.preset == key})
    return {
        "window": window, "presets": presets, "keep": keep,
        "version_boxes": [{"number": n, "checked": chosen is not None and n in chosen} for n in sorted(available or {}, reverse=True)],
        "chosen": chosen,
    }


def _subject(kind: str, name: str) -> dict[int, int]:
    if kind not in KINDS:
        raise Http404("Operations pages are for a model or a prompt.")
    available = selectors.subject_versions(kind=kind, name=name)
    if available is None:
        raise Http404(f"No {kind} {name!r}.")
    return available


def _threshold(rules: list, metric: str, default: float) -> float:
    """The line to draw for a metric: the subject's own rule when it has one, else the default rule's threshold."""
    return next((r.threshold for r in rules if r.metric == metric), default)


def _defaults(kind: str) -> dict[str, float]:
    rows = MODEL_DEFAULTS if kind == "model" else PROMPT_DEFAULTS
    return {metric: float(settings.MLOPS_LATENCY_SLA_MS) if threshold == "sla" else threshold for _, metric, _, threshold in rows}


def _chart(key: str, figure: dict) -> dict:
    return {"id": f"{key}-chart", "script": f"{key}-figure", "figure": figure}


# --- pages ------------------------------------------------------------------------------------------


def operations(request: HttpRequest, kind: str, name: str) -> HttpResponse:
    """Throughput, errors and latency of a model or prompt over the window; TTFT and tokens for prompts."""
    available = _subject(kind, name)
    now = timezone.now()
    window = window_from(request, now)
    chosen = versions_from(request, available)
    series = selectors.rollup_series(kind=kind, name=name, versions=chosen, start=window.start, end=window.end)
    totals = series.totals
    rules = selectors.subject_rules(kind=kind, name=name)
    defaults = _defaults(kind)
    charts = []
    if totals.requests:
        x = series.column("bucket")
        p95_limit = _threshold(rules, M.LATENCY_P95, defaults[M.LATENCY_P95])
        p95_text = f"SLA {p95_limit:,.0f} ms" if kind == "model" else f"P95 limit {p95_limit / 1000:g} s"
        error_limit = _threshold(rules, M.ERROR_RATE, defaults[M.ERROR_RATE])
        charts = [
            _chart("throughput", charts_ops.time_series(title="Throughput", x=x, series={"requests/s": series.column("throughput")}, y_title="requests/s")),
            _chart("errors", charts_ops.time_series(
                title="Error rate", x=x, series={"error rate": series.column("error_rate")}, y_title="share of requests", y_format=".1%",
                lines=[(error_limit, f"alert above {error_limit * 100:g}%")],
            )),
            _chart("latency", charts_ops.time_series(
                title="Latency (ms)", x=x, y_title="ms", lines=[(p95_limit, p95_text)],
                series={"P50": series.column("latency_p50"), "P95": series.column("latency_p95"), "P99": series.column("latency_p99")},
            )),
        ]
        if kind == "prompt":
            ttft_limit = _threshold(rules, M.TTFT_P95, defaults[M.TTFT_P95])
            charts += [
                _chart("ttft", charts_ops.time_series(
                    title="Time to first token P95 (ms)", x=x, series={"TTFT P95": series.column("ttft_p95")}, y_title="ms",
                    lines=[(ttft_limit, f"limit {ttft_limit / 1000:g} s")],
                )),
                _chart("tokens", charts_ops.time_series(
                    title="Tokens per request", x=x, y_title="tokens",
                    series={"input": series.column("input_tokens_avg"), "output": series.column("output_tokens_avg")},
                )),
            ]
    context = {
        "kind": kind, "name": name, "totals": totals, "series": series, "charts": charts,
        "firing": [r for r in rules if r.state != AlertState.OK], "rule_count": len(rules),
        **_picker(request, window, available, chosen, []),
    }
    return render(request, "monitoring/operations.html", context)


def quality(request: HttpRequest, name: str) -> HttpResponse:
    """Judge score, faithfulness, guardrail triggers and thumbs-up share of a prompt, and its lowest judge scores."""
    available = _subject("prompt", name)
    now = timezone.now()
    window = window_from(request, now)
    chosen = versions_from(request, available)
    series = selectors.rollup_series(kind="prompt", name=name, versions=chosen, start=window.start, end=window.end)
    totals = series.totals
    rules = selectors.subject_rules(kind="prompt", name=name)
    defaults = _defaults("prompt")
    x = series.column("bucket")
    signals = [
        # key, title, column, count of the window, rule metric, y format, line text
        ("judge", "Judge score (average)", "judge_avg", totals.judge_count, M.JUDGE_SCORE, ".2f", "alert below {:g}"),
        ("faithfulness", "Faithfulness (average)", "faithfulness_avg", totals.faithfulness_count, M.FAITHFULNESS, ".2f", "alert below {:g}"),
        ("guardrail", "Guardrail trigger rate", "guardrail_rate", totals.guardrail_known, M.GUARDRAIL_RATE, ".1%", "alert above {:g}%"),
        ("thumbs", "Thumbs-up share of feedback", "thumbs_up_share", totals.feedback_count, M.THUMBS_UP_SHARE, ".0%", "alert below {:g}%"),
    ]
    charts, missing = [], []
    for key, title, column, count, metric, y_format, text in signals:
        if not count:
            missing.append(title.split(" (")[0].lower())
            continue
        limit = _threshold(rules, metric, defaults[metric])
        shown = limit * 100 if y_format.endswith("%") else limit
        figure = charts_ops.time_series(title=title, x=x, series={title.split(" (")[0]: series.column(column)}, y_title="", y_format=y_format,
                                        lines=[(limit, text.format(shown))])
        charts.append(_chart(key, figure))
    ids = [available[v] for v in chosen] if chosen else list(available.values())
    number = {pk: v for v, pk in available.items()}
    examples = [{**e, "version": number[e["prompt_version_id"]]} for e in selectors.low_score_examples(version_ids=ids, start=window.start, end=window.end)]
    context = {
        "name": name, "totals": totals, "series": series, "charts": charts, "missing": missing, "examples": examples,
        "firing": [r for r in rules if r.state != AlertState.OK and r.metric in (M.JUDGE_SCORE, M.FAITHFULNESS, M.GUARDRAIL_RATE, M.THUMBS_UP_SHARE)],
        **_picker(request, window, available, chosen, []),
    }
    return render(request, "monitoring/quality.html", context)


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
        figure = charts_ops.budget_burndown(
            name=budget.name, amount=budget.amount_usd, thresholds=budget.thresholds, period_start=status.period_start, period_end=status.period_end,
            now=now, hourly=hourly[budget.pk], forecast=status.forecast_usd,
        )
        burndowns.append({"budget": budget, "status": status, **_chart(f"budget-{budget.pk}", figure)})
    charts, has_spend = [], any(row.cost_usd for row in spend)
    if has_spend:
        charts.append(_chart("spend", charts_ops.spend_per_day([tuple(row) for row in spend], by=by)))
    if per_request:
        charts.append(_chart("cost-per-request", charts_ops.cost_per_request(per_request)))
    group_links = []
    for key in KINDS[::-1]:
        params = request.GET.copy()
        params["by"] = key
        group_links.append({"by": key, "query": params.urlencode(), "active": key == by})
    context = {
        "by": by, "group_links": group_links, "charts": charts, "has_spend": has_spend, "table": table, "burndowns": burndowns, "more_budgets": len(budgets) > MAX_BUDGETS,
        "missing_total": sum(row.pricing_missing for row in table),
        **_picker(request, window, None, None, [("by", by)]),
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
    try:
        budget = services.budget_set(
            name=post.get("name", ""), amount_usd=amount[0] if amount and len(amount) == 1 else float("nan"),
            period=post.get("period", "day"), scope=post.get("scope", "all"),
            members=[m.strip() for m in post.get("members", "").replace("\n", ",").split(",") if m.strip()],
            thresholds=[s / 100 for s in shares] if shares else [], actor=request.user,
        )
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Budget “{budget.name}” saved: {budget.amount_usd:,.2f} USD per {budget.period}.")
    return redirect(reverse("monitoring:costs") + "#budgets")
