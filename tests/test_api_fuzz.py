"""The whole OpenAPI schema fuzzed by schemathesis as an editor: no answer is a 5xx, every 4xx is in the one error shape.

Every operation of /api/v1/schema/ (as drf-spectacular generates it) becomes a test; schemathesis draws path
parameters, query strings and bodies from the schema and sends them through the WSGI application, in the test's
own database transaction. Each drawn case is sent twice: as drawn (random names and ids: mostly 404s, which must
still be in the error shape) and with its path parameters pointing at real objects (a model with versions, the
sample prompts, an experiment, a pending promotion), so bodies and query strings reach the code behind the lookup.

Bounded and reproducible for CI: a few examples per operation, derandomized (the same cases every run, no example
database), no deadline (a slow first request is not a failure). Runs in the SQLite suite only: scripts/test.sh
sets MLOPS_TEST_SECOND_DB=1 for the PostgreSQL suite, since the same cases against the same code add minutes and
nothing database-specific. Nothing is excluded: every operation of the schema is fuzzed. schemathesis draws no
body for media types it cannot write (the reference upload's Parquet and NDJSON bodies, the OTLP route's protobuf,
said in a warning); those endpoints are still fuzzed through their multipart, CSV and JSON bodies.
"""

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error

from mlops_site.roles import user_token_refresh
from registry import services as registry_services
from tests.conftest import make_user
from tests.factories import register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.skipif(os.environ.get("MLOPS_TEST_SECOND_DB") == "1", reason="fuzzed in the SQLite suite only")

EXAMPLES_PER_OPERATION = 12
PASSWORD = "fuzz-" + "editor-passphrase-7"


def _schema():
    raw = SchemaGenerator().get_schema(request=None, public=True)
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.app = get_wsgi_application()
    return loaded


schema = _schema()


def error_shape(ctx, response, case):
    """Every 4xx answer is `{"message": str, "code": str, "extra": {...}}` and nothing else."""
    if not 400 <= response.status_code < 500:
        return None
    try:
        body = response.json()
    except ValueError:
        raise AssertionError(f"{response.status_code} is not JSON: {response.text[:200]!r}") from None
    assert isinstance(body, dict) and set(body) == {"message", "code", "extra"}, f"not the error shape: {body!r}"
    assert isinstance(body["message"], str) and body["message"], f"no message: {body!r}"
    assert isinstance(body["code"], str) and body["code"], f"no code: {body!r}"
    assert isinstance(body["extra"], dict), f"extra is not an object: {body!r}"
    return None


@pytest.fixture
def _keep_the_test_connection():
    """The WSGI handler closes the database connection after each request; Django's test client switches that off
    so requests run inside the test's transaction, and so does this, for schemathesis's WSGI client."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(db, _keep_the_test_connection):
    """Real objects for the path parameters, and the editor's token."""
    editor = make_user("fuzz-editor", "editor", password=PASSWORD)
    checkout = [register("checkout", editor) for _ in range(2)]
    registry_services.prompts_import(files=brief_folder(), actor=editor)
    promotion = registry_services.promotion_request_create(version=checkout[1], to_stage="staging", reason="fuzz", actor=editor)
    from experiments import services as experiment_services

    experiment_services.experiment_create(
        key="checkout-test", actor=editor, model="checkout", hypothesis="v2 converts better",
        variants=[{"name": "A", "version": 1, "weight": 50}, {"name": "B", "version": 2, "weight": 50}],
        primary_metric={"name": "conversion", "kind": "proportion"}, alpha=0.05, power=0.8, mde=0.02, baseline_rate=0.1,
    )  # fmt: skip
    return {
        "headers": {"Authorization": f"Token {user_token_refresh(user=editor)}"},
        "real": {
            "version": 1, "key": "checkout-test", "promotion_id": promotion.pk, "environment": "prod",
            "stage": "production",
        },  # fmt: skip
    }


def real_path_parameters(case, real: dict) -> dict:
    parameters = dict(case.path_parameters or {})
    if "name" in parameters:
        parameters["name"] = "summarize" if case.path.startswith("/api/v1/prompts/") else "checkout"
    for key, value in real.items():
        if key in parameters:
            parameters[key] = value
    return parameters


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)
def test_api_fuzz_as_editor(case, world):
    checks = [not_a_server_error, error_shape]

    case.call_and_validate(headers=world["headers"], checks=checks)

    case.path_parameters = real_path_parameters(case, world["real"])
    case.call_and_validate(headers=world["headers"], checks=checks)
