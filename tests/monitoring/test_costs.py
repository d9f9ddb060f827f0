"""The price table (service, API, command, page) and the cost of each event at ingestion."""

import math
from datetime import date
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from mlops_site.exceptions import Conflict, Forbidden, ValidationFailed
from monitoring import services
from monitoring.models import Event, Price
from monitoring.pricing import PriceEntry
from registry import services as registry_services
from tests.factories import register
from tests.prompts.conftest import brief_folder
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db

M = 1_000_000
# The shipped snapshot's date, from its file name (monitoring/data/litellm_prices_<date>.json).
SNAPSHOT_DAY = max(p.stem.removeprefix("litellm_prices_") for p in (Path(__file__).resolve().parents[2] / "monitoring" / "data").glob("litellm_prices_*.json"))


def event(i: int, **overrides) -> dict:
    base = {"event_id": f"c-{i}", "model": "chatbot", "version": 1, "timestamp": "2026-11-20T10:00:00Z", "latency_ms": 800.0}
    return base | overrides


@pytest.fixture
def chatbot(editor):
    return register("chatbot", editor)


@pytest.fixture
def gpt_prices(editor):
    """gpt-4.1: input 2, cached 0.5, output 8, reasoning 12 USD per 1M tokens; gpt-4.1* (other snapshots): 3 / 12."""
    services.price_set(pattern="gpt-4.1", input_per_token=2 / M, output_per_token=8 / M, cached_input_per_token=0.5 / M,
                    reasoning_per_token=12 / M, effective_from=date(2026, 1, 1), actor=editor)
    services.price_set(pattern="gpt-4.1*", input_per_token=3 / M, output_per_token=12 / M, effective_from=date(2026, 1, 1), actor=editor)


def stored(event_id: str) -> Event:
    return Event.objects.get(event_id=event_id)


# --- price_set and the prices API --------------------------------------------------------------


def test_price_set_stores_a_price(editor):
    price = services.price_set(pattern=" gpt-4o ", input_per_token=2.5e-06, output_per_token=1e-05, effective_from=date(2025, 1, 1), actor=editor)

    assert (price.pattern, price.input_per_token, price.cached_input_per_token, price.source) == ("gpt-4o", 2.5e-06, None, "manual by alice")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"input_per_token": -1e-06}, "input_per_token"),
        ({"output_per_token": float("inf")}, "output_per_token"),
        ({"cached_input_per_token": float("nan")}, "cached_input_per_token"),
        ({"reasoning_per_token": "1e-6"}, "reasoning_per_token"),
        ({"pattern": "  "}, "pattern"),
        ({"effective_from": "2025-01-01"}, "effective_from"),
    ],
)
def test_price_set_refuses_bad_input(editor, fields, field):
    args = {"pattern": "gpt-4o", "input_per_token": 1e-06, "output_per_token": 1e-06, "effective_from": date(2025, 1, 1)} | fields

    with pytest.raises(ValidationFailed) as caught:
        services.price_set(**args, actor=editor)

    assert field in caught.value.extra["fields"]
    assert not Price.objects.exists()


def test_price_set_refuses_a_duplicate_date_and_a_viewer(editor, viewer):
    services.price_set(pattern="gpt-4o", input_per_token=1e-06, output_per_token=1e-06, effective_from=date(2025, 1, 1), actor=editor)

    with pytest.raises(Conflict):
        services.price_set(pattern="gpt-4o", input_per_token=2e-06, output_per_token=2e-06, effective_from=date(2025, 1, 1), actor=editor)
    with pytest.raises(Forbidden):
        services.price_set(pattern="gpt-4o", input_per_token=2e-06, output_per_token=2e-06, effective_from=date(2025, 2, 1), actor=viewer)

    assert Price.objects.get().input_per_token == 1e-06


def test_api_adds_a_price_and_a_duplicate_is_409_in_the_one_shape(api_as, editor):
    body = {"pattern": "gpt-4o-mini*", "input_per_token": 1.5e-07, "output_per_token": 6e-07, "cached_input_per_token": 7.5e-08,
            "effective_from": "2025-01-01"}
    client = api_as(editor)

    created = client.post("/api/v1/prices", body, format="json")
    again = client.post("/api/v1/prices", body | {"input_per_token": 2e-07}, format="json")

    assert created.status_code == 201, created.content
    assert created.json() | {"id": 0, "created_at": None} == {
        "id": 0, "pattern": "gpt-4o-mini*", "input_per_token": 1.5e-07, "output_per_token": 6e-07, "cached_input_per_token": 7.5e-08,
        "reasoning_per_token": None, "cache_creation_per_token": None, "long_context_threshold": None,
        "long_context_input_per_token": None, "long_context_output_per_token": None, "long_context_cached_input_per_token": None,
        "long_context_cache_creation_per_token": None, "effective_from": "2025-01-01", "source": "manual by alice", "created_at": None,
    }
    error = assert_error_shape(again, 409, "duplicate_price")
    assert "gpt-4o-mini*" in error["message"] and "2025-01-01" in error["message"]
    assert Price.objects.count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [({"input_per_token": -0.001}, "input_per_token"), ({"effective_from": "1 Jan"}, "effective_from"), ({"colour": "red"}, "colour")],
)
def test_api_bad_price_is_400_naming_the_field(api_as, editor, change, field):
    body = {"pattern": "gpt-4o", "input_per_token": 1e-06, "output_per_token": 1e-06, "effective_from": "2025-01-01"} | change

    error = assert_error_shape(api_as(editor).post("/api/v1/prices", body, format="json"), 400, "invalid")

    assert field in error["extra"]["fields"]
    assert not Price.objects.exists()


