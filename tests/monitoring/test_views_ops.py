"""Operations, cost and GenAI-quality pages, and the home page's "Unhealthy now" strip: numbers checked against the events sent."""

import json
import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import plotly.graph_objects as go
import pytest
from django.test import Client
from django.utils import timezone

from monitoring import services
from monitoring.charts import spend_per_day, time_series
from monitoring.models import AlertRule
from monitoring.services import budget_set
from registry.models import Prompt
from registry.services.prompts import prompts_import
from tests.factories import register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def send(api_as, user, events):
    for start in range(0, len(events), 5000):
        response = api_as(user).post("/api/v1/events", {"events": events[start : start + 5000]}, format="json")
        assert response.status_code == 202, response.content
    services.rollups_update()


def figures(html: str) -> dict[str, dict]:
    """Every json_script figure of a page, by its element id, each validated by plotly."""
    found = {m.group(1): json.loads(m.group(2)) for m in re.finditer(r'<script id="([\w-]+-figure)" type="application/json">(.*?)</script>', html, re.S)}
    for figure in found.values():
        go.Figure(figure)
    return found


def total(html: str, key: str) -> str:
    return re.search(rf'data-total="{key}">(.*?)</strong>', html, re.S).group(1).strip()


def lines(figure: dict) -> dict[float, str]:
    """The labelled reference lines of a figure: {y: label}."""
    return {note["y"]: note["text"] for note in figure["layout"].get("annotations", [])}


@pytest.fixture
def prompts(editor):
    prompts_import(files=brief_folder(), actor=editor)


def prompt_events(now, n: int, *, version: int = 2, prefix: str = "e", hours: float = 5.0, seed: int = 0, prompt: str = "summarize") -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "event_id": f"{prefix}-{i}", "prompt": prompt, "version": version,
            "timestamp": (now - timedelta(seconds=float(rng.uniform(60, hours * 3600)))).isoformat(),
            "latency_ms": round(float(rng.lognormal(np.log(1500), 0.4)), 1), "error": bool(rng.random() < 0.05),
            "ttft_ms": float(rng.uniform(100, 2500)), "input_tokens": int(rng.integers(200, 900)), "output_tokens": int(rng.integers(50, 300)),
            "cost_usd": float(rng.uniform(0.001, 0.01)), "judge_score": float(rng.uniform(0.3, 1.0)), "faithfulness": float(rng.uniform(0.5, 1.0)),
            "guardrail_triggered": bool(rng.random() < 0.1), "feedback": 1 if rng.random() < 0.7 else -1,
        }
        for i in range(n)
    ]


# --- access and empty states ----------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/monitoring/operations/model/fraud/", "/monitoring/operations/prompt/summarize/", "/monitoring/costs/", "/monitoring/quality/summarize/"])
def test_pages_need_login(db, url):
    response = Client().get(url)

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_pages_show_an_empty_state_without_traffic(viewer, editor, prompts):
    register("fraud", editor)
    client = logged_in(viewer)

    pages = {url: client.get(url) for url in ["/monitoring/operations/model/fraud/", "/monitoring/operations/prompt/summarize/",
                                               "/monitoring/quality/summarize/", "/monitoring/costs/"]}

    for url, response in pages.items():
        html = response.content.decode()
        assert response.status_code == 200, url
        assert 'id="empty-state"' in html, url
        assert figures(html) == {}, url
    assert 'id="no-budgets"' in pages["/monitoring/costs/"].content.decode()
    assert "No prompt traffic in this window" in pages["/monitoring/costs/"].content.decode()


def test_unknown_subjects_are_404(viewer, editor):
    register("fraud", editor)
    client = logged_in(viewer)

    assert client.get("/monitoring/operations/model/nope/").status_code == 404
    assert client.get("/monitoring/operations/banana/fraud/").status_code == 404
    assert client.get("/monitoring/operations/prompt/fraud/").status_code == 404
    assert client.get("/monitoring/quality/nope/").status_code == 404


# --- operations ----------------------------------------------------------------------------------------


