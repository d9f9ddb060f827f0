"""Plotly figures of the experiment page: the analysis snapshot's daily series in, figure dicts out. No ORM.

The series (experiments/services/results.py, `results["series"]`) is cumulative by UTC day of exposure:
on day d, the units exposed up to d with all their outcomes so far. A day without enough data holds
None, which Plotly draws as a gap. Rates and their differences are drawn in percent and points.
"""

from __future__ import annotations

import math

from mlops_site.charts import PALETTE, base_layout, downsample, label

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