def test_api_price_list_is_paginated_and_searchable_and_viewers_cannot_add(api_as, editor, viewer, django_assert_max_num_queries):
    for k, pattern in enumerate(["gpt-4o", "gpt-4o-mini", "claude-sonnet-4*"]):
        services.price_set(pattern=pattern, input_per_token=k / M, output_per_token=k / M, effective_from=date(2025, 1, 1), actor=editor)
    client = api_as(viewer)

    with django_assert_max_num_queries(4):  # token, roles, count, page
        everything = client.get("/api/v1/prices").json()
    found = client.get("/api/v1/prices?search=gpt-4o").json()
    refused = client.post("/api/v1/prices", {"pattern": "x", "input_per_token": 0, "output_per_token": 0, "effective_from": "2025-01-01"}, format="json")

    assert everything["count"] == 3 and {"next", "previous", "results"} <= set(everything)
    assert [p["pattern"] for p in found["results"]] == ["gpt-4o", "gpt-4o-mini"]
    assert_error_shape(refused, 403)
    assert Price.objects.count() == 3


# --- prices_import and the command ---------------------------------------------------------------


def test_prices_import_is_idempotent_and_reports_conflicts(editor):
    entries = [PriceEntry("gpt-4o", 2.5e-06, 1e-05, 1.25e-06), PriceEntry("gpt-4o-mini", 1.5e-07, 6e-07)]

    first = services.prices_import(entries=entries, effective_from=date(2025, 1, 1), actor=editor, source="litellm")
    second = services.prices_import(entries=entries, effective_from=date(2025, 1, 1), actor=editor, source="litellm")
    changed = services.prices_import(entries=[PriceEntry("gpt-4o", 3e-06, 1e-05)], effective_from=date(2025, 1, 1), actor=editor, source="litellm")
    later = services.prices_import(entries=[PriceEntry("gpt-4o", 3e-06, 1e-05)], effective_from=date(2025, 6, 1), actor=editor, source="litellm")

    assert first == (["gpt-4o", "gpt-4o-mini"], [], [])
    assert second == ([], ["gpt-4o", "gpt-4o-mini"], [])
    assert changed == ([], [], ["gpt-4o"])
    assert later.created == ["gpt-4o"]
    assert Price.objects.get(pattern="gpt-4o", effective_from=date(2025, 1, 1)).input_per_token == 2.5e-06


def test_prices_import_needs_the_editor_role(viewer):
    with pytest.raises(Forbidden):
        services.prices_import(entries=[PriceEntry("gpt-4o", 1e-06, 1e-06)], effective_from=date(2025, 1, 1), actor=viewer, source="litellm")


def test_import_prices_command_defaults_twice_creates_nothing_new(capsys):
    call_command("import_prices", "--defaults")
    count = Price.objects.count()
    call_command("import_prices", "--defaults")

    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Prices from {SNAPSHOT_DAY}: {count} created, 0 unchanged, 0 conflicts."
    assert out[1] == f"Prices from {SNAPSHOT_DAY}: 0 created, {count} unchanged, 0 conflicts."
    assert count > 3000 and set(Price.objects.values_list("source", flat=True)) == {f"default {SNAPSHOT_DAY}"}
    # A model's first shipped price also prices the history already stored.
    assert set(Price.objects.values_list("effective_from", flat=True)) == {date(2025, 1, 1)}


def test_import_prices_command_reads_a_litellm_file(tmp_path, capsys):
    path = tmp_path / "model_prices_and_context_window.json"
    path.write_text('{"sample_spec": {}, "my-llm": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "mode": "chat"}}')

    call_command("import_prices", str(path), "--effective-from", "2025-03-01")

    assert "1 created, 0 unchanged, 0 conflicts" in capsys.readouterr().out
    price = Price.objects.get()
    assert (price.pattern, price.effective_from, price.source) == ("my-llm", date(2025, 3, 1), "import model_prices_and_context_window.json")


