"""What every Plotly figure shares: the base layout, label escaping, downsampling. No ORM, no HTTP.

Figures are plain dicts (the JSON plotly.js reads); tests validate them with plotly.graph_objects.Figure.
"""

MAX_POINTS = 2000
PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#db2777", "#65a30d", "#7c3aed", "#475569"]


def base_layout(**overrides) -> dict:
    layout = {
        "template": "none",
        "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12, "color": "#1f2937"},
        "margin": {"l": 56, "r": 16, "t": 36, "b": 48},
        "colorway": PALETTE,
        "legend": {"orientation": "h", "y": -0.2},
        "hovermode": "closest",
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "xaxis": {"gridcolor": "#e5e7eb", "zeroline": False},
        "yaxis": {"gridcolor": "#e5e7eb", "zeroline": False},
    }
    layout.update(overrides)
    return layout


def label(text: str) -> str:
    """User text for a trace or axis label: Plotly renders a subset of HTML (links) in labels."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def downsample(xs: list, ys: list, max_points: int = MAX_POINTS) -> tuple[list, list]:
    """Every k-th point so a series has at most `max_points`; the last point is always kept."""
    n = len(xs)
    if n <= max_points:
        return xs, ys
    step = -(-n // max_points)
    idx = list(range(0, n, step))
    if idx[-1] != n - 1:
        idx.append(n - 1)
    return [xs[i] for i in idx], [ys[i] for i in idx]
