"""Plotly figures of the experiment and rollout pages: results in, figure dicts out. No ORM.

The series (experiments/services/results.py, `results["series"]`) is cumulative by UTC day of exposure:
on day d, the units exposed up to d with all their outcomes so far. A day without enough data holds
None, which Plotly draws as a gap. Rates and their differences are drawn in percent and points.

A rollout's series (experiments.selectors.rollout_series) is the candidate against the baseline per roll-up
bucket over the rollout; its charts draw the policy's trigger and gate thresholds and the stage changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC
from typing import TYPE_CHECKING

from mlops_site.charts import PALETTE, base_layout, downsample, label
from mlops_site.formatting import number_text

if TYPE_CHECKING:  # the selectors read the database; the builders only take their plain results
    from .selectors import RolloutSeries

FILL_OPACITY = {"always_valid": 0.12, "fixed": 0.28}


def _finite(value) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _scaled(values: list, factor: float) -> list[float | None]:
    out = []
    for v in values:
        v = _finite(v)
        out.append(None if v is None else v * factor)
    return out


def _rgba(color: str, opacity: float) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{opacity})"


def _day_axis(axis: dict, days: list) -> dict:
    """The x axis of UTC days: one tick a day while there are few (not Plotly's 12-hour ticks)."""
    axis = {**axis, "title": {"text": "units exposed up to (UTC day)"}, "type": "date", "tickformat": "%b %-d"}
    return {**axis, "dtick": 86400000} if len(days) <= 14 else axis


def _is_proportion(series: dict) -> bool:
    return series.get("kind") == "proportion"


def cumulative_metric(series: dict) -> dict:
    """One line per variant: the primary metric (a rate in percent, or a mean) of the units exposed up to each day."""
    factor = 100.0 if _is_proportion(series) else 1.0
    days = list(series.get("days") or [])
    data = []
    for i, arm in enumerate(series.get("arms") or []):
        xs, ys = downsample(days, _scaled(arm["value"], factor))
        _, units = downsample(days, list(arm["units"]))
        data.append({
            "type": "scatter", "mode": "lines+markers", "name": label(arm["variant"]), "x": xs, "y": ys, "customdata": units,
            "line": {"color": PALETTE[i % len(PALETTE)]},
            "hovertemplate": "%{x}: %{y:.4g}" + (" %" if factor == 100 else "") + " (%{customdata} units)<extra>" + label(arm["variant"]) + "</extra>",
        })
    what = "rate (%)" if factor == 100 else "mean per unit"
    layout = base_layout(title={"text": f"{label(series.get('metric', ''))}: cumulative {what} per variant", "x": 0})
    layout["xaxis"] = _day_axis(layout["xaxis"], days)
    layout["yaxis"] = {**layout["yaxis"], "title": {"text": what}}
    return {"data": data, "layout": layout}


def _band(xs: list, low: list, high: list, name: str, color: str, opacity: float, group: str, dash: str) -> list[dict]:
    """An interval as two traces: the upper edge, then the lower edge filled up to it."""
    edge = {"type": "scatter", "mode": "lines", "x": xs, "legendgroup": group, "hoverinfo": "skip",
            "line": {"color": _rgba(color, min(1.0, opacity * 3)), "width": 1, "dash": dash}}
    return [
        {**edge, "name": name, "y": high, "showlegend": False},
        {**edge, "name": name, "y": low, "fill": "tonexty", "fillcolor": _rgba(color, opacity)},
    ]


def lift_over_time(series: dict, alpha: float) -> dict:
    """Per variant against the control: the difference B - A (points of a rate, or the metric's units) with its
    fixed-horizon interval (inner band) and its always-valid interval (outer band, dashed), day by day."""
    factor = 100.0 if _is_proportion(series) else 1.0
    level = f"{(1 - alpha) * 100:.4g} %"
    days = list(series.get("days") or [])
    data = []
    for i, lift in enumerate(series.get("lifts") or [], start=1):
        color = PALETTE[i % len(PALETTE)]
        name = label(lift["variant"])
        xs, diff = downsample(days, _scaled(lift["diff"], factor))
        _, low = downsample(days, _scaled(lift["ci_low"], factor))
        _, high = downsample(days, _scaled(lift["ci_high"], factor))
        _, av_low = downsample(days, _scaled(lift["always_valid_low"], factor))
        _, av_high = downsample(days, _scaled(lift["always_valid_high"], factor))
        data += _band(xs, av_low, av_high, f"{name}: always-valid interval", color, FILL_OPACITY["always_valid"], name, "dash")
        data += _band(xs, low, high, f"{name}: {level} interval (fixed horizon)", color, FILL_OPACITY["fixed"], name, "solid")
        data.append({"type": "scatter", "mode": "lines+markers", "name": f"{name} − control", "x": xs, "y": diff, "legendgroup": name,
                     "line": {"color": color, "width": 2}, "hovertemplate": "%{x}: %{y:+.4g}" + (" points" if factor == 100 else "") + f"<extra>{name}</extra>"})
    unit = "points" if factor == 100 else "metric units"
    layout = base_layout(title={"text": f"{label(series.get('metric', ''))}: difference with the control and its intervals", "x": 0},
                         shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 0, "y1": 0, "line": {"color": "#475569", "width": 1}}])
    layout["xaxis"] = _day_axis(layout["xaxis"], days)
    layout["yaxis"] = {**layout["yaxis"], "title": {"text": f"B − A ({unit})"}}
    return {"data": data, "layout": layout}


