"""`manage.py seed_demo`: the demo users, a registry history and four A/B tests, once.

The seed runs once for the module (it takes seconds), inside a transaction rolled back at the end; each test
reads it in its own savepoint. The A/B tests' figures are checked against scipy and statsmodels computed here
from the raw exposures, outcomes and events."""

import math
from datetime import UTC, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportions_ztest

from experiments.models import Experiment, Exposure, Outcome
from monitoring.models import Event
from registry.models import AuditEvent, Evaluation, ModelVersion, PromotionRequest, RegisteredModel, StageChange
from registry.services.gates import gate_status

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """seed_demo's output, its data kept for the module's tests and rolled back after them."""
    with django_db_blocker.unblock(), transaction.atomic():
        started = timezone.now()
        lines = run("seed_demo")
        yield {"lines": lines, "started": started}
        transaction.set_rollback(True)


def test_seed_demo_builds_a_history_once(seeded):
    counts = (RegisteredModel.objects.count(), ModelVersion.objects.count(), AuditEvent.objects.count(), Experiment.objects.count(),
              Exposure.objects.count(), Event.objects.count())

    again = run("seed_demo")

    assert again == ["Demo data: models already exist, nothing added."]
    assert (RegisteredModel.objects.count(), ModelVersion.objects.count(), AuditEvent.objects.count(), Experiment.objects.count(),
            Exposure.objects.count(), Event.objects.count()) == counts
    assert seeded["lines"][-1] == "Demo data: 7 models, 47 versions, 2 prompts, 4 A/B tests."
    assert counts[0] >= 5 and counts[1] >= 40
    assert PromotionRequest.objects.filter(status="pending").count() >= 3
    assert StageChange.objects.filter(kind="rollback").exists()
    # Every model has a production version, but loan-approval: its first version failed the bias gate.
    assert ModelVersion.objects.filter(stage="production").count() == RegisteredModel.objects.count() - 1
    loan = {v.version: gate_status(version=v) for v in ModelVersion.objects.filter(model__name="loan-approval")}
    assert not loan[1].passed and loan[2].passed
    assert StageChange.objects.filter(prompt__name="summarize", stage="prod", kind="rollback").exists()
    assert PromotionRequest.objects.filter(prompt__name="summarize", status="pending").exists()


def test_seed_demo_history_lies_in_the_last_ninety_days_with_recent_pending_requests(seeded):
    now = timezone.now()
    times = AuditEvent.objects.values_list("at", flat=True)
    assert now - timedelta(days=93) < min(times) and max(times) < now
    pending = PromotionRequest.objects.filter(status="pending").values_list("requested_at", flat=True)
    assert all(now - timedelta(days=2) < at < now for at in pending)


# --- the A/B tests ------------------------------------------------------------------------------------------------------------


def latest(key: str) -> dict:
    return Experiment.objects.get(key=key).analyses.filter(status="done").latest("finished_at").results


def primary(results: dict) -> dict:
    return next(m for m in results["metrics"] if m["primary"])


def exposed(key: str) -> dict[str, tuple[str, int, object]]:
    """unit_id -> (variant, its version, exposed_at), from the exposure rows."""
    rows = Exposure.objects.filter(experiment__key=key).values_list(
        "unit_id", "variant__name", "variant__model_version__version", "variant__prompt_version__version", "exposed_at")
    return {u: (name, mv or pv, at) for u, name, mv, pv, at in rows}


def converted(units: dict, metric: str) -> dict[str, tuple[int, int]]:
    """variant -> (units, units with an outcome of `metric` > 0 at or after their exposure), from the raw rows."""
    hits = {u for u, value, at in Outcome.objects.filter(metric=metric).values_list("unit_id", "value", "timestamp")
            if u in units and value > 0 and at >= units[u][2]}
    out = {}
    for name in sorted({v for v, _, _ in units.values()}):
        members = [u for u, (v, _, _) in units.items() if v == name]
        out[name] = (len(members), sum(1 for u in members if u in hits))
    return out


def test_seed_demo_finished_ab_test_promoted_its_winner_into_production(seeded):
    experiment = Experiment.objects.get(key="sentiment-v4-routing")
    results = latest("sentiment-v4-routing")

    (n_a, x_a), (n_b, x_b) = converted(exposed("sentiment-v4-routing"), "csat_good").values()
    z, p = proportions_ztest([x_b, x_a], [n_b, n_a])
    comparison = primary(results)["comparisons"][0]
    assert (experiment.status, experiment.decision, experiment.decision_variant) == ("stopped", "promoted", "B")
    assert [a["units"] for a in primary(results)["arms"]] == [n_a, n_b] and min(n_a, n_b) >= experiment.sample_size_per_arm
    assert comparison["statistic"] == pytest.approx(z, rel=1e-9) and comparison["p_value"] == pytest.approx(p, rel=1e-9) and p < 0.001
    assert results["decision_test"] == "fixed_horizon" and results["recommendation"]["action"] == "promote"
    assert experiment.promotion.status == "approved" and experiment.promotion.decided_by.username == "bob"
    assert ModelVersion.objects.get(model__name="sentiment-classifier", stage="production").version == 4
    evidence = Evaluation.objects.get(kind="experiment", model_version__model__name="sentiment-classifier")
    assert evidence.model_version.version == 4 and evidence.source == "experiment:sentiment-v4-routing"
    assert experiment.created_at < experiment.started_at  # on the demo clock, as the rest of its history
    assert experiment.started_at > ModelVersion.objects.get(model__name="sentiment-classifier", version=4).created_at
    assert experiment.stopped_at - experiment.started_at == timedelta(days=14) and experiment.stopped_at < timezone.now() - timedelta(days=7)


