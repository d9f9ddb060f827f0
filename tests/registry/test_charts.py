import plotly.graph_objects as go

from registry import charts


def test_metrics_comparison_is_a_valid_plotly_figure():
    figure = charts.metrics_comparison([("v1", {"auc": 0.9, "f1": 0.8}), ("v2", {"auc": 0.93})])

    go.Figure(figure)  # plotly validates every key and raises on an invalid one
    assert [(t["name"], t["x"], t["y"]) for t in figure["data"]] == [("v1", ["auc", "f1"], [0.9, 0.8]), ("v2", ["auc", "f1"], [0.93, None])]


def test_metric_history_orders_versions_and_skips_non_numbers():
    figure = charts.metric_history([(3, {"auc": 0.95}), (1, {"auc": 0.9, "note": "x"}), (2, {"auc": "n/a"})])

    go.Figure(figure)
    auc = next(t for t in figure["data"] if t["name"] == "auc")
    assert (auc["x"], auc["y"]) == ([1, 3], [0.9, 0.95])


def test_metric_history_downsamples_long_series_keeping_the_last_point():
    figure = charts.metric_history([(n, {"auc": n / 10_000}) for n in range(1, 5001)])

    auc = figure["data"][0]
    assert len(auc["x"]) <= 2001 and auc["x"][0] == 1 and auc["x"][-1] == 5000


def test_labels_are_escaped():
    figure = charts.metrics_comparison([("<b>v1</b>", {"<i>auc</i>": 1.0})])

    assert figure["data"][0]["name"] == "&lt;b&gt;v1&lt;/b&gt;"
    assert figure["data"][0]["x"] == ["&lt;i&gt;auc&lt;/i&gt;"]
