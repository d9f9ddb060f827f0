"""A/B analyses through a real worker on committed rows: the Refresh endpoint, the hourly beat entry, and an analysis
whose message was lost (the broker was down) queued again by the next beat and computed once."""

from datetime import timedelta

import pytest
from django.utils import timezone
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from experiments import services
from experiments.models import Analysis, Experiment
from registry.models import RegisteredModel
from tests.experiments.conftest import CHECKOUT, at, load_exposures, load_outcomes
from tests.factories import register

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def shared_cache(redis_url, settings):
    """This process and the worker share the assignment plan's cache on the layer's Redis, as web and workers do."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": "it"}}


def running_experiment(editor, key: str = "checkout-test") -> Experiment:
    if not RegisteredModel.objects.filter(name="checkout").exists():
        for _ in range(2):
            register("checkout", editor)
    experiment = services.experiment_create(key=key, model="checkout", actor=editor, **CHECKOUT)
    return services.experiment_start(experiment=experiment, reason="go", actor=editor)


def done(analysis_id: int):
    return Analysis.objects.filter(pk=analysis_id, status__in=["done", "failed"]).first()


def test_refresh_queues_an_analysis_the_worker_computes_from_the_committed_rows(worker, api_as, editor):
    experiment = running_experiment(editor)
    client = api_as(editor)
    assigned = client.post("/api/v1/experiments/checkout-test/assign", {"unit_ids": [f"u{i}" for i in range(3000)]}, format="json").json()
    arm = {a["unit_id"]: a["variant"] for a in assigned["assignments"]}
    converters = [u for i, u in enumerate(arm) if (i % 10 == 0) or (arm[u] == "B" and i % 10 == 1)]
    client.post("/api/v1/outcomes", {"outcomes": [{"unit_id": u, "metric": "conversion", "value": 1, "timestamp": timezone.now().isoformat()}
                                                  for u in converters]}, format="json")

    queued = client.post("/api/v1/experiments/checkout-test/analyses")
    analysis = worker.wait_for(lambda: done(queued.json()["id"]), "the analysis finished")
    results = client.get("/api/v1/experiments/checkout-test/results").json()["results"]

    assert queued.status_code == 202 and (analysis.status, analysis.attempts) == ("done", 1), analysis.error
    n = {v: sum(1 for a in arm.values() if a == v) for v in "AB"}
    x = {v: sum(1 for u in converters if arm[u] == v) for v in "AB"}
    z, p = proportions_ztest([x["B"], x["A"]], [n["B"], n["A"]])
    low, high = confint_proportions_2indep(x["B"], n["B"], x["A"], n["A"], method="wald", compare="diff")
    comparison = results["metrics"][0]["comparisons"][0]
    assert [a["units"] for a in results["metrics"][0]["arms"]] == [n["A"], n["B"]]
    assert comparison["statistic"] == pytest.approx(z, rel=1e-9) and comparison["p_value"] == pytest.approx(p, rel=1e-9)
    assert (comparison["ci_low"], comparison["ci_high"]) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    assert experiment.key == results["experiment"] and results["recommendation"]["action"] in {"promote", "keep_running"}


def test_the_hourly_beat_entry_analyses_every_running_experiment(worker, editor):
    first, second = running_experiment(editor, "first"), running_experiment(editor, "second")
    load_exposures(first, [(f"a{i}", "A", at(0)) for i in range(100)] + [(f"b{i}", "B", at(0)) for i in range(100)])
    load_outcomes([(f"b{i}", "conversion", 1.0, at(1)) for i in range(30)])

    queued = worker.beat("experiments-analyses").get(timeout=30)
    worker.wait_for(lambda: Analysis.objects.filter(status="done").count() == 2, "both analyses finished")
    analyses = list(Analysis.objects.select_related("experiment"))

    assert queued == 2 and {a.experiment_id for a in analyses} == {first.pk, second.pk}
    by_key = {a.experiment.key: a for a in analyses}
    assert by_key["first"].units_total == 200 and by_key["second"].units_total == 0
    assert by_key["first"].results["metrics"][0]["arms"][1]["conversions"] == 30


def test_an_analysis_queued_while_the_broker_was_down_is_computed_once_by_the_next_beat(worker, broker_down, editor):
    experiment = running_experiment(editor)
    with broker_down():
        lost = services.analysis_request(experiment=experiment)
    Analysis.objects.filter(pk=lost.pk).update(requested_at=timezone.now() - timedelta(minutes=15))
    worker.drain()
    assert Analysis.objects.get(pk=lost.pk).status == "pending"

    worker.beat("experiments-analyses").get(timeout=30)
    worker.wait_for(lambda: done(lost.pk), "the lost analysis finished")
    worker.drain()

    analysis = Analysis.objects.get(pk=lost.pk)
    assert (analysis.status, analysis.attempts) == ("done", 1)