def has_points(series: dict | None) -> bool:
    """Whether the series has any value to draw (a chart of only gaps says nothing)."""
    if not series or not series.get("days"):
        return False
    return any(_finite(v) is not None for arm in series.get("arms") or [] for v in arm.get("value") or [])


# --- canary rollouts ----------------------------------------------------------------------------------------------------

# How each metric of a rollout page is drawn: its title, its axis, the factor from the stored figure (rates are drawn in
# percent), and the hover format.
ROLLOUT_METRIC_SPEC = {
    "error_rate": {"title": "Error rate", "axis": "errors (%)", "factor": 100.0, "unit": " %"},
    "latency_p95": {"title": "P95 latency", "axis": "ms", "factor": 1.0, "unit": " ms"},
    "guardrail_rate": {"title": "Guardrail rate", "axis": "guardrail triggered (%)", "factor": 100.0, "unit": " %"},
    "negative_feedback_rate": {"title": "Negative feedback rate", "axis": "thumbs down (% of feedback)", "factor": 100.0, "unit": " %"},
    "cost_per_request": {"title": "Cost per request", "axis": "USD per request", "factor": 1.0, "unit": " USD"},
}
# The gates drawn on a metric's chart, over the stage they guard: the candidate must stay below the line.
GATE_METRIC = {"error_rate": "error_rate", "latency_p95": "latency_p95"}
SIDE_COLOR = {"candidate": PALETTE[0], "baseline": "#64748b"}
ACTION_COLOR = {"rollback": "#dc2626", "pause": "#d97706"}
GATE_COLOR = "#16a34a"
MARK_COLOR = {"rollback": "#dc2626", "pause": "#d97706", "complete": "#16a34a"}
MARK_TEXT = {"rollback": "rolled back", "complete": "completed", "pause": "paused", "resume": "resumed"}  # else the stage's name


def _utc(when) -> str:
    """An aware datetime as "YYYY-MM-DD HH:MM:SS" in UTC (the form plotly.js reads the same in every browser time zone)."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _limit_text(value: float, factor: float, unit: str) -> str:
    return f"{number_text(value * factor)}{unit}"


def _trigger_name(trigger: dict, factor: float, unit: str) -> str:
    verb = "roll back" if trigger["action"] == "rollback" else "pause"
    if trigger.get("relative"):
        return f"{verb} above {number_text(trigger['threshold'])} × baseline"
    return f"{verb} above {_limit_text(trigger['threshold'], factor, unit)}"


def _gate_name(stage: dict, unit: str) -> str:
    gate = stage["gate"]
    if gate["name"] == "error_rate":
        return f"{stage['name']} gate: below baseline + {number_text(gate['threshold'] * 100)} points"
    return f"{stage['name']} gate: below {number_text(gate['threshold'])} × baseline"


def _stage_of_buckets(buckets: Sequence, marks: Sequence) -> list[int | None]:
    """The stage in force at each bucket's start: the last stage-moving decision at or before it (before the first
    decision, the first one's stage). None after the rollout ended (rollback, complete)."""
    ordered = sorted(marks, key=lambda m: m.at)
    out: list[int | None] = []
    k = 0
    for bucket in buckets:
        while k + 1 < len(ordered) and ordered[k + 1].at <= bucket:
            k += 1
        out.append(ordered[k].stage_index if ordered else None)
    return out


