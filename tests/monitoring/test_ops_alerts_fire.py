"""Each default performance and GenAI operations rule fires on data just over its threshold and stays ok on the
same data just under it (or exactly at it: the defaults compare strictly). Data goes through the real path:
events and labels through the API and services, the roll-ups, the hourly performance windows, then the
minute's evaluation."""

from datetime import UTC, datetime, timedelta

import pytest
from sklearn import metrics as sk

from monitoring import services
from monitoring.models import AlertEvent, AlertRule, PerformanceWindow
from registry.services import prompts as prompt_services
from tests.factories import register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def send(api_as, user, events):
    response = api_as(user).post("/api/v1/events", {"events": events}, format="json")
    assert response.status_code == 202, response.content


def labelled_traffic(api_as, editor, rows):
    """Model events in the last hour, one per (prediction, label), their labels, the roll-ups and the hourly window."""
    send(
        api_as,
        editor,
        [
            {
                "event_id": f"m-{i}",
                "model": "fraud",
                "version": 1,
                "timestamp": (NOW - timedelta(minutes=50, seconds=-i)).isoformat(),
                "latency_ms": 5.0,
                "prediction": prediction,
            }
            for i, (prediction, _) in enumerate(rows)
        ],
    )
    services.labels_attach(payload={"labels": [{"event_id": f"m-{i}", "label": label} for i, (_, label) in enumerate(rows)]}, actor=editor)
    services.rollups_update()
    services.performance_windows_schedule(now=NOW)


def evaluated(metric: str, **subject) -> tuple[list[AlertEvent], AlertRule, list[AlertEvent]]:
    """The minute's evaluation: the changes it made to rules on `metric`, the rule, and its recorded events."""
    changes = [e for e in services.ops_alerts_evaluate(now=NOW) if e.rule.metric == metric]
    rule = AlertRule.objects.get(metric=metric, **subject)
    return changes, rule, list(AlertEvent.objects.filter(rule=rule))


def assert_fired(changes, rule, events, value):
    assert rule.state == "alert" and rule.last_value == pytest.approx(value, rel=1e-9)
    assert [(e.from_state, e.to_state) for e in events] == [("ok", "alert")] and events[0].value == pytest.approx(value, rel=1e-9)
    assert changes == events


def assert_quiet(changes, rule, events, value):
    assert rule.state == "ok" and rule.last_value == pytest.approx(value, rel=1e-9)
    assert changes == [] and events == []


@pytest.mark.parametrize("correct, fires", [(428, False), (427, True)])
def test_accuracy_drop_rule_fires_past_5_percent_below_the_baseline(api_as, editor, correct, fires):
    register("fraud", editor, metrics={"accuracy": 0.9})
    # 500 labelled events, `correct` of them right: accuracy 0.856 (a drop of 4.9 %) or 0.854 (5.1 %).
    rows = [(1.0, 1)] * correct + [(1.0, 0)] * (500 - correct)

    labelled_traffic(api_as, editor, rows)
    changes, rule, events = evaluated("accuracy_drop", model__name="fraud")

    drop = (0.9 - correct / 500) / 0.9
    (assert_fired if fires else assert_quiet)(changes, rule, events, drop)
    assert rule.threshold == 0.05 and rule.comparison == ">"
    if fires:
        assert "Accuracy drop" in events[0].message and "latest labelled window" in events[0].message


@pytest.mark.parametrize("tp, errors, fires", [(153, 47, False), (151, 49, True)])
def test_f1_drop_rule_fires_past_5_percent_below_the_baseline(api_as, editor, tp, errors, fires):
    register("fraud", editor, metrics={"f1": 0.8})
    # F1 = 2 TP / (2 TP + FP + FN): 306 / 400 = 0.765 (a drop of 4.4 %) or 302 / 400 = 0.755 (5.6 %); 300 events either way.
    rows = [(0.9, 1)] * tp + [(0.9, 0)] * errors + [(0.1, 1)] * errors + [(0.1, 0)] * (300 - tp - 2 * errors)

    labelled_traffic(api_as, editor, rows)
    changes, rule, events = evaluated("f1_drop", model__name="fraud")

    f1 = 2 * tp / (2 * tp + 2 * errors)
    assert f1 == pytest.approx(sk.f1_score([y for _, y in rows], [int(p >= 0.5) for p, _ in rows]))
    (assert_fired if fires else assert_quiet)(changes, rule, events, (0.8 - f1) / 0.8)


@pytest.mark.parametrize("last_positive, fires", [(0.035, False), (0.025, True)])
def test_auc_drop_rule_fires_past_5_percent_below_the_baseline(api_as, editor, last_positive, fires):
    register("fraud", editor, metrics={"auc": 0.9})
    # 10 negatives at 0.01 ... 0.10; 8 positives above them all, one above 3 negatives and the last above 3 or 2:
    # 86 or 85 of the 100 (positive, negative) pairs in order, ROC AUC 0.86 (a drop of 4.4 %) or 0.85 (5.6 %).
    rows = [(round(0.01 * k, 2), 0) for k in range(1, 11)] + [(0.9, 1)] * 8 + [(0.035, 1), (last_positive, 1)]

    labelled_traffic(api_as, editor, rows)
    changes, rule, events = evaluated("auc_drop", model__name="fraud")

    auc = 0.86 if last_positive == 0.035 else 0.85
    assert auc == pytest.approx(sk.roc_auc_score([y for _, y in rows], [p for p, _ in rows]))
    assert PerformanceWindow.objects.get().roc_auc == pytest.approx(auc)
    (assert_fired if fires else assert_quiet)(changes, rule, events, (0.9 - auc) / 0.9)


