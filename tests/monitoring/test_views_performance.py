"""A model version's performance page: its labelled windows as charts beside the baseline and the alert line,
labelled share and label delay, the rules that read them, and an empty state; a fixed number of queries."""

import json
import re
from datetime import UTC, datetime, timedelta

import numpy as np
import plotly.graph_objects as go
import pytest
from sklearn import metrics as sk

from monitoring import services
from monitoring.models import AlertRule, PerformanceWindow
from tests.factories import register

pytestmark = pytest.mark.django_db

URL = "/monitoring/models/fraud/versions/1/performance/"


def figures(response) -> dict[str, dict]:
    """The page's figures by their json_script id, each checked to be a valid Plotly figure."""
    html = response.content.decode()
    found = {m[0]: json.loads(m[1]) for m in re.findall(r'<script id="([\w-]+-figure)" type="application/json">(.*?)</script>', html, re.S)}
    for figure in found.values():
        go.Figure(figure)
    return found


def send(api_as, user, events):
    response = api_as(user).post("/api/v1/events", {"events": events}, format="json")
    assert response.status_code == 202, response.content


def test_performance_page_draws_the_windows_with_baseline_and_alert_lines(client, api_as, editor, viewer):
    register("fraud", editor, metrics={"accuracy": 0.9, "f1": 0.8, "roc_auc": 0.95})
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    scores = np.clip(0.4 * y + rng.normal(0.3, 0.2, 200), 0, 1).round(3)
    start = now - timedelta(hours=3)
    send(
        api_as,
        editor,
        [
            {
                "event_id": f"e-{i}",
                "model": "fraud",
                "version": 1,
                "timestamp": (start + timedelta(seconds=30 * i)).isoformat(),
                "latency_ms": 5,
                "prediction": float(s),
            }
            for i, s in enumerate(scores)
        ],
    )
    labelled = 150  # of 200 events
    services.labels_attach(
        payload={"labels": [{"event_id": f"e-{i}", "label": int(y[i])} for i in range(labelled)]},
        actor=editor,
        now=start + timedelta(hours=2),
    )
    for hours_ago in (2, 1, 0):
        services.performance_windows_schedule(now=now - timedelta(hours=hours_ago))
    client.force_login(viewer)

    response = client.get(URL)

    assert response.status_code == 200
    html = response.content.decode()
    charts = figures(response)
    assert set(charts) == {"accuracy-figure", "f1-figure", "roc_auc-figure", "labelled-share-figure", "label-delay-figure"}
    accuracy = charts["accuracy-figure"]
    assert len(accuracy["data"][0]["x"]) == 3
    pred = (scores[:labelled] >= 0.5).astype(int)
    assert accuracy["data"][0]["y"][-1] == pytest.approx(sk.accuracy_score(y[:labelled], pred))
    assert charts["roc_auc-figure"]["data"][0]["y"][-1] == pytest.approx(sk.roc_auc_score(y[:labelled], scores[:labelled]))
    assert [s["y0"] for s in accuracy["layout"]["shapes"]] == [pytest.approx(0.9), pytest.approx(0.9 * 0.95)]
    assert [s["y0"] for s in charts["f1-figure"]["layout"]["shapes"]] == [pytest.approx(0.8), pytest.approx(0.76)]
    assert "alert below 0.855 (5 % drop)" in [a["text"] for a in accuracy["layout"]["annotations"]]
    # Labelled share: 150 / 200 in the latest window. Delay: events every 30 s from `start`, labels at start + 2 h.
    share = charts["labelled-share-figure"]["data"][0]["y"]
    assert share[-1] == pytest.approx(150 / 200)
    delays_h = (2 * 3600 - 30 * np.arange(labelled)) / 3600
    delay = {t["name"]: t["y"][-1] for t in charts["label-delay-figure"]["data"]}
    assert delay == {"median": pytest.approx(np.median(delays_h)), "P95": pytest.approx(np.percentile(delays_h, 95))}
    assert "150 of 200 events" in html and "75.0 %" in html
    assert 'id="empty-state"' not in html and 'id="no-baseline"' not in html


def windows_of(api_as, editor, *, ends, predictions=(0.9, 0.1, 0.8, 0.3), labels=(1, 0, 0, 1)):
    """One labelled event per hour before each window end, then the hourly windows at those ends."""
    events = [
        {
            "event_id": f"w-{k}-{i}",
            "model": "fraud",
            "version": 1,
            "timestamp": (end - timedelta(minutes=10 + i)).isoformat(),
            "latency_ms": 5,
            "prediction": p,
        }
        for k, end in enumerate(ends)
        for i, p in enumerate(predictions)
    ]
    send(api_as, editor, events)
    services.labels_attach(
        payload={"labels": [{"event_id": e["event_id"], "label": labels[int(e["event_id"].rsplit("-", 1)[1])]} for e in events]},
        actor=editor,
    )
    for end in ends:
        services.performance_windows_schedule(now=end)


