"""Budgets: period bounds, spend from hour roll-ups, forecast, alerts once per share and period."""

from datetime import UTC, datetime, timedelta

import pytest

from mlops_site.exceptions import ValidationFailed
from monitoring import selectors, services
from monitoring.models import Budget, BudgetAlert, Rollup
from tests.factories import register
from tests.monitoring.test_alerts import webhook  # noqa: F401 - a fixture

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)  # a Wednesday


def hour_spend(version, at: datetime, cost: float, requests: int = 10):
    Rollup.objects.create(model_version=version, granularity="hour", bucket=at.replace(minute=0, second=0, microsecond=0),
                          requests=requests, cost_usd=cost, cost_requests=requests)


@pytest.mark.parametrize(
    "period, start, end",
    [
        ("day", datetime(2026, 11, 25, tzinfo=UTC), datetime(2026, 11, 26, tzinfo=UTC)),
        ("week", datetime(2026, 11, 23, tzinfo=UTC), datetime(2026, 11, 30, tzinfo=UTC)),
        ("month", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_period_bounds(period, start, end):
    assert selectors.period_bounds(period, NOW) == (start, end)
    assert selectors.period_bounds("month", datetime(2026, 12, 31, 23, tzinfo=UTC))[1] == datetime(2027, 1, 1, tzinfo=UTC)


def test_spend_share_and_forecast_by_hand(editor):
    fraud, other = register("fraud", editor), register("other", editor)
    budget = services.budget_set(name="fraud daily", amount_usd=10, scope="model", members=["model:fraud"], actor=editor)
    hour_spend(fraud, NOW - timedelta(days=1), 100.0)  # yesterday: another period
    for hour in range(0, 15):  # 00:00 .. 14:00 today, 0.40 USD an hour
        hour_spend(fraud, datetime(2026, 11, 25, hour, tzinfo=UTC), 0.40)
    hour_spend(fraud, datetime(2026, 11, 25, 15, tzinfo=UTC), 0.20)  # the current hour so far
    hour_spend(other, NOW, 50.0)  # not a member

    status = selectors.budget_status(budget=budget, now=NOW)

    assert status.spent_usd == pytest.approx(15 * 0.40 + 0.20)
    assert status.share == pytest.approx(0.62)
    # Rate: everything since midnight (younger than 24 h): 6.2 USD over 15.5 h; 8.5 h left.
    assert status.forecast_usd == pytest.approx(6.2 + 6.2 / 15.5 * 8.5)


def test_alerts_fire_once_per_share_and_period(editor, django_capture_on_commit_callbacks):
    fraud = register("fraud", editor)
    services.budget_set(name="all spend", amount_usd=10, actor=editor)
    hour_spend(fraud, NOW - timedelta(hours=2), 8.5)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = services.budgets_evaluate(now=NOW)
    again = services.budgets_evaluate(now=NOW + timedelta(minutes=5))
    hour_spend(fraud, NOW, 2.0)
    over = services.budgets_evaluate(now=NOW + timedelta(minutes=10))
    tomorrow = services.budgets_evaluate(now=NOW + timedelta(days=1))

    assert [a.threshold for a in first] == [0.8] and len(callbacks) == 1
    assert again == []
    assert [a.threshold for a in over] == [1.0]
    assert tomorrow == []  # a new period with no spend yet
    assert BudgetAlert.objects.count() == 2
    assert "8.50 of 10.00 USD" in first[0].message


def test_budget_alert_goes_to_the_webhook_once(editor, approver, settings):
    import http.server
    import json
    import threading

    received = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fraud = register("fraud", editor)
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = [f"127.0.0.1:{server.server_port}"]
    services.budget_set(name="all", amount_usd=1, thresholds=[0.8], webhook_url=f"http://127.0.0.1:{server.server_port}/hook", actor=approver)
    hour_spend(fraud, NOW, 0.9)
    try:
        (alert,) = services.budgets_evaluate(now=NOW)  # eager Celery in tests: notified on commit
        services.budget_alert_notify(alert_id=alert.pk)
    finally:
        server.shutdown()

    assert len(received) == 1 and received[0]["budget"] == "all" and received[0]["share"] == 0.8
    assert "BUDGET 80%" in received[0]["text"]


def test_a_budget_alert_is_e_mailed_to_the_sites_recipients_or_the_budgets_own(editor, approver, settings, celery_eager, mailoutbox, django_capture_on_commit_callbacks):
    settings.MLOPS_ALERT_EMAILS = "finance@example.com"
    fraud = register("fraud", editor)
    services.budget_set(name="all spend", amount_usd=10, thresholds=[0.8], actor=editor)
    services.budget_set(name="fraud daily", amount_usd=5, thresholds=[1.0], scope="model", members=["model:fraud"], emails="risk@example.com, ops@example.com", actor=approver)
    hour_spend(fraud, NOW - timedelta(hours=2), 8.5)

    with django_capture_on_commit_callbacks(execute=True):
        fired = services.budgets_evaluate(now=NOW)

    assert sorted(a.budget.name for a in fired) == ["all spend", "fraud daily"]
    sent = {m.subject.split(":")[0]: m for m in mailoutbox}
    assert len(mailoutbox) == 2 and set(sent) == {"[BUDGET 80%] all spend", "[BUDGET 100%] fraud daily"}
    assert sent["[BUDGET 80%] all spend"].to == ["finance@example.com"]
    assert sent["[BUDGET 100%] fraud daily"].to == ["risk@example.com", "ops@example.com"]
    assert sent["[BUDGET 80%] all spend"].subject.startswith("[BUDGET 80%] all spend: 8.50 of 10.00 USD spent this day")
    assert "8.50 of 5.00 USD spent this day" in sent["[BUDGET 100%] fraud daily"].body
    assert all(a.notified_at is not None for a in BudgetAlert.objects.all())


def test_a_budget_share_is_alerted_and_sent_once_however_often_it_is_evaluated_and_delivered(
    editor, approver, celery_eager, webhook, mailoutbox, django_capture_on_commit_callbacks  # noqa: F811 - the fixture imported above
):
    url, received = webhook
    fraud = register("fraud", editor)
    services.budget_set(name="all spend", amount_usd=10, thresholds=[0.8], webhook_url=url, emails="finance@example.com", actor=approver)
    hour_spend(fraud, NOW - timedelta(hours=2), 8.5)

    with django_capture_on_commit_callbacks(execute=True) as first_enqueued:
        first = services.budgets_evaluate(now=NOW)
    with django_capture_on_commit_callbacks(execute=True) as again_enqueued:
        again = services.budgets_evaluate(now=NOW + timedelta(minutes=15))  # the next beat, past the re-send delay
    services.budget_alert_notify(alert_id=first[0].pk)  # the notification task delivered a second time

    assert ([a.threshold for a in first], len(first_enqueued)) == ([0.8], 1)
    assert (again, len(again_enqueued)) == ([], 0)
    assert BudgetAlert.objects.count() == 1
    assert len(received) == 1 and len(mailoutbox) == 1


@pytest.mark.parametrize(
    "fields",
    [
        {"amount_usd": 0}, {"amount_usd": float("inf")}, {"amount_usd": True}, {"period": "year"}, {"thresholds": [0]},
        {"scope": "model", "members": []}, {"scope": "model", "members": ["model:nope"]}, {"scope": "prompt", "members": ["model:fraud"]},
    ],
)
def test_bad_budgets_are_refused(editor, fields):
    register("fraud", editor)

    with pytest.raises(ValidationFailed):
        services.budget_set(name="b", **({"amount_usd": 5} | fields), actor=editor)


def test_viewers_cannot_set_budgets(viewer):
    from mlops_site.exceptions import Forbidden

    with pytest.raises(Forbidden):
        services.budget_set(name="b", amount_usd=5, actor=viewer)


def test_budgets_over_http(api_as, editor, viewer):
    register("fraud", editor)

    created = api_as(editor).post("/api/v1/budgets", {"name": "fraud monthly", "amount_usd": 300, "period": "month", "scope": "model",
                                                      "members": ["model:fraud"]}, format="json")
    listed = api_as(viewer).get("/api/v1/budgets").json()
    one = api_as(viewer).get("/api/v1/budgets/fraud monthly").json()

    assert created.status_code == 201, created.content
    assert listed["count"] == 1 and one["spent_usd"] == 0.0 and one["thresholds"] == [0.8, 1.0] and one["forecast_usd"] is None
    assert api_as(viewer).post("/api/v1/budgets", {"name": "x", "amount_usd": 1}, format="json").status_code == 403
    assert api_as(editor).post("/api/v1/budgets", {"name": "x", "amount_usd": -1}, format="json").status_code == 400
    assert api_as(editor).post("/api/v1/budgets", {"name": "x", "amount_usd": 1, "colour": "red"}, format="json").status_code == 400
    assert api_as(viewer).get("/api/v1/budgets/nope").status_code == 404


def test_budget_list_answers_each_budgets_period_by_hand_in_a_fixed_number_of_queries(api_as, editor, viewer, monkeypatch,
                                                                                      django_assert_max_num_queries):
    fraud, other = register("fraud", editor), register("other", editor)
    services.budget_set(name="all daily", amount_usd=10, actor=editor)
    services.budget_set(name="fraud weekly", amount_usd=100, period="week", scope="model", members=["model:fraud"], actor=editor)
    services.budget_set(name="team monthly", amount_usd=1000, period="month", scope="team", members=["model:fraud", "model:other"],
                        actor=editor)
    hour_spend(fraud, datetime(2026, 10, 31, 23, tzinfo=UTC), 50.0)  # October: no period of today
    hour_spend(fraud, datetime(2026, 11, 1, 5, tzinfo=UTC), 7.0)  # this month, an earlier week
    hour_spend(fraud, datetime(2026, 11, 23, 10, tzinfo=UTC), 3.0)  # Monday: this week
    hour_spend(fraud, datetime(2026, 11, 24, 12, tzinfo=UTC), 5.0)  # yesterday, before the last 24 hours
    hour_spend(other, datetime(2026, 11, 24, 20, tzinfo=UTC), 2.0)  # yesterday, within the last 24 hours
    hour_spend(fraud, datetime(2026, 11, 25, 9, tzinfo=UTC), 1.5)
    hour_spend(fraud, datetime(2026, 11, 25, 15, tzinfo=UTC), 0.5)
    Rollup.objects.create(model_version=other, granularity="hour", bucket=datetime(2026, 11, 25, 14, tzinfo=UTC), requests=13, cost_usd=4.0,
                          cost_requests=10, pricing_missing=3)
    monkeypatch.setattr("django.utils.timezone.now", lambda: NOW)
    client = api_as(viewer)

    with django_assert_max_num_queries(5):  # token, roles, count, page, one read of every budget's spend
        listed = client.get("/api/v1/budgets").json()

    budgets = {b["name"]: b for b in listed["results"]}
    assert listed["count"] == 3
    # Today: 1.5 + 0.5 + 4.0 since midnight, 15.5 h gone and 8.5 h left; the rate is the whole day so far.
    assert budgets["all daily"] | {"forecast_usd": None} == {
        "name": "all daily", "scope": "all", "members": [], "period": "day", "amount_usd": 10.0, "thresholds": [0.8, 1.0], "enabled": True,
        "period_start": "2026-11-25T00:00:00Z", "period_end": "2026-11-26T00:00:00Z", "spent_usd": 6.0, "share": 0.6,
        "forecast_usd": None, "pricing_missing": 3,
    }
    assert budgets["all daily"]["forecast_usd"] == pytest.approx(6.0 + 6.0 / 15.5 * 8.5)
    # This week (from Monday): 3 + 5 + 1.5 + 0.5 of fraud; the rate counts from yesterday 15:00 (24.5 h), 104.5 h left.
    weekly = budgets["fraud weekly"]
    assert (weekly["period_start"], weekly["period_end"]) == ("2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z")
    assert (weekly["spent_usd"], weekly["share"], weekly["pricing_missing"]) == (10.0, 0.1, 0)
    assert weekly["forecast_usd"] == pytest.approx(10.0 + 2.0 / 24.5 * 104.5)
    # This month, both models: 7 + 3 + 5 + 2 + 1.5 + 0.5 + 4; the last 24.5 h spent 2 + 1.5 + 0.5 + 4, 128.5 h left.
    monthly = budgets["team monthly"]
    assert (monthly["period_start"], monthly["period_end"]) == ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")
    assert (monthly["spent_usd"], monthly["pricing_missing"]) == (23.0, 3)
    assert monthly["share"] == pytest.approx(0.023)
    assert monthly["forecast_usd"] == pytest.approx(23.0 + 8.0 / 24.5 * 128.5)
    assert client.get("/api/v1/budgets/team monthly").json() == monthly


def test_re_saving_a_budget_from_the_cost_page_keeps_where_it_notifies(client, editor, approver, settings):
    settings.MLOPS_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1:9"]
    services.budget_set(name="all spend", amount_usd=10, webhook_url="http://127.0.0.1:9/budget", webhook_secret="s3cret",
                        emails="finance@example.com", actor=approver)
    client.force_login(editor)

    saved = client.post("/monitoring/costs/budgets/", {"name": "all spend", "amount_usd": "20", "period": "day", "scope": "all",
                                                       "members": "", "thresholds": "80, 100"}, follow=True)

    budget = Budget.objects.get()
    assert "saved" in saved.content.decode()
    assert budget.amount_usd == 20.0
    assert (budget.webhook_url, budget.webhook_secret, budget.emails) == ("http://127.0.0.1:9/budget", "s3cret", "finance@example.com")


def test_the_cost_page_form_sets_a_budget(client, editor, viewer):
    from registry.services import prompts as prompt_services
    from tests.prompts.conftest import brief_folder

    prompt_services.prompts_import(files=brief_folder(), actor=editor)
    client.force_login(editor)

    saved = client.post("/monitoring/costs/budgets/", {"name": "summarize daily", "amount_usd": "12.5", "period": "day", "scope": "prompt",
                                                       "members": "prompt:summarize", "thresholds": "80, 100"}, follow=True)
    refused = client.post("/monitoring/costs/budgets/", {"name": "bad", "amount_usd": "-3", "scope": "all"}, follow=True)

    budget = Budget.objects.get()
    assert (budget.amount_usd, budget.members, budget.thresholds) == (12.5, ["prompt:summarize"], [0.8, 1.0])
    assert "saved" in saved.content.decode() and "amount_usd" in refused.content.decode()
    client.force_login(viewer)
    assert client.post("/monitoring/costs/budgets/", {"name": "v", "amount_usd": "1"}, follow=True).status_code == 200
    assert Budget.objects.count() == 1
