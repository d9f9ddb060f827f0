"""Figures of the rollout page: valid Plotly (every key checked by plotly.graph_objects), candidate against baseline in
percent (rates) or their units, the policy's triggers and gates drawn where they apply, the stage changes marked, gaps
where a side had no traffic, never more than about 2,000 points."""

from datetime import UTC, datetime, timedelta

import plotly.graph_objects as go
import pytest

from experiments import canary, charts
from experiments.selectors import ROLLOUT_METRICS, RolloutSeries, StageMark

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STAGES = [
    {"name": "shadow", "traffic_percent": 0, "min_minutes": 1, "max_minutes": 10, "gate": {"name": "no_errors", "threshold": None}, "manual": False},
    {"name": "5%", "traffic_percent": 5, "min_minutes": 1, "max_minutes": 10, "gate": {"name": "error_rate", "threshold": 0.005}, "manual": False},
    {"name": "25%", "traffic_percent": 25, "min_minutes": 1, "max_minutes": 10, "gate": {"name": "latency_p95", "threshold": 1.1}, "manual": False},
    {"name": "100%", "traffic_percent": 100, "min_minutes": 1, "max_minutes": None, "gate": None, "manual": False},
]
TRIGGERS = canary.DEFAULT_POLICY.triggers_json()


def minute(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def series(n: int = 6, marks: tuple = (), **values) -> RolloutSeries:
    """`n` minute buckets from T0; `values[metric] = (candidate, baseline)` (the others None); `marks` the stage changes."""
    empty = [None] * n
    return RolloutSeries(
        start=T0, end=minute(n), granularity="minute", buckets=tuple(minute(i) for i in range(n)),
        values={m: dict(zip(("candidate", "baseline"), values.get(m, (empty, empty)), strict=True)) for m in ROLLOUT_METRICS},
        requests={"candidate": [10] * n, "baseline": [200] * n}, stages=marks,
    )


MARKS = (
    StageMark(at=T0, action="start", stage_index=0, stage="shadow", traffic_percent=0.0),
    StageMark(at=minute(2), action="advance", stage_index=1, stage="5%", traffic_percent=5.0),
    StageMark(at=minute(4), action="advance", stage_index=2, stage="25%", traffic_percent=25.0),
)


def draw(metric: str, s: RolloutSeries) -> dict:
    figure = charts.rollout_metric(metric=metric, series=s, stages=STAGES, triggers=TRIGGERS, candidate="v2 (candidate)", baseline="v1 (baseline)")
    go.Figure(figure)  # raises on any key plotly.js would not know
    return figure


def trace(figure: dict, name: str) -> dict:
    found = [t for t in figure["data"] if t["name"] == name]
    assert len(found) == 1, [t["name"] for t in figure["data"]]
    return found[0]


def rounded(values: list) -> list:
    return [None if v is None else round(v, 9) for v in values]


@pytest.mark.parametrize("metric", ROLLOUT_METRICS)
def test_every_rollout_chart_is_valid_plotly_with_both_sides(metric):
    s = series(3, MARKS[:1], **{metric: ([0.1, None, 0.3], [0.2, 0.2, None])})

    figure = draw(metric, s)

    assert figure["layout"]["template"] == "none"
    assert [t["name"] for t in figure["data"]][:2] == ["v2 (candidate)", "v1 (baseline)"]
    assert figure["data"][0]["x"] == ["2026-03-02 09:00:00", "2026-03-02 09:01:00", "2026-03-02 09:02:00"]
    assert figure["data"][0]["customdata"] == [10, 10, 10] and figure["data"][1]["customdata"] == [200, 200, 200]
    assert figure["layout"]["xaxis"]["range"] == ["2026-03-02 09:00:00", "2026-03-02 09:03:00"]


def test_rates_are_drawn_in_percent_with_gaps_and_latency_in_ms():
    s = series(3, error_rate=([0.01, None, 0.07], [0.02, 0.02, None]), latency_p95=([120.0, 130.0, None], [100.0, 100.0, 100.0]))

    errors, latency = draw("error_rate", s), draw("latency_p95", s)

    assert rounded(errors["data"][0]["y"]) == [1.0, None, 7.0] and rounded(errors["data"][1]["y"]) == [2.0, 2.0, None]
    assert errors["layout"]["yaxis"]["title"]["text"] == "errors (%)"
    assert latency["data"][0]["y"] == [120.0, 130.0, None] and latency["layout"]["yaxis"]["title"]["text"] == "ms"


def test_the_absolute_error_rate_trigger_is_a_labelled_line_at_five_percent():
    figure = draw("error_rate", series(3, error_rate=([0.01] * 3, [0.01] * 3)))

    lines = [s for s in figure["layout"]["shapes"] if s["xref"] == "paper"]
    assert [(s["y0"], s["y1"], s["line"]["color"]) for s in lines] == [(5.0, 5.0, "#dc2626")]
    assert [a["text"] for a in figure["layout"]["annotations"] if a["xref"] == "paper"] == ["roll back above 5 %"]


def test_relative_triggers_follow_the_baseline_point_by_point():
    s = series(3, latency_p95=([150.0, 190.0, 260.0], [100.0, None, 120.0]), cost_per_request=([0.001] * 3, [0.0005, 0.001, 0.002]))

    latency, cost = draw("latency_p95", s), draw("cost_per_request", s)

    rollback = trace(latency, "roll back above 2 × baseline")
    assert rounded(rollback["y"]) == [200.0, None, 240.0] and rollback["line"]["color"] == "#dc2626"
    pause = trace(cost, "pause above 2 × baseline")
    assert rounded(pause["y"]) == [0.001, 0.002, 0.004] and pause["line"]["color"] == "#d97706"


def test_guardrail_and_negative_feedback_triggers_are_three_and_two_times_the_baseline_in_percent():
    s = series(2, guardrail_rate=([0.05, 0.05], [0.01, 0.02]), negative_feedback_rate=([0.3, 0.3], [0.1, 0.25]))

    guardrail, feedback = draw("guardrail_rate", s), draw("negative_feedback_rate", s)

    assert rounded(trace(guardrail, "roll back above 3 × baseline")["y"]) == [3.0, 6.0]
    assert rounded(trace(feedback, "pause above 2 × baseline")["y"]) == [20.0, 50.0]


def test_the_error_rate_gate_is_drawn_over_the_five_percent_stage_only():
    s = series(6, MARKS, error_rate=([0.01] * 6, [0.01, 0.01, 0.02, 0.03, 0.01, 0.01]))

    figure = draw("error_rate", s)

    # baseline + 0.5 points, in percent, while the rollout was at 5 % (minutes 2 and 3)
    assert rounded(trace(figure, "5% gate: below baseline + 0.5 points")["y"]) == [None, None, 2.5, 3.5, None, None]


def test_the_latency_gate_is_drawn_over_the_twenty_five_percent_stage_only():
    s = series(6, MARKS, latency_p95=([100.0] * 6, [100.0, 100.0, 100.0, 100.0, 200.0, None]))

    figure = draw("latency_p95", s)

    assert rounded(trace(figure, "25% gate: below 1.1 × baseline")["y"]) == [None, None, None, None, 220.0, None]
    assert not [t for t in draw("guardrail_rate", s)["data"] if "gate" in t["name"]]


def test_a_stage_never_reached_draws_no_gate():
    figure = draw("latency_p95", series(6, MARKS[:2], latency_p95=([100.0] * 6, [100.0] * 6)))

    assert not [t for t in figure["data"] if "gate" in t["name"]]


def test_stage_changes_are_vertical_lines_with_their_names_and_a_rollback_in_red():
    marks = (*MARKS[:2], StageMark(at=minute(3), action="rollback", stage_index=None, stage="rollback", traffic_percent=0.0))

    figure = draw("error_rate", series(4, marks, error_rate=([0.01] * 4, [0.01] * 4)))

    verticals = [s for s in figure["layout"]["shapes"] if s["xref"] == "x"]
    assert [(s["x0"], s["line"]["color"]) for s in verticals] == [
        ("2026-03-02 09:00:00", "#94a3b8"), ("2026-03-02 09:02:00", "#94a3b8"), ("2026-03-02 09:03:00", "#dc2626")]
    assert [a["text"] for a in figure["layout"]["annotations"] if a["xref"] == "x"] == ["shadow", "5%", "rolled back"]


def test_a_long_rollout_is_downsampled_to_about_two_thousand_points():
    n = 5000
    s = series(n, MARKS[:1], latency_p95=([100.0] * n, [100.0] * n))

    figure = draw("latency_p95", s)

    assert all(len(t["x"]) <= 2001 and len(t["x"]) == len(t["y"]) for t in figure["data"])
    assert figure["data"][0]["x"][-1] == "2026-03-05 20:19:00"  # the last point (4,999 minutes after 09:00) is kept


def test_has_points_is_false_for_a_metric_of_gaps_only():
    s = series(2, error_rate=([None, None], [None, 0.0]))

    assert charts.rollout_has_points(s, "error_rate") and not charts.rollout_has_points(s, "cost_per_request")
    assert not charts.rollout_has_points(series(2, error_rate=([None, None], [None, None])), "error_rate")


def test_chart_labels_of_user_text_are_escaped():
    figure = charts.rollout_metric(metric="error_rate", series=series(1, error_rate=([0.1], [0.1])), stages=STAGES, triggers=[],
                                   candidate="<b>v2</b>", baseline="v1")

    assert figure["data"][0]["name"] == "&lt;b&gt;v2&lt;/b&gt;"