def test_performance_page_lists_the_drop_rules_and_draws_the_line_at_their_threshold(client, api_as, editor, viewer):
    register("fraud", editor, metrics={"accuracy": 0.8, "auc": 0.9})
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    windows_of(api_as, editor, ends=[now - timedelta(minutes=2)])
    services.rollups_update()
    services.ops_alerts_evaluate(now=now)
    AlertRule.objects.filter(model__name="fraud", metric="accuracy_drop").update(threshold=0.1)
    client.force_login(viewer)

    response = client.get(URL)

    html = response.content.decode()
    rules = re.findall(r'<tr class="alert-(\w+)" data-rule="(\w+)"><td><a href="/monitoring/alerts/#alert-rules">([^<]+)</a>', html)
    # One labelled window: 4 events, 2 right (accuracy 0.5, a drop of 37.5 %); ROC AUC 0.75 (a drop of 16.7 %); no F1 baseline.
    assert rules == [("alert", "accuracy_drop", "Accuracy drop"), ("alert", "auc_drop", "AUC drop"), ("ok", "f1_drop", "F1 drop")]
    assert "37.5 %" in html and "&gt; 10.0 %" in html
    charts = figures(response)
    assert [s["y0"] for s in charts["accuracy-figure"]["layout"]["shapes"]] == [pytest.approx(0.8), pytest.approx(0.8 * 0.9)]
    assert [s["y0"] for s in charts["roc_auc-figure"]["layout"]["shapes"]] == [pytest.approx(0.9), pytest.approx(0.9 * 0.95)]
    assert charts["f1-figure"]["layout"]["shapes"] == []  # no F1 baseline, no lines
    assert charts["roc_auc-figure"]["data"][0]["y"] == [pytest.approx(0.75)]


def test_performance_page_shows_the_windows_of_the_chosen_range(client, api_as, editor, viewer):
    register("fraud", editor)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    windows_of(api_as, editor, ends=[now - timedelta(days=3), now - timedelta(hours=1)])
    client.force_login(viewer)

    day = figures(client.get(URL))["accuracy-figure"]["data"][0]["x"]
    week = figures(client.get(URL + "?range=7d"))["accuracy-figure"]["data"][0]["x"]

    assert len(day) == 1 and len(week) == 2


def test_performance_page_without_labels_or_baseline_explains_what_is_needed(client, editor, viewer):
    register("fraud", editor, metrics={})
    client.force_login(viewer)

    response = client.get(URL)

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="empty-state"' in html and "POST /api/v1/labels" in html
    assert 'id="no-baseline"' in html and "registered without accuracy, F1 or ROC AUC" in html
    assert figures(response) == {} and "plotly.min.js" not in html
    assert "No rule reads these metrics yet" in html


def test_performance_page_says_which_metric_it_could_not_compute(client, api_as, editor, viewer):
    register("fraud", editor)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    windows_of(
        api_as, editor, ends=[now - timedelta(minutes=5)], predictions=("spam", "ham", "spam", "ham"), labels=("spam", "spam", "ham", "ham")
    )
    client.force_login(viewer)

    response = client.get(URL)

    assert set(figures(response)) == {"accuracy-figure", "f1-figure", "labelled-share-figure", "label-delay-figure"}
    assert "Not computed in this range: ROC AUC" in response.content.decode()


def test_performance_page_needs_a_login_and_a_known_version(client, editor, viewer):
    register("fraud", editor)

    anonymous = client.get(URL)
    client.force_login(viewer)
    unknown = client.get("/monitoring/models/fraud/versions/9/performance/")
    version_page = client.get("/models/fraud/versions/1/")

    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    assert unknown.status_code == 404
    assert 'href="/monitoring/models/fraud/versions/1/performance/"' in version_page.content.decode()


def test_performance_page_queries_do_not_grow_with_the_windows(client, api_as, editor, viewer, django_assert_max_num_queries):
    register("fraud", editor, metrics={"accuracy": 0.9, "f1": 0.8, "auc": 0.9})
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    windows_of(api_as, editor, ends=[now - timedelta(hours=h) for h in range(1, 31)])
    services.rollups_update()
    services.ops_alerts_evaluate(now=now)
    client.force_login(viewer)

    with django_assert_max_num_queries(6):
        response = client.get(URL + "?range=7d")

    assert len(figures(response)["accuracy-figure"]["data"][0]["x"]) == 30
    assert PerformanceWindow.objects.count() == 30
