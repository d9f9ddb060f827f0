"""Plotly figures of the monitoring pages: stored results in, figure dicts out. No ORM, no HTTP.

Drift (the report page): a PSI heatmap over report windows, reference vs current histograms, a
column's drift history. Operations, cost and GenAI quality: time series with labelled reference
lines (an SLA, an alert threshold, a budget: layout shapes, so they stay put when a series is empty),
spend per day, cost per request, budget burn-downs. Performance: a metric per labelled window beside
its baseline and alert line. Times arrive as aware UTC datetimes and leave as
"YYYY-MM-DD HH:MM" text (UTC; the axes say so), the form plotly.js parses the same in every browser
time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

from mlops_site.charts import PALETTE, base_layout, downsample, label

from .drift import Severity

# --- drift ----------------------------------------------------------------------------------------

SEVERITY_COLOR = {Severity.SIGNIFICANT: "#dc2626", Severity.MODERATE: "#d97706", Severity.NONE: "#16a34a", Severity.NO_DATA: "#9ca3af"}


def psi_heatmap(reports: list[dict]) -> dict:
    """PSI per feature (rows) over report windows (columns): [{"end": iso, "results": [...]}] oldest first."""
    columns = sorted({r["column"] for rep in reports for r in rep["results"]})
    z = [[next((r["psi"] for r in rep["results"] if r["column"] == col), None) for rep in reports] for col in columns]
    data = [{
        "type": "heatmap", "x": [rep["end"] for rep in reports], "y": [label(c) for c in columns], "z": z,
        "zmin": 0, "zmax": 0.5, "colorscale": [[0, "#f0fdf4"], [0.2, "#fef9c3"], [0.5, "#fdba74"], [1, "#b91c1c"]],
        "colorbar": {"title": {"text": "PSI"}}, "hovertemplate": "%{y} at %{x}: PSI %{z:.3f}<extra></extra>",
    }]
    layout = base_layout(title={"text": "PSI per feature over time", "x": 0}, margin={"l": 16, "r": 16, "t": 36, "b": 48})
    layout["yaxis"] = {**layout["yaxis"], "automargin": True}
    return {"data": data, "layout": layout}


def histogram_overlay(result: dict) -> dict:
    """Reference and current shares per bin (numeric: the reference's decile bins; categorical: categories)."""
    if result["kind"] == "numeric":
        cuts = result["bins"]
        edges = ["-inf", *[f"{c:.4g}" for c in cuts], "+inf"]
        names = [f"[{edges[i]}, {edges[i + 1]})" for i in range(len(edges) - 1)]
    else:
        names = [label(c) for c in result["bins"]]
    data = [
        {"type": "bar", "name": "reference", "x": names, "y": result["reference_share"], "marker": {"color": "#94a3b8"}},
        {"type": "bar", "name": "current", "x": names, "y": result["current_share"], "marker": {"color": "#2563eb"}},
    ]
    title = f"{label(result['column'])}: reference vs current (PSI {result['psi']:.3f})" if result.get("psi") is not None else label(result["column"])
    return {"data": data, "layout": base_layout(barmode="group", title={"text": title, "x": 0}, yaxis={"title": {"text": "share"}, "gridcolor": "#e5e7eb", "tickformat": ".0%"})}


def column_history(reports: list[dict], column: str) -> dict:
    """PSI, JS and the KS statistic of one column across reports (oldest first)."""
    xs, series = [], {"psi": [], "js": [], "ks_statistic": []}
    for rep in reports:
        found = next((r for r in rep["results"] if r["column"] == column), None)
        if found is None:
            continue
        xs.append(rep["end"])
        for key in series:
            series[key].append(found.get(key))
    data = [{"type": "scatter", "mode": "lines+markers", "name": name.replace("_statistic", ""), "x": xs, "y": ys} for name, ys in series.items()]
    shapes = [{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 0.25, "y1": 0.25, "line": {"color": "#dc2626", "dash": "dot", "width": 1}}]
    return {"data": data, "layout": base_layout(title={"text": f"{label(column)}: drift history (dotted: PSI 0.25)", "x": 0}, shapes=shapes)}


# --- operations, cost and GenAI quality ------------------------------------------------------------

LINE_COLOR = "#dc2626"
WARN_COLOR = "#d97706"
HOUR = timedelta(hours=1)
MARKERS_UP_TO = 60  # fewer points than this: draw markers too, so a lone point shows


def _time(when: datetime | date) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if isinstance(when, datetime) else when.isoformat()


def _number(value) -> float | None:
    return None if value is None else float(value)


def reference_line(value: float, text: str, *, color: str = LINE_COLOR, dash: str = "dash", left: bool = False) -> tuple[dict, dict]:
    """A labelled horizontal line across the plot at y = value: (shape, annotation); the label sits above its right (or left) end."""
    shape = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": value, "y1": value, "line": {"color": color, "dash": dash, "width": 1.5}}
    note = {
        "xref": "paper", "x": 0 if left else 1, "yref": "y", "y": value, "text": label(text), "showarrow": False,
        "xanchor": "left" if left else "right", "yanchor": "bottom", "font": {"size": 11, "color": color},
    }
    return shape, note


def _layout(title: str, y_title: str, lines: Sequence[tuple[float, str]], *, y_format: str | None = None, **overrides) -> dict:
    drawn = [reference_line(value, text) for value, text in lines]
    yaxis = {"gridcolor": "#e5e7eb", "zeroline": False, "title": {"text": label(y_title)}, "rangemode": "tozero", "automargin": True}
    if y_format:
        yaxis["tickformat"] = y_format
    return base_layout(
        title={"text": label(title), "x": 0}, xaxis={"gridcolor": "#e5e7eb", "zeroline": False, "type": "date", "title": {"text": "UTC"}},
        yaxis=yaxis, shapes=[s for s, _ in drawn], annotations=[a for _, a in drawn], hovermode="x unified", **overrides,
    )


def time_series(
    *, title: str, x: Sequence[datetime], series: dict[str, Sequence[float | None]], y_title: str,
    lines: Sequence[tuple[float, str]] = (), y_format: str | None = None, dashed: Sequence[str] = (),
) -> dict:
    """One line per entry of `series` over the bucket times `x`, each downsampled to about 2,000 points,
    with labelled dashed reference lines [(y, text), ...] (thresholds, the SLA). None is a gap."""
    xs = [_time(t) for t in x]
    data = []
    for name, ys in series.items():
        px, py = downsample(xs, [_number(v) for v in ys])
        mode = "lines+markers" if len(px) < MARKERS_UP_TO else "lines"
        trace = {"type": "scatter", "mode": mode, "name": label(name), "x": px, "y": py, "marker": {"size": 5}}
        if name in dashed:
            trace["line"] = {"dash": "dot"}
        data.append(trace)
    return {"data": data, "layout": _layout(title, y_title, lines, y_format=y_format)}


def performance_metric(*, title: str, x: Sequence[datetime], values: Sequence[float | None], baseline: float | None, drop_limit: float) -> dict:
    """A performance metric per window (x: the windows' ends) beside the version's baseline (a solid grey line)
    and the alert line at baseline x (1 - drop_limit) (dashed red), both labelled. The y axis is not pinned
    to 0, so a few points of drop stay visible."""
    figure = time_series(title=title, x=x, series={title: values}, y_title="", y_format=".3f")
    if baseline is not None:
        drawn = [
            reference_line(baseline, f"baseline {baseline:.3f}", color="#475569", dash="solid", left=True),
            reference_line(baseline * (1 - drop_limit), f"alert below {baseline * (1 - drop_limit):.3f} ({drop_limit * 100:g} % drop)"),
        ]
        figure["layout"]["shapes"] = [shape for shape, _ in drawn]
        figure["layout"]["annotations"] = [note for _, note in drawn]
    figure["layout"]["yaxis"]["rangemode"] = "normal"
    return figure


def spend_per_day(rows: Sequence[tuple[date, str, float]], *, top: int = 8, by: str = "prompt") -> dict:
    """Known spend per UTC day stacked by name [(day, name, USD), ...]; names past the `top` largest are summed as "other"."""
    totals: dict[str, float] = {}
    for _, name, cost in rows:
        totals[name] = totals.get(name, 0.0) + cost
    ranked = sorted(totals, key=lambda n: (-totals[n], n))
    kept = set(ranked[:top])
    days = sorted({day for day, _, _ in rows})
    index = {day: i for i, day in enumerate(days)}
    stacks: dict[str, list[float]] = {name: [0.0] * len(days) for name in ranked[:top]}
    if len(ranked) > top:
        stacks["other"] = [0.0] * len(days)
    for day, name, cost in rows:
        stacks[name if name in kept else "other"][index[day]] += cost
    xs = [_time(d) for d in days]
    data = [
        {"type": "bar", "name": label(name), "x": xs, "y": ys, "hovertemplate": f"{label(name)}: %{{y:$,.4f}}<extra></extra>"}
        for name, ys in stacks.items()
    ]
    layout = base_layout(
        barmode="stack", title={"text": f"Spend per day by {by} (USD, known cost)", "x": 0},
        xaxis={"gridcolor": "#e5e7eb", "type": "date", "title": {"text": "day (UTC)"}}, yaxis={"gridcolor": "#e5e7eb", "title": {"text": "USD"}, "tickformat": "$,.2f", "automargin": True},
    )
    return {"data": data, "layout": layout}


def cost_per_request(series: dict[str, tuple[Sequence[datetime], Sequence[float | None]]]) -> dict:
    """Cost per priced request over time, one line per prompt: {name: (times, USD per request)}."""
    data = []
    for name, (times, ys) in series.items():
        px, py = downsample([_time(t) for t in times], [_number(v) for v in ys])
        mode = "lines+markers" if len(px) < MARKERS_UP_TO else "lines"
        data.append({"type": "scatter", "mode": mode, "name": label(name), "x": px, "y": py, "marker": {"size": 5}})
    layout = _layout("Cost per request of the top prompts (USD, priced requests)", "USD per request", (), y_format="$,.4f")
    return {"data": data, "layout": layout}


def budget_burndown(
    *, name: str, amount: float, thresholds: Sequence[float], period_start: datetime, period_end: datetime, now: datetime,
    hourly: Sequence[tuple[datetime, float]], forecast: float | None,
) -> dict:
    """Cumulative spend of a budget's period against its amount (solid line) and shares (dashed), with the forecast
    as a dashed line from now to the period end. `hourly` is [(hour start, USD)], the spend counted at the hour's end."""
    xs, ys, total = [_time(period_start)], [0.0], 0.0
    for hour, cost in hourly:
        total += cost
        xs.append(_time(min(hour + HOUR, now)))
        ys.append(total)
    if xs[-1] != _time(now):
        xs.append(_time(now))
        ys.append(total)
    xs, ys = downsample(xs, ys)
    data = [{"type": "scatter", "mode": "lines", "name": "spent", "x": xs, "y": ys, "line": {"color": PALETTE[0], "shape": "hv"},
             "fill": "tozeroy", "fillcolor": "rgba(37,99,235,0.08)"}]
    if forecast is not None:
        data.append({"type": "scatter", "mode": "lines", "name": "forecast", "x": [_time(now), _time(period_end)], "y": [total, forecast],
                     "line": {"color": PALETTE[0], "dash": "dash"}})
    drawn = [reference_line(amount, f"budget {amount:,.2f} USD", dash="solid")]
    drawn += [reference_line(share * amount, f"{share:.0%}: {share * amount:,.2f} USD", color=WARN_COLOR, left=True) for share in thresholds if share != 1.0]
    layout = base_layout(
        title={"text": f"{label(name)}: spend this period", "x": 0},
        xaxis={"gridcolor": "#e5e7eb", "type": "date", "range": [_time(period_start), _time(period_end)], "title": {"text": "UTC"}},
        yaxis={"gridcolor": "#e5e7eb", "title": {"text": "USD"}, "tickformat": "$,.2f", "rangemode": "tozero", "automargin": True},
        shapes=[s for s, _ in drawn], annotations=[a for _, a in drawn], hovermode="x unified",
    )
    return {"data": data, "layout": layout}
