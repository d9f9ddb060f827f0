"""`manage.py seed_demo`: the demo users, a registry history and four A/B tests, once.

The seed runs once for the module (it takes seconds), inside a transaction rolled back at the end; each test
reads it in its own savepoint. The A/B tests' figures are checked against scipy and statsmodels computed here
from the raw exposures, outcomes and events."""

import math
from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportions_ztest

from demo.seed import MODELS
from experiments.models import Experiment, Exposure, Outcome
from monitoring.models import Event
from registry.models import AuditEvent, Evaluation, ModelVersion, PromotionRequest, RegisteredModel, Run, StageChange
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
        run("import_prices", "--defaults")  # as `make run` does first: the seed's prompt traffic is priced
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
    assert seeded["lines"][-1] == "Demo data: 7 models, 47 versions, 2 prompts, 4 A/B tests, 4 canary rollouts."
    assert counts[0] >= 5 and counts[1] >= 40
    assert PromotionRequest.objects.filter(status="pending").count() >= 3
    assert StageChange.objects.filter(kind="rollback").exists()
    # Every model has a production version, but loan-approval: its first version failed the bias gate.
    assert ModelVersion.objects.filter(stage="production").count() == RegisteredModel.objects.count() - 1
    loan = {v.version: gate_status(version=v) for v in ModelVersion.objects.filter(model__name="loan-approval")}
    assert not loan[1].passed and loan[2].passed
    assert StageChange.objects.filter(prompt__name="summarize", stage="prod", kind="rollback").exists()
    assert PromotionRequest.objects.filter(prompt__name="summarize", status="pending").exists()