def test_operations_totals_and_charts_match_the_events(api_as, editor, viewer, prompts):
    now = timezone.now()
    events = prompt_events(now, 600, version=2) + prompt_events(now, 400, version=3, prefix="f", seed=1)
    send(api_as, editor, events)

    html = logged_in(viewer).get("/monitoring/operations/prompt/summarize/").content.decode()

    latency = np.array([e["latency_ms"] for e in events])
    assert total(html, "requests") == "1000"
    assert total(html, "error_rate") == f"{100 * np.mean([e['error'] for e in events]):.2f} %"
    shown_p95 = float(total(html, "latency_p95").removesuffix(" ms"))
    assert shown_p95 == pytest.approx(np.quantile(latency, 0.95, method="inverted_cdf"), rel=0.011)
    assert total(html, "cost") == f"${sum(e['cost_usd'] for e in events):.4f}"
    charts = figures(html)
    assert set(charts) == {"throughput-figure", "errors-figure", "latency-figure", "ttft-figure", "tokens-figure"}
    assert [t["name"] for t in charts["latency-figure"]["data"]] == ["P50", "P95", "P99"]
    assert lines(charts["latency-figure"]) == {10_000.0: "P95 limit 10 s"}
    assert lines(charts["ttft-figure"]) == {2_000.0: "limit 2 s"}
    assert all(s["line"]["dash"] == "dash" for s in charts["latency-figure"]["layout"]["shapes"])
    assert charts["latency-figure"]["layout"]["template"] == "none"
    hours = {datetime.fromisoformat(e["timestamp"]).astimezone(UTC).strftime("%Y-%m-%d %H:00") for e in events}
    assert charts["throughput-figure"]["data"][0]["x"] == sorted(hours)  # one point per hour with traffic
    tokens = charts["tokens-figure"]["data"]
    assert [t["name"] for t in tokens] == ["input", "output"]


def test_operations_of_a_model_draw_the_sla_and_list_firing_rules(api_as, editor, viewer, settings):
    settings.MLOPS_LATENCY_SLA_MS = 200
    register("fraud", editor)
    now = timezone.now()
    send(api_as, editor, [
        {"event_id": f"m-{i}", "model": "fraud", "version": 1, "timestamp": (now - timedelta(minutes=50) + timedelta(seconds=i)).isoformat(),
         "latency_ms": 300.0 + i % 7, "error": i % 10 == 0}
        for i in range(500)
    ])
    services.ops_alerts_evaluate(now=now)

    html = logged_in(viewer).get("/monitoring/operations/model/fraud/").content.decode()

    charts = figures(html)
    assert lines(charts["latency-figure"]) == {200.0: "SLA 200 ms"}
    assert "ttft-figure" not in charts and "tokens-figure" not in charts
    firing = re.search(r'<section class="card" id="firing">(.*?)</section>', html, re.S).group(1)
    assert "Latency P95 over SLA" in firing and "Error rate" in firing and "severity-significant" in firing
    assert "10.0 %" in firing  # the error rate rule's value, as a percentage


def test_a_rules_own_threshold_is_the_line_drawn(api_as, editor, viewer, prompts):
    prompt = Prompt.objects.get(name="summarize")
    services.ops_rules_ensure(prompt=prompt)
    AlertRule.objects.filter(prompt=prompt, metric="latency_p95_ms").update(threshold=4000.0)
    send(api_as, editor, prompt_events(timezone.now(), 50))

    html = logged_in(viewer).get("/monitoring/operations/prompt/summarize/").content.decode()

    assert lines(figures(html)["latency-figure"]) == {4000.0: "P95 limit 4 s"}


def test_version_filter_applies_to_totals_and_charts(api_as, editor, viewer, prompts):
    now = timezone.now()
    send(api_as, editor, prompt_events(now, 120, version=2) + prompt_events(now, 80, version=3, prefix="f"))
    client = logged_in(viewer)

    only_v3 = client.get("/monitoring/operations/prompt/summarize/?version=3").content.decode()
    both = client.get("/monitoring/operations/prompt/summarize/?version=2&version=3").content.decode()
    bad = client.get("/monitoring/operations/prompt/summarize/?version=9&version=x&version=2").content.decode()

    assert total(only_v3, "requests") == "80" and total(both, "requests") == "200"
    assert re.search(r'value="3" checked> v3', only_v3) and re.search(r'value="2"> v2', only_v3)
    assert total(bad, "requests") == "120" and "Ignored unknown version(s): 9, x." in bad
    assert 'href="?version=3&amp;range=7d"' in only_v3  # the presets keep the filter


