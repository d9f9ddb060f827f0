"""Plotly figures of the registry pages: results in, a plain figure dict out.

These figures are small and drawn on every page view, so they are written as
plain dicts (the JSON plotly.js reads) rather than through plotly.graph_objects,
whose validation costs more than the rest of the page. Tests feed them to
plotly.graph_objects.Figure, which validates every key.
"""

import math

from mlops_site.charts import base_layout, downsample, label


def metrics_comparison(columns: list[tuple[str, dict[str, float]]]) -> dict:
    """Grouped bars: one group per metric, one bar per version (label, metrics)."""
    names = sorted({k for _, metrics in columns for k in metrics})
    data = [
        {"type": "bar", "name": label(name), "x": [label(n) for n in names], "y": [metrics.get(n) for n in names], "hovertemplate": "%{x}: %{y:.4g}"}
        for name, metrics in columns
    ]
    return {"data": data, "layout": base_layout(barmode="group", title={"text": "Metrics by version", "x": 0})}


def metric_history(points: list[tuple[int, dict[str, float]]], max_series: int = 8) -> dict:
    """One line per metric across version numbers (oldest to newest)."""
    points = sorted(points, key=lambda p: p[0])
    names = sorted({k for _, metrics in points for k in metrics})[:max_series]
    data = []
    for name in names:
        xs = [v for v, metrics in points if isinstance(metrics.get(name), (int, float))]
        ys = [metrics[name] for _, metrics in points if isinstance(metrics.get(name), (int, float))]
        xs, ys = downsample(xs, ys)
        data.append({"type": "scatter", "mode": "lines+markers", "name": label(name), "x": xs, "y": ys})
    layout = base_layout(title={"text": "Metrics across versions", "x": 0})
    layout["xaxis"] = {**layout["xaxis"], "title": {"text": "version"}, **({"dtick": 1} if len(points) <= 30 else {})}
    return {"data": data, "layout": layout}


def metric_steps(key: str, lines: list[tuple[str, list[int], list[float]]]) -> dict:
    """One metric's history, x = step: one line per run (its label, steps, values in step order). A value that is not
    finite (NaN, ±Infinity) is a gap, as JSON has no such numbers; each line keeps at most MAX_POINTS points."""
    data = []
    for name, steps, values in lines:
        ys = [v if math.isfinite(v) else None for v in values]
        xs, ys = downsample(steps, ys)
        mode = "lines+markers" if len(xs) <= 50 else "lines"
        data.append({"type": "scatter", "mode": mode, "name": label(name), "x": xs, "y": ys, "hovertemplate": "step %{x}: %{y:.6g}"})
    layout = base_layout(title={"text": label(key), "x": 0}, showlegend=len(lines) > 1)
    layout["xaxis"] = {**layout["xaxis"], "title": {"text": "step"}}
    return {"data": data, "layout": layout}