@pytest.mark.parametrize("args", [[], ["--defaults", "x.json"], ["/nonexistent.json"], ["--defaults", "--effective-from", "2025-13-01"]])
def test_import_prices_command_errors(args):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("import_prices", *args)


# --- cost at ingestion -------------------------------------------------------------------------


def test_ingested_tokens_are_priced_by_hand(api_as, editor, chatbot, gpt_prices):
    events = [
        event(1, llm_model="gpt-4.1", input_tokens=1000, cached_tokens=200, output_tokens=500, reasoning_tokens=100),
        event(2, llm_model="gpt-4.1-2025-04-14", input_tokens=1000, output_tokens=500),  # the glob: 3 and 12 per 1M
    ]

    response = api_as(editor).post("/api/v1/events", {"events": events}, format="json")

    assert response.status_code == 202, response.content
    # (800 x 2 + 200 x 0.5 + 400 x 8 + 100 x 12) / 1M and (1,000 x 3 + 500 x 12) / 1M.
    assert stored("c-1").cost_usd == pytest.approx(0.0061, rel=1e-12) and not stored("c-1").pricing_missing
    assert stored("c-2").cost_usd == pytest.approx(0.009, rel=1e-12)


def test_no_price_gives_null_cost_and_the_flag_never_zero(api_as, editor, chatbot, gpt_prices):
    events = [
        event(1, llm_model="mystery-llm", input_tokens=100, output_tokens=10),
        event(2, input_tokens=100),  # tokens but no LLM named
        event(3, llm_model="mystery-llm"),  # no tokens: nothing to price, nothing missing
    ]

    api_as(editor).post("/api/v1/events", {"events": events}, format="json")

    assert (stored("c-1").cost_usd, stored("c-1").pricing_missing) == (None, True)
    assert (stored("c-2").cost_usd, stored("c-2").pricing_missing) == (None, True)
    assert (stored("c-3").cost_usd, stored("c-3").pricing_missing) == (None, False)
    assert not Event.objects.filter(cost_usd=0).exists()


def test_an_events_own_cost_wins(api_as, editor, chatbot, gpt_prices):
    events = [event(1, llm_model="gpt-4.1", input_tokens=1000, output_tokens=500, cost_usd=0.5), event(2, llm_model="nope", input_tokens=5, cost_usd=0)]

    api_as(editor).post("/api/v1/events", {"events": events}, format="json")

    assert (stored("c-1").cost_usd, stored("c-1").pricing_missing) == (0.5, False)
    assert (stored("c-2").cost_usd, stored("c-2").pricing_missing) == (0, False)


def test_a_price_change_mid_way_prices_events_before_and_after_differently(editor, chatbot):
    for day, price in ((date(2026, 1, 1), 10), (date(2026, 11, 15), 4)):
        services.price_set(pattern="gpt-4o", input_per_token=price / M, output_per_token=price / M, effective_from=day, actor=editor)
    events = [
        event(1, llm_model="gpt-4o", input_tokens=1000, timestamp="2026-11-14T23:59:59Z"),
        event(2, llm_model="gpt-4o", input_tokens=1000, timestamp="2026-11-15T00:00:00Z"),
        event(3, llm_model="gpt-4o", input_tokens=1000, timestamp="2026-11-15T00:30:00+02:00"),  # 14 Nov, 22:30 UTC
        event(4, llm_model="gpt-4o", input_tokens=1000, timestamp="2025-12-31T12:00:00Z"),  # before any price
    ]

    services.events_ingest(payload={"events": events}, actor=editor)  # the strict path, not the API's fast one

    assert stored("c-1").cost_usd == pytest.approx(0.01)
    assert stored("c-2").cost_usd == pytest.approx(0.004)
    assert stored("c-3").cost_usd == pytest.approx(0.01)
    assert (stored("c-4").cost_usd, stored("c-4").pricing_missing) == (None, True)


def test_prompt_events_take_their_llm_from_the_prompt_version(api_as, editor, gpt_prices):
    registry_services.prompts_import(files=brief_folder(), actor=editor)  # summarize runs claude-sonnet-4, classify gpt-4o-mini
    services.price_set(pattern="claude-sonnet-4*", input_per_token=3 / M, output_per_token=15 / M, effective_from=date(2025, 1, 1), actor=editor)
    base = {"timestamp": "2026-11-20T10:00:00Z", "latency_ms": 900.0, "version": 1}
    events = [
        base | {"event_id": "p-1", "prompt": "summarize", "input_tokens": 1000, "output_tokens": 100},
        base | {"event_id": "p-2", "prompt": "summarize", "llm_model": "gpt-4.1", "input_tokens": 1000, "output_tokens": 100},
        base | {"event_id": "p-3", "prompt": "classify", "input_tokens": 10},
    ]

    api_as(editor).post("/api/v1/events", {"events": events}, format="json")

    assert (stored("p-1").llm_model, stored("p-1").cost_usd) == ("claude-sonnet-4", pytest.approx((1000 * 3 + 100 * 15) / M))
    assert (stored("p-2").llm_model, stored("p-2").cost_usd) == ("gpt-4.1", pytest.approx((1000 * 2 + 100 * 8) / M))
    assert (stored("p-3").llm_model, stored("p-3").cost_usd, stored("p-3").pricing_missing) == ("gpt-4o-mini", None, True)


