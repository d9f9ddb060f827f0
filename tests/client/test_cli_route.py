"""`route`, `ApiClient.route()` and `promote --canary` against a live server: what serving code and a pipeline see."""

import json

import pytest

from experiments import services
from mlops_client.client import ApiClient, ApiError, UsageError
from registry import services as registry_services
from registry.models import PromotionRequest
from tests.client.test_cli import assert_fails, cli, token_for
from tests.conftest import make_user
from tests.factories import promote, register
from tests.prompts.conftest import brief_folder

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fraud():
    editor, approver = make_user("alice", "editor"), make_user("bob", "approver")
    promote(register("fraud", editor), "production", editor, approver)
    register("fraud", editor)
    return editor, approver


def test_route_prints_the_version_that_serves_the_unit(live_server, fraud):
    as_viewer = {"url": live_server.url, "token": token_for("vera", "viewer")}

    plain = cli("route", "--model", "fraud", "--unit", "user-7", **as_viewer)
    as_json = cli("route", "--model", "fraud", "--unit", "user-7", "--json", **as_viewer)

    assert (plain.returncode, plain.stdout) == (0, "1\n"), plain.stderr
    assert json.loads(as_json.stdout) == {"version": 1, "stage": "production", "rollout": None, "shadow": None, "bucket": None}


def test_route_of_an_unknown_model_or_without_a_subject_fails_clearly(live_server, fraud):
    as_viewer = {"url": live_server.url, "token": token_for("vera", "viewer")}

    unknown = cli("route", "--model", "nope", "--unit", "u", **as_viewer)
    no_subject = cli("route", "--unit", "u", **as_viewer)

    assert_fails(unknown, 4, "404", "not_found", "nope")
    assert no_subject.returncode == 2 and "--model" in no_subject.stderr


def test_the_python_client_routes_and_names_the_shadow_to_mirror(live_server, fraud):
    editor, approver = fraud
    as_editor = {"url": live_server.url, "token": token_for("eddie", "editor")}
    asked = cli("promote", "--model", "fraud", "--version", "2", "--to", "production", "--canary", "--reason", "faster", **as_editor)
    promotion_id = int(asked.stdout.split()[0])
    cli("approve", str(promotion_id), "--comment", "go", url=live_server.url, token=token_for("carol", "approver"))
    services.rollout_start(promotion_id=promotion_id)
    api = ApiClient(url=live_server.url, token=token_for("vera", "viewer"), timeout=10)

    answer = api.route(model="fraud", unit_id="user-7")

    assert asked.returncode == 0 and asked.stdout.split()[1] == "pending", asked.stderr
    assert PromotionRequest.objects.get(pk=promotion_id).strategy == "canary"
    assert (answer["version"], answer["shadow"], answer["rollout"]["stage"]) == (1, {"version": 2}, "shadow")
    with pytest.raises(ApiError) as caught:
        api.route(model="nope", unit_id="u")
    with pytest.raises(UsageError):
        api.route(unit_id="u")
    assert caught.value.status == 404


def test_promote_policy_without_canary_is_a_usage_error(live_server, fraud):
    result = cli("promote", "--model", "fraud", "--version", "2", "--to", "production", "--policy", "quick", "--reason", "r",
                 url=live_server.url, token=token_for("eddie", "editor"))

    assert_fails(result, 2, "--policy goes with --canary")
    assert not PromotionRequest.objects.filter(version__version=2).exists()


def test_prompts_promote_asks_for_a_canary_into_prod(live_server, fraud):
    editor, approver = fraud
    registry_services.prompts_import(files=brief_folder(), actor=editor)
    registry_services.promotion_approve(promotion_id=PromotionRequest.objects.get(prompt__name="summarize", to_stage="prod").pk, actor=approver)

    result = cli("prompts", "promote", "summarize", "--version", "3", "--to", "prod", "--canary", "--policy", "default", "--reason", "r",
                 url=live_server.url, token=token_for("eddie", "editor"))

    assert result.returncode == 0, result.stderr
    request = PromotionRequest.objects.get(pk=int(result.stdout.split()[0]))
    assert (request.strategy, request.policy, request.to_stage) == ("canary", "default", "prod")
