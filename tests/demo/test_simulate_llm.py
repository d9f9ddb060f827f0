"""The LLM traffic generator (seeded, its change point) and `manage.py simulate_llm_traffic` against a live server."""

import io
import re
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum

from demo.seed import demo_prompts_folder
from demo.simulation import after_point
from demo.simulation_llm import SUMMARIZE, LlmDraws, simulate_llm, token_cost
from monitoring import pricing, services
from monitoring.models import Budget, Event
from registry import services as registry_services
from registry.models import PromotionRequest
from tests.conftest import make_user

SONNET = pricing.PriceEntry("claude-sonnet-4*", 3e-6, 15e-6, 3e-7)


def rows(seed: int, start: int, stop: int, change_at: int | None = None, growth: float = 2.0) -> dict:
    index = np.arange(start, stop)
    changed = after_point(index, index.astype(float), change_at, None)
    return simulate_llm(SUMMARIZE, LlmDraws(seed, stream=0).rows(start, stop), changed, growth)


def test_llm_generator_gives_the_same_events_for_a_seed_whatever_the_chunks():
    whole = rows(5, 0, 12_000, change_at=6_000)

    parts = [rows(5, a, b, change_at=6_000) for a, b in ((0, 1_234), (1_234, 10_001), (10_001, 12_000))]
    other = rows(6, 0, 12_000, change_at=6_000)

    for key, values in whole.items():
        np.testing.assert_array_equal(values, np.concatenate([p[key] for p in parts]))
    assert not np.array_equal(whole["output_tokens"], other["output_tokens"])


def test_llm_change_point_doubles_the_mean_output_tokens_and_lowers_the_judge_scores():
    r = rows(1, 0, 40_000, change_at=20_000, growth=2.0)

    ok = ~r["error"]
    before, after = ok & (np.arange(40_000) < 20_000), ok & (np.arange(40_000) >= 20_000)
    assert r["output_tokens"][after].mean() / r["output_tokens"][before].mean() == pytest.approx(2.0, abs=0.08)
    assert r["input_tokens"][after].mean() / r["input_tokens"][before].mean() == pytest.approx(1.0, abs=0.05)
    judge = r["judge_score"]
    assert 0.04 < np.nanmean(judge[before]) - np.nanmean(judge[after]) < 0.15
    cost = token_cost(r, SONNET.input_per_token, SONNET.output_per_token, SONNET.cached_input_per_token)
    assert 1.7 < cost[after].mean() / cost[before].mean() < 2.0  # input tokens cost too: a little less than double


def test_llm_events_look_like_served_requests():
    r = rows(2, 0, 20_000)

    ok = ~r["error"]
    assert 0.007 < r["error"].mean() < 0.013
    assert 300 < np.median(r["input_tokens"][ok]) < 1_500 and np.percentile(r["input_tokens"][ok], 95) > 1_500
    assert np.all(r["cached_tokens"] <= r["input_tokens"]) and 0.3 < (r["cached_tokens"][ok] > 0).mean() < 0.9
    assert 2_000 < np.median(r["latency_ms"][ok]) < 10_000 and 150 < np.median(r["ttft_ms"][ok]) < 800
    assert np.all(r["ttft_ms"][ok] < r["latency_ms"][ok])
    assert 0.02 < r["guardrail"][ok].mean() < 0.04 and not r["guardrail"][~ok].any()
    given = r["feedback"][r["feedback"] != 0]
    assert 0.04 < len(given) / 20_000 < 0.08 and 0.8 < (given == 1).mean() < 0.95
    judged = ~np.isnan(r["judge_score"])
    assert 0.17 < judged.mean() < 0.23 and not judged[~ok].any()
    assert np.array_equal(judged, ~np.isnan(r["faithfulness"]))
    assert 0 <= np.nanmin(r["judge_score"]) and np.nanmax(r["faithfulness"]) <= 1


def test_token_cost_is_what_the_server_charges():
    r = rows(3, 0, 500)

    expected = [0.0 if e else pricing.cost(SONNET, i, o, c) for e, i, o, c in
                zip(r["error"], r["input_tokens"].tolist(), r["output_tokens"].tolist(), r["cached_tokens"].tolist(), strict=True)]

    np.testing.assert_allclose(token_cost(r, 3e-6, 15e-6, 3e-7), expected, rtol=1e-12)


