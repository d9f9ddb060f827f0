"""Importing prices: a newer snapshot adds only the prices that changed; import from the prices page and the API;
cache-write tokens at ingestion (events API and OTLP), priced by hand."""

import json
from datetime import date

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from monitoring import services
from monitoring.models import Event, Price
from registry.models import AuditAction, AuditEvent
from tests.factories import register
from tests.monitoring.test_otel import span, traces
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db

M = 1_000_000


def snapshot(directory, day: str, prices: dict[str, tuple[float, float]]):
    data = {
        name: {"input_cost_per_token": i / M, "output_cost_per_token": o / M, "litellm_provider": "openai"}
        for name, (i, o) in prices.items()
    }
    (directory / f"litellm_prices_{day}.json").write_text(json.dumps(data))


def history(pattern: str) -> list[tuple[date, float]]:
    return list(Price.objects.filter(pattern=pattern).order_by("effective_from").values_list("effective_from", "input_per_token"))


def test_a_newer_snapshot_adds_rows_only_for_the_prices_that_changed(tmp_path, editor):
    snapshot(tmp_path, "2026-01-10", {"kept": (1, 2), "cheaper": (3, 4)})
    first = services.prices_import_defaults(actor=editor, data_dir=tmp_path)
    snapshot(tmp_path, "2026-03-01", {"kept": (1, 2), "cheaper": (1.5, 4), "brand-new": (7, 8)})

    second = services.prices_import_defaults(actor=editor, data_dir=tmp_path)

    assert (first.effective_from, first.source, sorted(first.result.created)) == (
        date(2026, 1, 10),
        "default 2026-01-10",
        ["cheaper", "kept"],
    )
    assert (second.effective_from, sorted(second.result.created), second.result.unchanged) == (
        date(2026, 3, 1),
        ["brand-new", "cheaper"],
        ["kept"],
    )
    assert history("kept") == [(date(2025, 1, 1), 1 / M)]  # a first price also prices the history
    assert history("cheaper") == [(date(2025, 1, 1), 3 / M), (date(2026, 3, 1), 1.5 / M)]
    assert history("brand-new") == [(date(2025, 1, 1), 7 / M)]
    assert Price.objects.filter(effective_from=date(2026, 3, 1)).get().source == "default 2026-03-01"


def test_a_file_import_with_a_later_date_adds_only_changed_prices_and_keeps_the_old_ones(editor):
    first = {
        "a": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
        "b": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
    }
    second = first | {"b": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "cache_creation_input_token_cost": 1.25e-06}}

    services.prices_import_file(data=first, effective_from=date(2026, 1, 1), actor=editor)
    done = services.prices_import_file(
        data=json.dumps(second).encode(), effective_from=date(2026, 2, 1), actor=editor, filename="x/map.json"
    )

    assert (done.result.created, done.result.unchanged, done.source) == (["b"], ["a"], "import map.json")
    assert [d for d, _ in history("a")] == [date(2026, 1, 1)]
    assert [d for d, _ in history("b")] == [date(2026, 1, 1), date(2026, 2, 1)]
    assert Price.objects.get(pattern="b", effective_from=date(2026, 2, 1)).cache_creation_per_token == 1.25e-06


# --- the API ----------------------------------------------------------------------------------------


def test_api_imports_a_price_map_from_json_and_from_a_file(api_as, editor):
    client = api_as(editor)
    prices = {"my-llm": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}

    as_json = client.post("/api/v1/prices/import", {"prices": prices, "effective_from": "2026-02-01"}, format="json")
    upload = SimpleUploadedFile("map.json", json.dumps(prices | {"other": prices["my-llm"]}).encode(), content_type="application/json")
    as_file = client.post("/api/v1/prices/import", {"file": upload, "effective_from": "2026-02-01"}, format="multipart")

    assert as_json.status_code == 200, as_json.content
    assert as_json.json() == {
        "effective_from": "2026-02-01",
        "source": "import by alice",
        "created": ["my-llm"],
        "unchanged": 0,
        "conflicts": [],
    }
    assert as_file.json() == {
        "effective_from": "2026-02-01",
        "source": "import map.json",
        "created": ["other"],
        "unchanged": 1,
        "conflicts": [],
    }
    audit = AuditEvent.objects.filter(action=AuditAction.PRICES_IMPORTED).order_by("pk").last()
    assert audit.actor.username == "alice" and audit.extra["patterns"] == ["other"]


def test_api_imports_the_bundled_snapshot(api_as, editor):
    response = api_as(editor).post("/api/v1/prices/import", {"defaults": True}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["source"].startswith("default ") and len(response.json()["created"]) > 3000
    assert Price.objects.get(pattern="claude-opus-4-5").input_per_token == 5e-06


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json at all", "file"),
        (b'{"gpt-x": {"input_cost_per_token": -1, "output_cost_per_token": 1}}', "file"),
        (b'{"dall-e": {"output_cost_per_image": 0.04}}', "file"),
        (b"[1, 2]", "file"),
    ],
)
def test_api_refuses_a_bad_price_file_in_the_one_shape(api_as, editor, body, field):
    upload = SimpleUploadedFile("bad.json", body, content_type="application/json")

    error = assert_error_shape(api_as(editor).post("/api/v1/prices/import", {"file": upload}, format="multipart"), 400, "bad_price_file")

    assert field in error["extra"]["fields"]
    assert not Price.objects.exists()


