"""Plotly figures of the registry pages: results in, a plain dict out."""

import plotly.graph_objects as go

from mlops_site.charts import base_layout, downsample, label, to_dict


def metrics_comparison(columns: list[tuple[str, dict[str, float]]]) -> dict:
    """Grouped bars: one group per metric, one bar per version (label, metrics)."""
    names = sorted({k for _, metrics in columns for k in metrics})
    fig = go.Figure(layout=base_layout(barmode="group", title={"text": "Metrics by version", "x": 0}))
    for name, metrics in columns:
        fig.add_bar(name=label(name), x=[label(n) for n in names], y=[metrics.get(n) for n in names], hovertemplate="%{x}: %{y:.4g}")
    return to_dict(fig)


def metric_history(points: list[tuple[int, dict[str, float]]], max_series: int = 8) -> dict:
    """One line per metric across version numbers (oldest to newest)."""
    points = sorted(points)
    names = sorted({k for _, metrics in points for k in metrics})[:max_series]
    fig = go.Figure(layout=base_layout(title={"text": "Metrics across versions", "x": 0}, xaxis={"title": {"text": "version"}, "gridcolor": "#e5e7eb", "dtick": 1 if len(points) <= 30 else None}))
    for name in names:
        xs = [v for v, metrics in points if name in metrics]
        ys = [metrics[name] for _, metrics in points if name in metrics]
        xs, ys = downsample(xs, ys)
        fig.add_scatter(name=label(name), x=xs, y=ys, mode="lines+markers")
    return to_dict(fig)