def test_range_picker_presets_custom_days_and_bad_input(api_as, editor, viewer, prompts):
    now = timezone.now()
    old = now - timedelta(days=3)
    send(api_as, editor, prompt_events(now, 30) + prompt_events(old, 20, prefix="old", hours=2))
    client = logged_in(viewer)
    url = "/monitoring/operations/prompt/summarize/"
    day = (old - timedelta(hours=2)).astimezone(UTC).date()

    assert total(client.get(url).content.decode(), "requests") == "30"
    assert total(client.get(url + "?range=7d").content.decode(), "requests") == "50"
    custom = client.get(f"{url}?start={day - timedelta(days=1)}&end={(old.astimezone(UTC)).date()}").content.decode()
    assert total(custom, "requests") == "20"
    assert f'value="{day - timedelta(days=1)}"' in custom

    for bad in ["?range=1y", "?start=garbage", "?start=2026-02-30", f"?start={now.date()}&end={now.date() - timedelta(days=5)}",
                "?end=2026-01-01", "?start=1900-01-01&end=2026-01-01", "?start=9999-12-31&end=9999-12-31", "?start=2026-01-01T99:00"]:
        response = client.get(url + bad)
        html = response.content.decode()
        assert response.status_code == 200, bad
        assert 'class="msg msg-warning"' in html and total(html, "requests") == "30", bad


# --- quality -------------------------------------------------------------------------------------------


def test_quality_page_shows_the_signals_their_thresholds_and_the_lowest_scores(api_as, editor, viewer, prompts):
    now = timezone.now()
    events = prompt_events(now, 300, version=2) + prompt_events(now, 200, version=3, prefix="f", seed=3)
    events[5]["judge_score"] = None
    send(api_as, editor, events)

    html = logged_in(viewer).get("/monitoring/quality/summarize/").content.decode()

    judged = [e for e in events if e["judge_score"] is not None]
    assert float(total(html, "judge_avg")) == pytest.approx(np.mean([e["judge_score"] for e in judged]), abs=5e-4)
    assert float(total(html, "faithfulness_avg")) == pytest.approx(np.mean([e["faithfulness"] for e in events]), abs=5e-4)
    assert total(html, "guardrail_rate") == f"{100 * np.mean([e['guardrail_triggered'] for e in events]):.1f} %"
    assert total(html, "thumbs_up_share") == f"{100 * np.mean([e['feedback'] == 1 for e in events]):.0f} %"
    charts = figures(html)
    assert lines(charts["judge-figure"]) == {0.7: "alert below 0.7"}
    assert lines(charts["faithfulness-figure"]) == {0.8: "alert below 0.8"}
    assert lines(charts["guardrail-figure"]) == {0.05: "alert above 5%"}
    assert lines(charts["thumbs-figure"]) == {0.8: "alert below 80%"}
    rows = re.findall(r"<tr><td class=\"nowrap\">.*?v(\d)</a></td>\s*<td class=\"num\">([\d.]+)</td>.*?<code>([\w-]+)</code>", html, re.S)
    lowest = sorted(judged, key=lambda e: e["judge_score"])[:20]
    assert [r[2] for r in rows] == [e["event_id"] for e in lowest]
    assert [int(r[0]) for r in rows] == [e["version"] for e in lowest]


def test_quality_version_filter_limits_the_examples(api_as, editor, viewer, prompts):
    now = timezone.now()
    send(api_as, editor, prompt_events(now, 30, version=2) + prompt_events(now, 30, version=3, prefix="f", seed=4))

    html = logged_in(viewer).get("/monitoring/quality/summarize/?version=3").content.decode()

    assert total(html, "requests") == "30"
    assert set(re.findall(r"<code>(\w+)-\d+</code>", html)) == {"f"}


# --- costs ---------------------------------------------------------------------------------------------


