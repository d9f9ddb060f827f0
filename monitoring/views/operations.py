"""Pages of operations and GenAI quality, and the time range picker they share with the cost page: roll-ups in, charts and totals out.

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
from django.shortcuts import render
from django.utils import timezone

from .. import charts, selectors
from ..models import AlertMetric, AlertState
from ..services.ops_alerts import MODEL_DEFAULTS, PROMPT_DEFAULTS

RANGES = {"24h": ("24 h", timedelta(hours=24)), "7d": ("7 d", timedelta(days=7)), "30d": ("30 d", timedelta(days=30))}
DEFAULT_RANGE = "24h"
MAX_WINDOW = timedelta(days=366)
KINDS = ("model", "prompt")
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


def range_picker(request: HttpRequest, window: Window, available: dict[int, int] | None, chosen: list[int] | None, keep: list[tuple[str, str]]) -> dict:
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


def chart_entry(key: str, figure: dict) -> dict:
    """A figure with the ids its template draws it by: the chart's element and its json_script."""
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
    figures = []
    if totals.requests:
        x = series.column("bucket")
        p95_limit = _threshold(rules, M.LATENCY_P95, defaults[M.LATENCY_P95])
        p95_text = f"SLA {p95_limit:,.0f} ms" if kind == "model" else f"P95 limit {p95_limit / 1000:g} s"
        error_limit = _threshold(rules, M.ERROR_RATE, defaults[M.ERROR_RATE])
        figures = [
            chart_entry("throughput", charts.time_series(title="Throughput", x=x, series={"requests/s": series.column("throughput")}, y_title="requests/s")),
            chart_entry("errors", charts.time_series(
                title="Error rate", x=x, series={"error rate": series.column("error_rate")}, y_title="share of requests", y_format=".1%",
                lines=[(error_limit, f"alert above {error_limit * 100:g}%")],
            )),
            chart_entry("latency", charts.time_series(
                title="Latency (ms)", x=x, y_title="ms", lines=[(p95_limit, p95_text)],
                series={"P50": series.column("latency_p50"), "P95": series.column("latency_p95"), "P99": series.column("latency_p99")},
            )),
        ]
        if kind == "prompt":
            ttft_limit = _threshold(rules, M.TTFT_P95, defaults[M.TTFT_P95])
            figures += [
                chart_entry("ttft", charts.time_series(
                    title="Time to first token P95 (ms)", x=x, series={"TTFT P95": series.column("ttft_p95")}, y_title="ms",
                    lines=[(ttft_limit, f"limit {ttft_limit / 1000:g} s")],
                )),
                chart_entry("tokens", charts.time_series(
                    title="Tokens per request", x=x, y_title="tokens",
                    series={"input": series.column("input_tokens_avg"), "output": series.column("output_tokens_avg")},
                )),
            ]
    context = {
        "kind": kind, "name": name, "totals": totals, "series": series, "charts": figures,
        "firing": [r for r in rules if r.state != AlertState.OK], "rule_count": len(rules),
        **range_picker(request, window, available, chosen, []),
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
    figures, missing = [], []
    for key, title, column, count, metric, y_format, text in signals:
        if not count:
            missing.append(title.split(" (")[0].lower())
            continue
        limit = _threshold(rules, metric, defaults[metric])
        shown = limit * 100 if y_format.endswith("%") else limit
        figure = charts.time_series(title=title, x=x, series={title.split(" (")[0]: series.column(column)}, y_title="", y_format=y_format,
                                        lines=[(limit, text.format(shown))])
        figures.append(chart_entry(key, figure))
    ids = [available[v] for v in chosen] if chosen else list(available.values())
    number = {pk: v for v, pk in available.items()}
    examples = [{**e, "version": number[e["prompt_version_id"]]} for e in selectors.low_score_examples(version_ids=ids, start=window.start, end=window.end)]
    context = {
        "name": name, "totals": totals, "series": series, "charts": figures, "missing": missing, "examples": examples,
        "firing": [r for r in rules if r.state != AlertState.OK and r.metric in (M.JUDGE_SCORE, M.FAITHFULNESS, M.GUARDRAIL_RATE, M.THUMBS_UP_SHARE)],
        **range_picker(request, window, available, chosen, []),
    }
    return render(request, "monitoring/quality.html", context)