def always_valid_half_width(se: float, n_total: int, alpha: float = 0.05, tuning: float = 5000.0) -> float:
    """GrowthBook's asymptotic confidence sequence, from its definition."""
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning)
    sigma = se * math.sqrt(n_total)
    nr = n_total * rho**2
    return sigma * math.sqrt(2 * (nr + 1) / (n_total**2 * rho**2) * math.log(math.sqrt(nr + 1) / alpha))


def test_seed_demo_running_ab_test_shows_a_significant_lift_by_the_always_valid_interval(seeded):
    experiment = Experiment.objects.get(key="churn-v7-offers")
    results = latest("churn-v7-offers")
    units = exposed("churn-v7-offers")

    (n_a, x_a), (n_b, x_b) = converted(units, "retained_30d").values()
    p_a, p_b = x_a / n_a, x_b / n_b
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    low = p_b - p_a - always_valid_half_width(se, n_a + n_b)
    comparison = primary(results)["comparisons"][0]
    assert experiment.status == "running" and not experiment.decision
    assert max(n_a, n_b) < experiment.sample_size_per_arm and results["decision_test"] == "always_valid"
    assert comparison["always_valid"]["ci_low"] == pytest.approx(low, rel=1e-9) and low > 0 and comparison["decisive"]
    assert results["recommendation"]["action"] == "promote" and results["recommendation"]["variant"] == "B"
    days = {at.astimezone(UTC).date() for _, _, at in units.values()}
    assert len(days) >= 8 and len(results["series"]["days"]) == len(days)  # a daily series, not one lump
    assert all(experiment.started_at <= at <= seeded["started"] for _, _, at in units.values())
    # "Promote B" is open: B's version has no pending request to production.
    assert not PromotionRequest.objects.filter(version__model__name="churn-predictor", version__version=7, status="pending").exists()


def test_seed_demo_ab_test_with_a_sample_ratio_mismatch_is_flagged(seeded):
    results = latest("credit-v10-limits")

    counts = [n for n, _ in converted(exposed("credit-v10-limits"), "loan_repaid").values()]
    chi2, p = scipy_stats.chisquare(counts, [sum(counts) / 2] * 2)
    assert results["srm"]["flagged"] and results["srm"]["p_value"] == pytest.approx(p, rel=1e-9) and p < 0.001
    assert 0.8 < counts[1] / counts[0] < 0.95  # B lost about one unit in eight
    assert results["recommendation"]["action"] == "investigate"


def test_seed_demo_prompt_ab_test_reads_judge_score_and_thumbs_up_from_the_prompt_events(seeded):
    experiment = Experiment.objects.get(key="summarize-v3-exec")
    results = latest("summarize-v3-exec")
    units = exposed("summarize-v3-exec")

    scores: dict[str, dict[str, list[float]]] = {"A": {}, "B": {}}
    rows = Event.objects.filter(prompt_version__prompt__name="summarize").values_list("unit_id", "prompt_version__version", "judge_score", "timestamp")
    for unit, version, judge, at in rows:
        if unit in units and judge is not None and version == units[unit][1] and at >= units[unit][2]:
            scores[units[unit][0]].setdefault(unit, []).append(judge)
    a, b = (np.array([np.mean(v) for v in scores[arm].values()]) for arm in "AB")
    t, p = scipy_stats.ttest_ind(b, a, equal_var=False)
    judge = primary(results)
    assert (experiment.prompt.name, [v["version"] for v in results["variants"]]) == ("summarize", [2, 3])
    assert [m["name"] for m in results["metrics"]] == ["judge_score", "thumbs_up"] and judge["source"] == "events"
    assert [arm["units"] for arm in judge["arms"]] == [len(a), len(b)]
    assert judge["comparisons"][0]["statistic"] == pytest.approx(t, rel=1e-9) and t < 0 and p < 0.001
    assert results["recommendation"]["action"] == "discard"
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert max(at for *_, at in rows) < today  # nothing spent today: the daily budget make run sizes is the LLM traffic's own


def test_seed_demo_serves_each_units_requests_from_its_variant_and_sends_outcomes_after_the_exposure(seeded):
    for experiment in Experiment.objects.select_related("model", "prompt"):
        units = exposed(experiment.key)
        field = "model_version" if experiment.model_id else "prompt_version"
        subject = {f"{field}__model__name": experiment.model.name} if experiment.model_id else {f"{field}__prompt__name": experiment.prompt.name}
        events = Event.objects.filter(**subject, timestamp__gte=experiment.started_at).values_list("unit_id", f"{field}__version", "timestamp")
        if experiment.stopped_at:
            events = events.filter(timestamp__lte=experiment.stopped_at)
        served = list(events)
        control = experiment.variants.get(position=0).version.version

        assert served and {u for u, _, _ in served} >= set(units), experiment.key
        for unit, version, at in served:
            if unit in units:
                assert version == units[unit][1] and at >= units[unit][2], (experiment.key, unit)
            else:  # only the lossy arm's lost units, served by the control unexposed
                assert experiment.key == "credit-v10-limits" and version == control, (experiment.key, unit)
    first_exposure = {}
    for unit, at in Exposure.objects.values_list("unit_id", "exposed_at"):
        first_exposure[unit] = min(at, first_exposure.get(unit, at))
    outcomes = list(Outcome.objects.values_list("unit_id", "timestamp"))
    assert outcomes and all(unit in first_exposure and at >= first_exposure[unit] for unit, at in outcomes)