def test_seed_demo_gives_each_trained_version_its_run(seeded):
    versions = list(ModelVersion.objects.filter(model__name__in=list(MODELS)).select_related("run__group"))

    assert versions and all(v.run is not None for v in versions)
    for version in versions:
        run = version.run
        assert run.group.name == f"{version.model.name} training" and run.status == "FINISHED"
        assert dict(run.params.values_list("key", "value")) == {k: str(v) for k, v in version.params.items()}
        assert run.tags.get(key="mlflow.source.git.commit").value == version.code_commit
        assert list(run.metrics.filter(key="loss").order_by("step").values_list("step", flat=True)) == list(range(20))
        final = dict(run.metrics.filter(step=20).values_list("key", "value"))
        assert final == pytest.approx(version.metrics)
    assert Run.objects.filter(name__startswith="trial-").count() == sum(count // 2 for _, count, _ in MODELS.values())


def test_seed_demo_force_refuses_to_add_the_demo_twice_and_names_its_models(seeded):
    versions = ModelVersion.objects.count()

    with pytest.raises(CommandError, match=r"^The demo is already here \(churn-predictor, credit-scoring, demand-forecast, fraud-detector, "
                                           r"product-recommender, sentiment-classifier\): it is added once\."):
        run("seed_demo", "--force")

    assert ModelVersion.objects.count() == versions


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


# --- canary rollouts -----------------------------------------------------------------------------------------------------


def rollout_of(subject: str):
    from experiments.models import Rollout

    return Rollout.objects.get(**({"model__name": subject} if subject != "classify-ticket" else {"prompt__name": subject}))


def decisions_of(rollout) -> list[tuple]:
    return [(d.action, d.from_stage, d.to_stage, getattr(d.actor, "username", None)) for d in rollout.decisions.order_by("seq")]


def raw_side(rollout, version, numbers: dict) -> dict:
    """A side's figures over the decision's window straight from the stored events: the window's start floored to its
    minute, as the minute roll-ups count (the stages change on whole minutes here), served events only."""
    start = datetime.fromisoformat(numbers["window"]["start"])
    end = datetime.fromisoformat(numbers["window"]["end"])
    field = "model_version" if rollout.model_id else "prompt_version"
    rows = Event.objects.filter(**{field: version}, shadow=False, timestamp__gte=start.replace(second=0, microsecond=0), timestamp__lt=end)
    errors, costs = zip(*rows.values_list("error", "cost_usd"), strict=True)
    known = [c for c in costs if c is not None]
    return {"requests": len(errors), "errors": sum(errors), "cost_per_request": sum(known) / len(known) if known else None}


def test_seed_demo_rollouts_have_the_demo_fast_policy_and_one_of_each_outcome(seeded):
    from experiments.models import RolloutPolicy

    policy = RolloutPolicy.objects.get(name="demo-fast")
    statuses = {s: (rollout_of(s).status, rollout_of(s).stage_index) for s in ("demand-forecast", "product-recommender", "classify-ticket", "fraud-detector")}

    assert [stage["traffic_percent"] for stage in policy.stages] == [5, 25, 100]
    assert [stage["manual"] for stage in policy.stages] == [False, True, False]
    assert statuses == {"demand-forecast": ("completed", 2), "product-recommender": ("rolled_back", 1), "classify-ticket": ("paused", 0),
                        "fraud-detector": ("running", 0)}


def test_seed_demo_completed_rollout_was_signed_off_at_25_percent_and_took_production(seeded):
    rollout = rollout_of("demand-forecast")

    assert decisions_of(rollout) == [("start", 0, 0, None), ("hold", 0, 0, None), ("advance", 0, 1, None), ("hold", 1, 1, None),
                                     ("advance", 1, 2, "bob"), ("hold", 2, 2, None), ("complete", 2, None, None)]
    assert ModelVersion.objects.get(model__name="demand-forecast", stage="production").version == 4
    assert PromotionRequest.objects.get(pk=rollout.promotion_id).status == "approved"
    assert AuditEvent.objects.get(action="promotion_completed", subject="model:demand-forecast").actor_name == "system"


def test_seed_demo_rolled_back_rollout_read_the_candidates_error_spike(seeded):
    rollout = rollout_of("product-recommender")
    rollback = rollout.decisions.get(action="rollback")
    numbers = rollback.numbers

    candidate = raw_side(rollout, rollout.candidate, numbers)
    baseline = raw_side(rollout, rollout.baseline, numbers)

    assert [a for a, *_ in decisions_of(rollout)] == ["start", "hold", "advance", "hold", "rollback"]
    assert (numbers["candidate"]["requests"], numbers["candidate"]["errors"]) == (candidate["requests"], candidate["errors"])
    assert (numbers["baseline"]["requests"], numbers["baseline"]["errors"]) == (baseline["requests"], baseline["errors"])
    assert candidate["errors"] / candidate["requests"] > 0.05 > baseline["errors"] / baseline["requests"]
    # within one tick: the minute before the rollback, the candidate was still under the trigger
    before = rollout.decisions.get(action="hold", from_stage=1)
    assert rollback.at - before.at <= timedelta(minutes=2)
    event = AuditEvent.objects.get(action="rollout_rolled_back", subject="model:product-recommender")
    assert event.actor_name == "system" and event.reason.startswith("Rolled back by error_rate ")
    assert event.extra["triggers"][0]["metric"] == "error_rate"
    assert ModelVersion.objects.get(model__name="product-recommender", stage="production").version == 3


def test_seed_demo_paused_rollout_read_a_cost_per_request_over_twice_the_baselines(seeded):
    rollout = rollout_of("classify-ticket")
    pause = rollout.decisions.get(action="pause")

    candidate = raw_side(rollout, rollout.candidate, pause.numbers)
    baseline = raw_side(rollout, rollout.baseline, pause.numbers)

    assert pause.numbers["candidate"]["cost_per_request"] == pytest.approx(candidate["cost_per_request"], rel=1e-9)
    assert pause.numbers["baseline"]["cost_per_request"] == pytest.approx(baseline["cost_per_request"], rel=1e-9)
    assert candidate["cost_per_request"] > 2 * baseline["cost_per_request"]
    assert rollout.paused_reason.startswith("Paused by cost_per_request ") and rollout.traffic_percent == 5
    assert [t["metric"] for t in pause.numbers["triggers"] if t["state"] == "fired"] == ["cost_per_request"]


def test_seed_demo_serves_each_canary_unit_from_the_version_the_route_answered(seeded):
    from experiments import stats

    rollout = rollout_of("product-recommender")
    advance = rollout.decisions.get(action="advance")
    rows = Event.objects.filter(model_version__model__name="product-recommender", timestamp__gte=rollout.started_at,
                                timestamp__lt=rollout.finished_at).values_list("unit_id", "model_version__version", "timestamp")

    expected = [(5 if stats.in_share(stats.bucket(rollout.salt, unit), 25 if at >= advance.at else 5) else 3) for unit, _, at in rows]

    assert [version for _, version, _ in rows] == expected and 5 in expected


def test_seed_demo_leaves_a_canary_running_at_five_percent_for_the_live_traffic(seeded):
    from experiments.services import route

    rollout = rollout_of("fraud-detector")
    answers = {route(model="fraud-detector", unit_id=f"card-{u:06d}").version for u in range(200)}

    assert (rollout.candidate.version, rollout.baseline.version, float(rollout.traffic_percent)) == (11, 6, 5.0)
    assert answers == {6, 11}
    assert seeded["started"] - timedelta(minutes=5) <= rollout.stage_started_at <= timezone.now()


def test_seed_demo_events_carry_no_label_and_their_labels_came_hours_later(seeded):
    labelled = list(Event.objects.exclude(label=None).values_list("timestamp", "labelled_at"))

    assert len(labelled) > 3000  # about 30 % of the A/B tests' and canaries' model requests
    # 1 to 6 hours after the request, plus up to 10 minutes until the labelling job ran; none later than the seed's now.
    assert all(at is not None and timedelta(hours=1) <= at - ts <= timedelta(hours=6, minutes=10) for ts, at in labelled)
    assert max(at for _, at in labelled) <= timezone.now()