# --- the command against a live server ------------------------------------------------------------


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command("simulate_llm_traffic", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def summarize(live_server):
    """The demo's prompts, as seed_demo imports them: summarize v2 in prod (claude-sonnet-4-5), v4 in dev; list prices loaded."""
    alice, bob = make_user("alice", "editor"), make_user("bob", "approver")
    registry_services.prompts_import(files=demo_prompts_folder(), actor=alice)
    for promotion in PromotionRequest.objects.filter(prompt__isnull=False, status="pending").order_by("id"):
        registry_services.promotion_approve(promotion_id=promotion.pk, actor=bob, comment="ok")
    call_command("import_prices", "--defaults", stdout=io.StringIO())


def test_a_day_of_prompt_requests_with_a_change_and_an_auto_budget_that_crosses_80_percent(live_server, summarize):
    now = datetime.now(UTC)
    start = max(now - timedelta(hours=1), now.replace(hour=0, minute=0, second=0, microsecond=0))  # today: the budget's period

    out = run_command("--prompt", "summarize", "--environment", "prod", "--events", "1000", "--batch", "300", "--start", start.isoformat(),
                       "--change-at", "50%", "--output-growth", "2", "--budget-usd", "auto", "--seed", "7", "--url", live_server.url)

    events = Event.objects.filter(prompt_version__prompt__name="summarize")
    assert events.count() == 1000 and not events.filter(model_version__isnull=False).exists()
    assert set(events.values_list("prompt_version__version", "llm_model").distinct()) == {(2, "claude-sonnet-4-5")}
    assert all(e.startswith("llm-7-") for e in events.values_list("event_id", flat=True))
    assert 0 < events.filter(error=True).count() < 25
    ok = events.filter(error=False)
    assert not ok.filter(cost_usd=None).exists() and not events.filter(pricing_missing=True).exists()  # priced by the server
    assert ok.exclude(judge_score=None).count() > 100 and ok.exclude(feedback=None).count() > 20
    ordered = list(ok.order_by("timestamp").values_list("output_tokens", "cost_usd"))
    early, late = np.array(ordered[: len(ordered) // 2], float), np.array(ordered[len(ordered) // 2:], float)
    assert late[:, 0].mean() / early[:, 0].mean() == pytest.approx(2.0, abs=0.25)
    spent = events.aggregate(cost=Sum("cost_usd"))["cost"]
    assert f"Spend at the server's prices: {spent:,.2f} USD." in out  # the command's estimate is what the server charged

    budget = Budget.objects.get(name="summarize daily")
    assert (budget.period, budget.scope, budget.members, budget.thresholds) == ("day", "prompt", ["prompt:summarize"], [0.8, 1.0])
    assert 0.8 < spent / budget.amount_usd < 0.95
    services.rollups_catch_up()
    fired = services.budgets_evaluate()
    assert [a.threshold for a in fired] == [0.8] and services.budgets_evaluate() == []
    assert "\r[" in out and "| change ON |" in out and "1,000 accepted, 0 duplicates" in out and "500 after the change" in out


def test_dry_run_sends_nothing_and_an_amount_is_the_budget(live_server, summarize):
    dry = run_command("--prompt", "summarize", "--version", "4", "--events", "200", "--backfill-hours", "2", "--budget-usd", "12.5",
                       "--llm-model", "in-house-llm-1", "--seed", "1", "--url", live_server.url, "--dry-run")

    assert "prompt summarize v4 (in-house-llm-1)" in dry and "Dry run: nothing sent." in dry
    assert "no price for in-house-llm-1" in dry and "Would set budget 'summarize daily' to 12.50 USD a day." in dry
    assert Event.objects.count() == 0 and not Budget.objects.exists()

    run_command("--prompt", "summarize", "--events", "50", "--backfill-hours", "1", "--budget-usd", "12.5", "--llm-model", "gpt-4o-mini",
                 "--url", live_server.url, "-v", "0")

    assert Budget.objects.get().amount_usd == 12.5
    assert set(Event.objects.values_list("prompt_version__version", "llm_model").distinct()) == {(2, "gpt-4o-mini")}  # prod by default


def test_llm_options_and_missing_versions_are_clear_errors(live_server, summarize):
    with pytest.raises(CommandError, match=re.escape("--budget-usd: a positive number of USD or auto, got 'lots'")):
        run_command("--prompt", "summarize", "--budget-usd", "lots", "--url", live_server.url)
    with pytest.raises(CommandError, match=re.escape(f"The server at {live_server.url} refused with HTTP 404: No prompt named 'nope'.")):
        run_command("--prompt", "nope", "--events", "5", "--backfill-hours", "1", "--url", live_server.url)
    with pytest.raises(CommandError, match="no price for in-house-llm-1"):
        run_command("--prompt", "summarize", "--environment", "dev", "--events", "5", "--backfill-hours", "1", "--budget-usd", "auto",
                     "--llm-model", "in-house-llm-1", "--url", live_server.url)
    assert Event.objects.count() == 0


def test_the_estimate_reads_every_page_of_prices_and_the_price_the_server_would_choose(live_server, summarize):
    fillers = [pricing.PriceEntry(f"aaa-{i:04d}", 1e-6, 1e-6) for i in range(600)]  # sorted before claude-*: its prices are on page 2
    services.prices_import(entries=[*fillers, pricing.PriceEntry("claude-sonnet-4-5", 1e-6, 2e-6)], effective_from=date(2025, 6, 1),
                        actor=None, source="test")

    out = run_command("--prompt", "summarize", "--events", "20", "--backfill-hours", "1", "--seed", "4", "--batch", "20",
                       "--url", live_server.url)

    spent = Event.objects.aggregate(cost=Sum("cost_usd"))["cost"]
    expected = sum(pricing.cost(pricing.PriceEntry("x", 1e-6, 2e-6), *t) for t in
                   Event.objects.filter(error=False).values_list("input_tokens", "output_tokens", "cached_tokens"))
    assert spent == pytest.approx(expected)  # the exact name's newer price, not the glob's list price
    assert f"Spend at the server's prices: {spent:,.2f} USD." in out