def test_costs_page_spend_table_and_missing_prices(api_as, editor, viewer, prompts):
    now = timezone.now()
    summarize = prompt_events(now, 200, hours=20)
    classify = prompt_events(now, 100, prompt="classify", version=1, prefix="c", seed=5, hours=20)
    unpriced = [{"event_id": f"u-{i}", "prompt": "classify", "version": 1, "timestamp": (now - timedelta(minutes=5)).isoformat(),
                 "latency_ms": 100.0, "llm_model": "mystery-llm", "input_tokens": 100, "output_tokens": 10} for i in range(7)]
    register("fraud", editor)
    scoring = [{"event_id": f"m-{i}", "model": "fraud", "version": 1, "timestamp": (now - timedelta(hours=i)).isoformat(), "latency_ms": 20.0,
                "cost_usd": 0.25} for i in range(4)]
    send(api_as, editor, summarize + classify + unpriced + scoring)
    client = logged_in(viewer)

    html = client.get("/monitoring/costs/?range=7d").content.decode()
    by_model = client.get("/monitoring/costs/?range=7d&by=model").content.decode()
    bad = client.get("/monitoring/costs/?by=team&range=7d").content.decode()

    charts = figures(html)
    stacked = charts["spend-figure"]
    assert {t["name"] for t in stacked["data"]} == {"summarize", "classify"} and stacked["layout"]["barmode"] == "stack"
    assert sum(sum(t["y"]) for t in stacked["data"]) == pytest.approx(sum(e["cost_usd"] for e in summarize + classify))
    assert {t["name"] for t in charts["cost-per-request-figure"]["data"]} == {"summarize", "classify"}
    row = re.search(r'<tr data-prompt="classify">(.*?)</tr>', html, re.S).group(1)
    spent = sum(e["cost_usd"] for e in classify)
    assert f"${spent:.4f}" in row and f"${spent / 100:.6f}" in row and '<td class="num">107</td>' in row
    assert "7 requests without a price" in row
    first = re.search(r'<tr data-prompt="(\w+)">', html).group(1)
    assert first == ("summarize" if sum(e["cost_usd"] for e in summarize) > spent else "classify")
    assert [(t["name"], sum(t["y"])) for t in figures(by_model)["spend-figure"]["data"]] == [("fraud", pytest.approx(1.0))]
    assert "Unknown grouping" in bad and "spend-figure" in bad


def test_costs_page_budget_burndown(api_as, editor, viewer, prompts):
    now = timezone.now()
    day_start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    events = prompt_events(now, 40)
    for i, e in enumerate(events):  # all inside today's (UTC) period
        e["timestamp"] = (day_start + (now - day_start) * (i + 1) / 41).isoformat()
    send(api_as, editor, events)
    spent = sum(e["cost_usd"] for e in events)
    budget = budget_set(name="summaries", amount_usd=spent / 0.9, period="day", scope="prompt", members=["prompt:summarize"], actor=editor)
    budget_set(name="classify-only", amount_usd=5.0, period="month", scope="prompt", members=["prompt:classify"], actor=editor)

    html = logged_in(viewer).get("/monitoring/costs/").content.decode()

    charts = figures(html)
    figure = charts[f"budget-{budget.pk}-figure"]
    assert figure["data"][0]["y"][-1] == pytest.approx(spent)
    assert [t["name"] for t in figure["data"]] == ["spent", "forecast"] and figure["data"][1]["line"]["dash"] == "dash"
    drawn = sorted(lines(figure).items())
    assert [y for y, _ in drawn] == pytest.approx([0.8 * budget.amount_usd, budget.amount_usd])
    assert [text for _, text in drawn] == [f"80%: {0.8 * budget.amount_usd:,.2f} USD", f"budget {budget.amount_usd:,.2f} USD"]
    assert figure["layout"]["xaxis"]["range"][1].endswith("00:00")
    assert "(<span class=\"severity severity-moderate\">90 %</span>)" in html
    assert len([k for k in charts if k.startswith("budget-")]) == 2


# --- home strip ----------------------------------------------------------------------------------------