def rollout_metric(*, metric: str, series: RolloutSeries, stages: Sequence[dict], triggers: Sequence[dict], candidate: str, baseline: str) -> dict:
    """Candidate against baseline of one metric over the rollout (`series`: experiments.selectors.rollout_series), with
    the policy's thresholds drawn in: each trigger of the metric (an absolute one as a horizontal line, a relative one as
    the threshold x the baseline's value of each point), each stage's gate on the metric over the time the rollout spent in
    that stage (error rate: baseline + the threshold in points; P95: threshold x baseline), and the stage changes as
    vertical lines. Rates are drawn in percent. None is a gap."""
    spec = ROLLOUT_METRIC_SPEC[metric]
    factor, unit = spec["factor"], spec["unit"]
    xs = [_utc(b) for b in series.buckets]
    values = series.values[metric]
    base = [_finite(v) for v in values["baseline"]]
    data = []
    for side, name in (("candidate", candidate), ("baseline", baseline)):
        px, py = downsample(xs, _scaled(values[side], factor))
        _, requests = downsample(xs, list(series.requests[side]))
        data.append({
            "type": "scatter", "mode": "lines+markers" if len(px) < 60 else "lines", "name": label(name), "x": px, "y": py, "customdata": requests,
            "line": {"color": SIDE_COLOR[side], "width": 2 if side == "candidate" else 1.5}, "marker": {"size": 4},
            "hovertemplate": "%{x}: %{y:.4g}" + unit + " (%{customdata} requests)<extra>" + label(name) + "</extra>",
        })
    shapes, annotations = [], []
    for trigger in triggers:
        if trigger["metric"] != metric:
            continue
        color, name = ACTION_COLOR[trigger["action"]], _trigger_name(trigger, factor, unit)
        if trigger.get("relative"):
            limit = [None if b is None else trigger["threshold"] * b * factor for b in base]
            px, py = downsample(xs, limit)
            data.append({"type": "scatter", "mode": "lines", "name": label(name), "x": px, "y": py, "line": {"color": color, "dash": "dash", "width": 1.5},
                         "hovertemplate": "%{x}: %{y:.4g}" + unit + f"<extra>{label(name)}</extra>"})
        else:
            y = trigger["threshold"] * factor
            shapes.append({"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
                           "line": {"color": color, "dash": "dash", "width": 1.5}})
            annotations.append({"xref": "paper", "x": 1, "yref": "y", "y": y, "text": label(name), "showarrow": False, "xanchor": "right",
                                "yanchor": "bottom", "font": {"size": 11, "color": color}})
    in_stage = _stage_of_buckets(series.buckets, series.stages)
    for index, stage in enumerate(stages):
        gate = stage.get("gate")
        if not gate or GATE_METRIC.get(gate["name"]) != metric or gate.get("threshold") is None:
            continue
        limit = []
        for b, at in zip(base, in_stage, strict=True):
            if b is None or at != index:
                limit.append(None)
            else:
                limit.append((b + gate["threshold"]) * factor if gate["name"] == "error_rate" else gate["threshold"] * b * factor)
        if all(v is None for v in limit):
            continue
        name = _gate_name(stage, unit)
        px, py = downsample(xs, limit)
        data.append({"type": "scatter", "mode": "lines", "name": label(name), "x": px, "y": py, "line": {"color": GATE_COLOR, "dash": "dot", "width": 1.5},
                     "hovertemplate": "%{x}: %{y:.4g}" + unit + f"<extra>{label(name)}</extra>"})
    for i, mark in enumerate(series.stages):
        color = MARK_COLOR.get(mark.action, "#94a3b8")
        x = _utc(mark.at)
        shapes.append({"type": "line", "xref": "x", "x0": x, "x1": x, "yref": "paper", "y0": 0, "y1": 1, "line": {"color": color, "width": 1, "dash": "dot"}})
        # Labels alternate between two heights: stage changes minutes apart would print over each other.
        annotations.append({"xref": "x", "x": x, "yref": "paper", "y": 1 if i % 2 == 0 else 0.93, "text": label(MARK_TEXT.get(mark.action, mark.stage)),
                            "showarrow": False, "xanchor": "left", "yanchor": "bottom", "font": {"size": 10, "color": color}})
    layout = base_layout(
        title={"text": spec["title"], "x": 0}, shapes=shapes, annotations=annotations, hovermode="x unified",
        margin={"l": 56, "r": 16, "t": 48, "b": 48}, legend={"orientation": "h", "y": -0.25},
    )
    layout["xaxis"] = {**layout["xaxis"], "type": "date", "title": {"text": "UTC"}, "range": [_utc(series.start), _utc(series.end)]}
    layout["yaxis"] = {**layout["yaxis"], "title": {"text": spec["axis"]}, "rangemode": "tozero", "automargin": True}
    return {"data": data, "layout": layout}


def rollout_has_points(series: RolloutSeries, metric: str) -> bool:
    """Whether either side has a figure of `metric` to draw (a chart of only gaps says nothing)."""
    return any(_finite(v) is not None for side in series.values[metric].values() for v in side)