def test_a_batch_without_tokens_does_not_read_the_prices(api_as, editor, chatbot, gpt_prices):
    client = api_as(editor)

    with CaptureQueriesContext(connection) as queries:
        client.post("/api/v1/events", {"events": [event(i) for i in range(3)]}, format="json")

    assert not any(Price._meta.db_table in q["sql"] for q in queries.captured_queries)
    assert Event.objects.filter(cost_usd__isnull=True, pricing_missing=False).count() == 3


def test_event_costs_reads_the_prices_once_per_batch(editor, chatbot, gpt_prices, django_assert_num_queries):
    from monitoring.events import validate_batch

    clean = validate_batch({"events": [event(i, llm_model="gpt-4.1", input_tokens=i, output_tokens=1) for i in range(50)]})

    with django_assert_num_queries(1):
        priced = services.event_costs(clean)

    assert priced[10] == (pytest.approx((10 * 2 + 8) / M), False)
    assert all(not math.isnan(c) for c, _ in priced)


# --- the page ----------------------------------------------------------------------------------


def test_prices_page_empty_state_and_no_form_for_viewers(client, viewer):
    client.force_login(viewer)

    page = client.get("/monitoring/prices/").content.decode()

    assert "No prices yet" in page and "import_prices --defaults" in page
    assert 'id="price-form"' not in page


def test_prices_page_lists_prices_per_million_and_searches(client, editor, gpt_prices, django_assert_max_num_queries):
    client.force_login(editor)

    with django_assert_max_num_queries(6):
        page = client.get("/monitoring/prices/").content.decode()
    found = client.get("/monitoring/prices/?q=gpt-4.1*").content.decode()

    assert "<code>gpt-4.1</code>" in page and 'id="price-form"' in page
    assert "<td class=\"num\">0.5</td>" in page and "<td class=\"num\">12</td>" in page
    assert "<code>gpt-4.1*</code>" in found and "<code>gpt-4.1</code>" not in found


def test_prices_page_adds_a_price_per_million_tokens(client, editor):
    client.force_login(editor)

    response = client.post("/monitoring/prices/", {"pattern": "gpt-4o", "input": "2.50", "output": "10", "cached": "", "reasoning": "",
                                                   "effective_from": "2025-01-01"}, follow=True)

    price = Price.objects.get()
    assert (price.input_per_token, price.output_per_token, price.cached_input_per_token) == (pytest.approx(2.5e-06), pytest.approx(1e-05), None)
    assert "Price of gpt-4o from 2025-01-01 added." in response.content.decode()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"input": "-1"}, "input_per_token"),
        ({"output": "ten"}, "output_per_token"),
        ({"pattern": ""}, "pattern"),
        ({"effective_from": "soon"}, "effective_from"),
    ],
)
def test_prices_page_shows_the_services_message_and_keeps_the_form(client, editor, form, message):
    client.force_login(editor)
    data = {"pattern": "gpt-4o", "input": "2.5", "output": "10", "cached": "", "reasoning": "", "effective_from": "2025-01-01"} | form

    response = client.post("/monitoring/prices/", data)

    assert response.status_code == 400
    body = response.content.decode()
    assert "msg-error" in body and message in body
    assert f'value="{data["output"]}"' in body
    assert not Price.objects.exists()


def test_prices_page_duplicate_and_viewer_are_refused_with_a_message(client, editor, viewer):
    services.price_set(pattern="gpt-4o", input_per_token=1e-06, output_per_token=1e-06, effective_from=date(2025, 1, 1), actor=editor)
    data = {"pattern": "gpt-4o", "input": "2.5", "output": "10", "effective_from": "2025-01-01"}
    client.force_login(editor)
    duplicate = client.post("/monitoring/prices/", data)
    client.force_login(viewer)
    refused = client.post("/monitoring/prices/", data | {"effective_from": "2025-02-01"})

    assert duplicate.status_code == 409 and "already has a price from 2025-01-01" in duplicate.content.decode()
    assert refused.status_code == 403 and "needs the editor role" in refused.content.decode()
    assert Price.objects.count() == 1