def test_home_strip_lists_firing_rules_and_budgets_over_80_percent(api_as, editor, viewer, prompts):
    now = timezone.now()
    events = prompt_events(now, 60, hours=0.5)
    send(api_as, editor, events)
    services.ops_alerts_evaluate(now=now)
    spent = sum(e["cost_usd"] for e in events)
    budget_set(name="tight", amount_usd=spent / 0.85, period="month", scope="prompt", members=["prompt:summarize"], actor=editor)
    budget_set(name="roomy", amount_usd=spent * 10, period="month", actor=editor)

    html = logged_in(viewer).get("/").content.decode()

    strip = re.search(r'<section id="unhealthy">(.*?)</section>', html, re.S).group(1)
    firing = AlertRule.objects.filter(prompt__name="summarize").exclude(state="ok")
    assert {r.metric for r in firing} >= {"judge_score_avg", "ttft_p95_ms"}  # judge average ~0.65, TTFT P95 ~2.4 s
    for rule in firing:
        assert f'data-rule="{rule.pk}"' in strip
    judge, ttft = firing.get(metric="judge_score_avg"), firing.get(metric="ttft_p95_ms")
    assert re.search(rf'data-rule="{judge.pk}">\s*<td><a href="/monitoring/quality/summarize/">Judge score</a>', strip)
    assert re.search(rf'data-rule="{ttft.pk}">\s*<td><a href="/monitoring/operations/prompt/summarize/">', strip)
    assert f"{judge.last_value:.3g}" in strip and f"{ttft.last_value:,.0f} ms" in strip
    assert "Budget tight" in strip and "85 % spent" in strip and "roomy" not in strip


def test_home_strip_all_clear(viewer):
    html = logged_in(viewer).get("/").content.decode()

    assert 'id="all-clear"' in html


def test_home_strip_query_count_is_constant(api_as, editor, viewer, prompts, django_assert_max_num_queries):
    send(api_as, editor, prompt_events(timezone.now(), 60, hours=0.5))
    services.ops_alerts_evaluate()
    for i in range(6):
        budget_set(name=f"b{i}", amount_usd=0.01, period=["day", "week", "month"][i % 3], actor=editor)
    client = logged_in(viewer)

    with django_assert_max_num_queries(11):  # 8 before the strip; + firing rules, budgets, their spend
        html = client.get("/").content.decode()

    assert html.count("data-budget=") == 6


# --- query counts --------------------------------------------------------------------------------------


# session, user, role; then per page: versions, series, totals, rules (+ the low scores on the quality page);
# costs: spend, prompt table, cost per request, budgets, their hourly spend, and budget_status (2) per budget.
@pytest.mark.parametrize(("url", "limit"), [
    ("/monitoring/operations/prompt/summarize/?range=30d&version=2&version=3", 7),
    ("/monitoring/quality/summarize/?range=30d", 8),
    ("/monitoring/costs/?range=30d", 10),
    ("/monitoring/costs/?range=30d&by=model", 10),
])
@pytest.mark.parametrize("hours", [3, 200])
def test_pages_use_a_constant_number_of_queries(api_as, editor, viewer, prompts, django_assert_max_num_queries, url, limit, hours):
    now = timezone.now()
    events = prompt_events(now, 400, hours=hours) + prompt_events(now, 100, version=3, prefix="f", hours=hours)
    send(api_as, editor, events)
    services.ops_alerts_evaluate()  # rules in alert: the firing tables link to their pages
    budget_set(name="all", amount_usd=1.0, period="week", actor=editor)
    client = logged_in(viewer)

    with django_assert_max_num_queries(limit):
        response = client.get(url)

    assert response.status_code == 200 and figures(response.content.decode())


# --- figure builders -----------------------------------------------------------------------------------


def test_time_series_is_downsampled_and_valid():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    x = [start + timedelta(hours=i) for i in range(9000)]

    figure = time_series(title="<b>P95</b>", x=x, series={"P95": [float(i) for i in range(9000)]}, y_title="ms", lines=[(10.0, "SLA")])

    go.Figure(figure)
    trace = figure["data"][0]
    assert len(trace["x"]) <= 2001 and trace["x"][0] == "2026-01-01 00:00" and trace["x"][-1] == "2027-01-10 23:00"
    assert figure["layout"]["title"]["text"] == "&lt;b&gt;P95&lt;/b&gt;" and figure["layout"]["shapes"][0]["y0"] == 10.0


def test_spend_per_day_keeps_the_largest_names_and_sums_the_rest():
    days = [date(2026, 1, 1), date(2026, 1, 2)]
    rows = [(day, f"p{i}", float(i)) for day in days for i in range(12)]

    figure = spend_per_day(rows, top=3)

    go.Figure(figure)
    assert [t["name"] for t in figure["data"]] == ["p11", "p10", "p9", "other"]
    assert figure["data"][-1]["y"] == [sum(range(9))] * 2
