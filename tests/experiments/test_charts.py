"""Figures of the experiment page: valid Plotly (every key checked by plotly.graph_objects), rates in percent,
gaps where the snapshot had no figure, both intervals per variant, never NaN."""

import json
import math

import plotly.graph_objects as go

from experiments import charts

SERIES = {
    "metric": "conversion",
    "kind": "proportion",
    "days": ["2026-03-02", "2026-03-03", "2026-03-04"],
    "arms": [
        {"variant": "A", "units": [1, 40, 90], "value": [None, 0.1, 0.12]},
        {"variant": "B", "units": [1, 42, 88], "value": [None, 0.15, 0.16]},
    ],
    "lifts": [{
        "variant": "B", "diff": [None, 0.05, 0.04], "lift": [None, 0.5, 0.333],
        "ci_low": [None, -0.02, 0.01], "ci_high": [None, 0.12, 0.07],
        "always_valid_low": [None, -0.09, -0.03], "always_valid_high": [None, 0.19, 0.11],
    }],
}


def test_cumulative_metric_draws_each_variant_in_percent_with_gaps():
    figure = charts.cumulative_metric(SERIES)

    go.Figure(figure)
    assert [t["name"] for t in figure["data"]] == ["A", "B"]
    assert figure["data"][0]["y"] == [None, 10.0, 12.0]
    assert figure["data"][1]["customdata"] == [1, 42, 88]
    assert figure["layout"]["template"] == "none" and figure["layout"]["yaxis"]["title"]["text"] == "rate (%)"
    assert figure["layout"]["xaxis"]["type"] == "date" and figure["layout"]["xaxis"]["dtick"] == 86400000  # a tick a day


def test_a_mean_is_drawn_in_its_own_units():
    series = {**SERIES, "kind": "mean", "arms": [{"variant": "A", "units": [3], "value": [12.5]}], "days": ["2026-03-02"], "lifts": []}

    figure = charts.cumulative_metric(series)

    assert figure["data"][0]["y"] == [12.5] and figure["layout"]["yaxis"]["title"]["text"] == "mean per unit"


def test_lift_over_time_has_the_difference_and_both_intervals_in_points():
    figure = charts.lift_over_time(SERIES, alpha=0.05)

    go.Figure(figure)
    by_name = {}
    for trace in figure["data"]:
        by_name.setdefault(trace["name"], []).append(trace)
    assert set(by_name) == {"B: always-valid interval", "B: 95 % interval (fixed horizon)", "B − control"}
    assert by_name["B − control"][0]["y"] == [None, 5.0, 4.0]
    upper, lower = by_name["B: 95 % interval (fixed horizon)"]
    assert [round(v, 9) if v is not None else None for v in upper["y"]] == [None, 12.0, 7.0]
    assert [round(v, 9) if v is not None else None for v in lower["y"]] == [None, -2.0, 1.0] and lower["fill"] == "tonexty"
    av_upper, av_lower = by_name["B: always-valid interval"]
    assert av_upper["y"][1] == 19.0 and av_lower["y"][1] == -9.0 and av_lower["line"]["dash"] == "dash"
    assert figure["layout"]["shapes"][0]["y0"] == 0  # the line of no difference


def test_the_interval_level_follows_alpha():
    figure = charts.lift_over_time(SERIES, alpha=0.1)

    assert any(t["name"] == "B: 90 % interval (fixed horizon)" for t in figure["data"])


def test_non_finite_values_become_gaps_never_nan_in_the_json():
    series = {**SERIES, "arms": [{"variant": "A", "units": [1, 2, 3], "value": [float("nan"), float("inf"), 0.1]}], "lifts": []}

    figure = charts.cumulative_metric(series)

    assert figure["data"][0]["y"] == [None, None, 10.0]
    json.dumps(figure, allow_nan=False)


def test_has_points_is_false_for_a_series_of_gaps_or_no_days():
    assert charts.has_points(SERIES) is True
    assert charts.has_points({**SERIES, "arms": [{"variant": "A", "units": [0], "value": [None]}]}) is False
    assert charts.has_points({**SERIES, "days": []}) is False
    assert charts.has_points(None) is False


def test_long_series_are_downsampled_keeping_the_last_day():
    days = [f"d{i}" for i in range(5000)]
    series = {"metric": "m", "kind": "mean", "days": days, "arms": [{"variant": "A", "units": list(range(5000)), "value": [float(i) for i in range(5000)]}],
              "lifts": []}

    figure = charts.cumulative_metric(series)

    assert len(figure["data"][0]["x"]) <= 2001 and figure["data"][0]["x"][-1] == "d4999" and figure["data"][0]["y"][-1] == 4999.0
    assert not any(isinstance(v, float) and math.isnan(v) for v in figure["data"][0]["y"])