def test_api_import_refuses_both_or_neither_a_too_large_file_and_a_viewer(api_as, editor, viewer, monkeypatch):
    monkeypatch.setattr("monitoring.api.costs.MAX_PRICE_FILE_BYTES", 10)
    client = api_as(editor)

    neither = client.post("/api/v1/prices/import", {}, format="json")
    both = client.post("/api/v1/prices/import", {"defaults": True, "prices": {}}, format="json")
    too_large = client.post("/api/v1/prices/import", {"file": SimpleUploadedFile("m.json", b"{" + b" " * 20 + b"}")}, format="multipart")
    refused = api_as(viewer).post("/api/v1/prices/import", {"defaults": True}, format="json")

    assert_error_shape(neither, 400)
    assert_error_shape(both, 400)
    assert_error_shape(too_large, 413)
    assert_error_shape(refused, 403)
    assert not Price.objects.exists()


# --- the prices page --------------------------------------------------------------------------------


def test_prices_page_imports_an_uploaded_file_and_the_bundled_snapshot(client, editor):
    client.force_login(editor)
    upload = SimpleUploadedFile("map.json", b'{"my-llm": {"input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}')

    from_file = client.post("/monitoring/prices/import/", {"file": upload, "effective_from": "2026-02-01"}, follow=True)
    from_snapshot = client.post("/monitoring/prices/import/", {"defaults": "1"}, follow=True)

    assert "Prices from 2026-02-01 (import map.json): 1 added (new or changed), 0 unchanged" in from_file.content.decode()
    assert Price.objects.get(pattern="my-llm").effective_from == date(2026, 2, 1)
    assert "(default " in from_snapshot.content.decode() and Price.objects.filter(pattern="claude-opus-4-5").exists()


def test_prices_page_import_shows_a_bad_file_and_a_viewer_is_refused(client, editor, viewer):
    client.force_login(editor)
    bad = client.post("/monitoring/prices/import/", {"file": SimpleUploadedFile("m.json", b"nope")}, follow=True)
    client.force_login(viewer)
    refused = client.post("/monitoring/prices/import/", {"defaults": "1"}, follow=True)
    page = client.get("/monitoring/prices/").content.decode()

    assert "The price file is not JSON" in bad.content.decode()
    assert "Importing prices" in refused.content.decode() and not Price.objects.exists()
    assert 'id="price-import"' not in page


# --- cache-write tokens at ingestion ------------------------------------------------------------------


@pytest.fixture
def opus(editor):
    """Per 1M tokens: input 5, cache read 0.5, cache write 6.25, output 25 (claude-opus-4-5's list prices)."""
    services.price_set(
        pattern="claude-opus-4-5",
        input_per_token=5 / M,
        output_per_token=25 / M,
        cached_input_per_token=0.5 / M,
        cache_creation_per_token=6.25 / M,
        effective_from=date(2026, 1, 1),
        actor=editor,
    )


def test_events_api_prices_cache_write_tokens_by_hand(api_as, editor, opus):
    register("chatbot", editor)
    event = {
        "event_id": "w-1",
        "model": "chatbot",
        "version": 1,
        "timestamp": "2026-11-20T10:00:00Z",
        "latency_ms": 800.0,
        "llm_model": "anthropic/claude-opus-4-5",
        "input_tokens": 10_000,
        "cached_tokens": 2000,
        "cache_creation_tokens": 3000,
        "output_tokens": 1000,
    }

    response = api_as(editor).post("/api/v1/events", {"events": [event]}, format="json")

    assert response.status_code == 202, response.content
    stored = Event.objects.get()
    assert stored.cache_creation_tokens == 3000
    # (5,000 x 5 + 2,000 x 0.5 + 3,000 x 6.25 + 1,000 x 25) / 1M; the provider prefix resolves to claude-opus-4-5.
    assert stored.cost_usd == pytest.approx(0.06975, rel=1e-12)


def test_events_api_refuses_more_cache_tokens_than_input_tokens(api_as, editor):
    register("chatbot", editor)
    event = {
        "event_id": "w-2",
        "model": "chatbot",
        "version": 1,
        "timestamp": "2026-11-20T10:00:00Z",
        "latency_ms": 800.0,
        "input_tokens": 100,
        "cached_tokens": 60,
        "cache_creation_tokens": 50,
    }

    error = assert_error_shape(api_as(editor).post("/api/v1/events", {"events": [event]}, format="json"), 400)

    assert "cache_creation_tokens" in json.dumps(error)
    assert not Event.objects.exists()


def test_otlp_reads_cache_creation_tokens(api_as, editor, opus):
    register("chatbot", editor)
    body = traces(
        [
            span(
                "ccccccccccccccc1",
                {
                    "mlops.model": "chatbot",
                    "mlops.model.version": 1,
                    "gen_ai.response.model": "claude-opus-4-5",
                    "gen_ai.usage.input_tokens": 10_000,
                    "gen_ai.usage.output_tokens": 1000,
                    "gen_ai.usage.cache_read.input_tokens": 2000,
                    "gen_ai.usage.cache_creation.input_tokens": 3000,
                },
            )
        ]
    )

    response = api_as(editor).post("/api/v1/otel", body, format="json")

    assert response.status_code == 202, response.content
    stored = Event.objects.get()
    assert (stored.cached_tokens, stored.cache_creation_tokens) == (2000, 3000)
    assert stored.cost_usd == pytest.approx(0.06975, rel=1e-12)
