"""The examples run as a user would run them, against a live server over real HTTP: examples/serving_events.py
through the SDK, examples/otel_exporter.py through the OpenTelemetry SDK's OTLP/HTTP exporter."""

import os
import subprocess
import sys

import pytest

from monitoring.models import Event
from registry import services as registry_services
from tests.client.test_cli import ROOT, token_for
from tests.conftest import make_user
from tests.factories import promote, register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db(transaction=True)


def run_example(script: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    environment = {name: value for name, value in os.environ.items() if not name.startswith(("MLOPS_", "OTEL_"))}
    environment.update(env)
    return subprocess.run([sys.executable, str(ROOT / "examples" / script), *args], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_serving_events_example_stores_one_event_per_request_for_the_production_version(live_server):
    alice, bob = make_user("alice", "editor"), make_user("bob", "approver")
    register("fraud", alice)
    promote(register("fraud", alice), "production", alice, bob)  # v2 serves

    done = run_example("serving_events.py", {"MLOPS_URL": live_server.url, "MLOPS_TOKEN": token_for("eddie", "editor")},
                       "--model", "fraud", "--requests", "120")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "sent 120, duplicates 0, rejected 0, failed 0, dropped 0" in done.stdout
    events = Event.objects.filter(model_version__model__name="fraud")
    assert events.count() == 120
    assert set(events.values_list("model_version__version", flat=True)) == {2}
    assert set(events.values_list("prediction", flat=True)) <= {0, 1}
    assert all(unit.startswith("user-") for unit in events.values_list("unit_id", flat=True))


def test_otel_exporter_example_spans_become_events_of_the_named_prompt_version(live_server):
    editor = make_user("alice", "editor")
    registry_services.prompts_import(files=brief_folder(), actor=editor)  # summarize v1-3
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"{live_server.url}/api/v1/otel",
           "OTEL_EXPORTER_OTLP_HEADERS": f"Authorization=Bearer {token_for('eddie', 'editor')}",
           "OTEL_RESOURCE_ATTRIBUTES": "mlops.prompt=summarize,mlops.prompt.version=2"}

    done = run_example("otel_exporter.py", env, "--calls", "15")

    assert done.returncode == 0, done.stdout + done.stderr
    events = Event.objects.filter(prompt_version__prompt__name="summarize")
    assert events.count() == 15
    assert set(events.values_list("prompt_version__version", flat=True)) == {2}
    served = events.filter(error=False)
    assert served.exists() and all(event.input_tokens == 47 and event.cached_tokens == 32 for event in served)
    assert set(events.values_list("unit_id", flat=True)) <= {f"conv-{n}" for n in range(7)}
