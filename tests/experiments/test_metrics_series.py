"""The experiments' series on /metrics, read back with prometheus_client's parser: each subject's newest canary rollout
(the candidate's share and its status, through a start, an advance, a rollback and a new rollout) and each running
A/B test's variants (weights and the units the assign API exposed), in a fixed number of queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from experiments import services
from experiments.models import RolloutStatus
from mlops_site.roles import user_token_refresh
from tests.experiments.conftest import canary_of, design
from tests.factories import promote, register
from tests.monitoring.test_metrics import samples, scrape, value

pytestmark = pytest.mark.django_db


def statuses(families, **labels) -> dict[str, float]:
    return {dict(key)["status"]: v for key, v in samples(families, "mlops_rollout_status", **labels).items()}


def test_a_rollouts_share_and_status_follow_it_and_only_each_subjects_newest_rollout_shows(client, editor, approver, viewer, fraud, quick):
    _, v2 = fraud
    rollout = canary_of(v2, editor, approver, policy="quick")
    labels = {"subject": "model", "name": "fraud", "rollout": str(rollout.pk), "version": "2"}

    families = scrape(client, viewer)
    assert families["mlops_rollout_traffic_share"].type == "gauge" and families["mlops_rollout_status"].type == "gauge"
    assert value(families, "mlops_rollout_traffic_share", **labels) == 0.0  # the shadow stage
    assert statuses(families, **labels) == {"running": 1.0, "paused": 0.0, "rolled_back": 0.0, "completed": 0.0}

    services.rollout_advance(rollout_id=rollout.pk, reason="shadow looks fine", actor=approver)
    services.rollout_advance(rollout_id=rollout.pk, reason="5 % looks fine", actor=approver)
    assert value(scrape(client, viewer), "mlops_rollout_traffic_share", **labels) == pytest.approx(0.25)

    services.rollout_pause(rollout_id=rollout.pk, reason="look closer", actor=approver)
    families = scrape(client, viewer)
    assert statuses(families, **labels)["paused"] == 1.0 and statuses(families, **labels)["running"] == 0.0
    assert value(families, "mlops_rollout_traffic_share", **labels) == pytest.approx(0.25)  # a pause holds the share

    services.rollout_rollback(rollout_id=rollout.pk, reason="latency", actor=approver)
    families = scrape(client, viewer)
    assert value(families, "mlops_rollout_traffic_share", **labels) == 0.0
    assert statuses(families, **labels) == {"running": 0.0, "paused": 0.0, "rolled_back": 1.0, "completed": 0.0}

    # A second model's rollout shows beside it; a new rollout of fraud replaces the rolled-back one.
    churn = register("churn", editor)
    promote(churn, "production", editor, approver)
    other = canary_of(register("churn", editor), editor, approver, policy="quick")
    again = canary_of(register("fraud", editor), editor, approver, policy="quick")
    services.rollout_advance(rollout_id=again.pk, reason="skip shadow", actor=approver)
    families = scrape(client, viewer)
    shares = {(dict(k)["name"], dict(k)["rollout"], dict(k)["version"]): v for k, v in samples(families, "mlops_rollout_traffic_share").items()}
    assert shares == {("fraud", str(again.pk), "3"): pytest.approx(0.05), ("churn", str(other.pk), "2"): 0.0}
    assert len(samples(families, "mlops_rollout_status")) == 2 * len(RolloutStatus.values)


def test_a_completed_rollout_serves_everyone(client, editor, approver, viewer, fraud, quick):
    rollout = canary_of(fraud[1], editor, approver, policy="quick")
    for stage in range(4):
        services.rollout_advance(rollout_id=rollout.pk, reason=f"stage {stage} fine", actor=approver)

    families = scrape(client, viewer)

    labels = {"name": "fraud", "rollout": str(rollout.pk)}
    assert value(families, "mlops_rollout_traffic_share", **labels) == 1.0
    assert statuses(families, **labels)["completed"] == 1.0


def test_running_experiments_give_their_weights_and_exposed_units(client, api_as, editor, viewer, checkout):
    running = design(editor, variants=[{"name": "A", "version": 1, "weight": 70}, {"name": "B", "version": 2, "weight": 30}])
    services.experiment_start(experiment=running, reason="go", actor=editor)
    design(editor, key="draft-test")  # a draft routes nobody: not shown
    stopped = design(editor, key="stopped-test")
    services.experiment_start(experiment=stopped, reason="go", actor=editor)
    api_as(editor).post("/api/v1/experiments/stopped-test/assign", {"unit_ids": ["s-1"]}, format="json")
    services.experiment_stop(experiment=stopped, reason="done", actor=editor)

    units = [f"user-{i}" for i in range(500)]
    answer = api_as(editor).post("/api/v1/experiments/checkout-test/assign", {"unit_ids": units}, format="json")
    assert answer.status_code == 200, answer.content
    api_as(editor).post("/api/v1/experiments/checkout-test/assign", {"unit_ids": units[:100]}, format="json")  # asked again: no new exposure
    served = [a["variant"] for a in answer.json()["assignments"]]

    families = scrape(client, viewer)

    assert families["mlops_experiment_exposed_units"].type == "counter"
    shares = {dict(k)["variant"]: v for k, v in samples(families, "mlops_experiment_traffic_share").items()}
    assert shares == {"A": pytest.approx(0.7), "B": pytest.approx(0.3)}
    exposed = samples(families, "mlops_experiment_exposed_units_total", experiment="checkout-test", subject="model", name="checkout")
    assert {dict(k)["variant"]: v for k, v in exposed.items()} == {"A": served.count("A"), "B": served.count("B")}
    assert {dict(k)["version"] for k in exposed} == {"1", "2"}
    assert 0 < served.count("B") < served.count("A")


def test_the_experiment_series_take_two_queries_however_many_rollouts_and_experiments(client, editor, approver, viewer, fraud, quick, checkout):
    token = user_token_refresh(user=viewer)

    def scrape_queries() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
        return len(queries), response.content.decode()

    scrape_queries()  # the token's first use is written once (then at most once a minute)
    before, text = scrape_queries()
    assert "\nmlops_rollout_traffic_share{" not in text and "\nmlops_experiment_traffic_share{" not in text

    canary_of(fraud[1], editor, approver, policy="quick")
    for key in ("one", "two", "three"):
        services.experiment_start(experiment=design(editor, key=key), reason="go", actor=editor)
    after, text = scrape_queries()

    assert after == before
    assert text.count("\nmlops_experiment_traffic_share{") == 6 and text.count("\nmlops_rollout_traffic_share{") == 1