@pytest.mark.parametrize("requests, fires", [(5760, False), (5761, True)])
def test_throughput_rule_fires_above_80_percent_of_capacity(api_as, editor, settings, requests, fires):
    settings.MLOPS_CAPACITY_RPS = 2
    register("fraud", editor)
    # The rule's hour ending now holds `requests`: 5,760 / 3,600 s = 1.6 requests/s, exactly 80 % of 2 requests/s.
    send(
        api_as,
        editor,
        [
            {
                "event_id": f"t-{i}",
                "model": "fraud",
                "version": 1,
                "timestamp": (NOW - timedelta(seconds=3600 - i % 3600)).isoformat(),
                "latency_ms": 5.0,
            }
            for i in range(requests)
        ],
    )
    services.rollups_update()

    changes, rule, events = evaluated("throughput_share", model__name="fraud")

    assert rule.parameter == 2 and rule.threshold == 0.8 and rule.comparison == ">"
    (assert_fired if fires else assert_quiet)(changes, rule, events, requests / 3600 / 2)


def prompt_traffic(api_as, editor, events):
    prompt_services.prompts_import(files=brief_folder(), actor=editor)
    send(api_as, editor, [{"prompt": "summarize", "version": 2, **e} for e in events])
    services.rollups_update()


@pytest.mark.parametrize("slow_ms, fires", [(9_800.0, False), (10_200.0, True)])
def test_response_p95_rule_fires_over_10_seconds(api_as, editor, slow_ms, fires):
    # 100 responses in the last hour, the slowest 10 at `slow_ms`: the P95 is `slow_ms` (the sketch is within 1 %).
    prompt_traffic(
        api_as,
        editor,
        [
            {
                "event_id": f"r-{i}",
                "timestamp": (NOW - timedelta(minutes=40, seconds=-i)).isoformat(),
                "latency_ms": slow_ms if i < 10 else 1_000.0,
            }
            for i in range(100)
        ],
    )

    changes, rule, events = evaluated("latency_p95_ms", prompt__name="summarize")

    assert rule.name == "Response P95 over 10 s" and rule.threshold == 10_000.0
    assert rule.last_value == pytest.approx(slow_ms, rel=0.01)
    (assert_fired if fires else assert_quiet)(changes, rule, events, rule.last_value)


@pytest.mark.parametrize("output_tokens, fires", [(200, False), (201, True)])
def test_tokens_ratio_rule_fires_over_twice_the_expected_tokens(api_as, editor, output_tokens, fires):
    # The expected tokens per request come from the 7 days before the rule's hour: 400 + 100 = 500.
    # The hour itself: 800 + 200 = 1,000 (a ratio of exactly 2) or 800 + 201 = 1,001 (2.002).
    history = [
        {
            "event_id": f"h-{i}",
            "timestamp": (NOW - timedelta(days=2, seconds=-i)).isoformat(),
            "latency_ms": 500.0,
            "input_tokens": 400,
            "output_tokens": 100,
        }
        for i in range(50)
    ]
    current = [
        {
            "event_id": f"c-{i}",
            "timestamp": (NOW - timedelta(minutes=30, seconds=-i)).isoformat(),
            "latency_ms": 500.0,
            "input_tokens": 800,
            "output_tokens": output_tokens,
        }
        for i in range(50)
    ]
    prompt_traffic(api_as, editor, history + current)

    changes, rule, events = evaluated("tokens_ratio", prompt__name="summarize")

    assert rule.parameter is None and rule.threshold == 2.0
    (assert_fired if fires else assert_quiet)(changes, rule, events, (800 + output_tokens) / 500)


def test_drop_rules_read_the_latest_labelled_window(api_as, editor):
    register("fraud", editor, metrics={"accuracy": 0.9})
    # A day ago every prediction was wrong; in the last hour every one is right.
    send(
        api_as,
        editor,
        [
            {
                "event_id": f"old-{i}",
                "model": "fraud",
                "version": 1,
                "timestamp": (NOW - timedelta(hours=26, seconds=-i)).isoformat(),
                "latency_ms": 5.0,
                "prediction": 1.0,
            }
            for i in range(20)
        ],
    )
    services.labels_attach(payload={"labels": [{"event_id": f"old-{i}", "label": 0} for i in range(20)]}, actor=editor)
    services.performance_windows_schedule(now=NOW - timedelta(hours=25))

    labelled_traffic(api_as, editor, [(1.0, 1)] * 20)
    changes, rule, events = evaluated("accuracy_drop", model__name="fraud")

    assert [w.accuracy for w in PerformanceWindow.objects.order_by("window_end")] == [0.0, 1.0]
    assert_quiet(changes, rule, events, (0.9 - 1.0) / 0.9)
