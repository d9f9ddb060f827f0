"""Plotly figures of the drift pages: stored report results in, figure dicts out. No ORM."""

from mlops_site.charts import base_layout, label

SEVERITY_COLOR = {"significant": "#dc2626", "moderate": "#d97706", "none": "#16a34a", "no_data": "#9ca3af"}


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
