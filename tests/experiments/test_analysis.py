"""The analysis against references computed here from the raw rows: statsmodels and scipy for the fixed-horizon
tests, the sample ratio check and the sample size, the worked example of the always-valid interval, numpy for CUPED
and the guardrails. Never against experiments/stats.py or our own SQL."""

import json
import math
from datetime import timedelta
from uuid import uuid4

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.proportion import test_proportions_2indep as proportions_2indep_test
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from experiments import services
from experiments.models import Analysis, Exposure
from experiments.services import analysis as analysis_service
from monitoring.models import Event
from tests.experiments.conftest import at, design, load_exposures, load_outcomes

pytestmark = pytest.mark.django_db


def analyse(experiment) -> dict:
    analysis = services.analysis_run(analysis_id=services.analysis_request(experiment=experiment, enqueue=False).pk)
    assert analysis.status == "done", analysis.error
    json.dumps(analysis.results, allow_nan=False)  # never NaN or infinity in the snapshot
    return analysis.results


def metric_of(results: dict, name: str) -> dict:
    return next(m for m in results["metrics"] if m["name"] == name)


def started(editor, key: str = "checkout-test", **overrides):
    experiment = design(editor, key=key, **overrides)
    return services.experiment_start(experiment=experiment, reason="go", actor=editor)


def growthbook_half_width(se: float, n_total: int, alpha: float = 0.05, tuning: float = 5000.0) -> float:
    """The asymptotic confidence sequence's half-width, written from its definition (Waudby-Smith et al., GrowthBook)."""
    rho2 = (-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning
    sigma = se * math.sqrt(n_total)
    return sigma * math.sqrt(2 * (n_total * rho2 + 1) / (n_total**2 * rho2) * math.log(math.sqrt(n_total * rho2 + 1) / alpha))


def test_the_reference_half_width_reproduces_the_worked_example():
    se = math.sqrt(0.1 * 0.9 / 2000 + 0.125 * 0.875 / 2000)

    assert growthbook_half_width(se, 4000) == pytest.approx(0.030356, abs=5e-7)


# --- proportions -------------------------------------------------------------------------------------------------------


def test_conversion_counts_a_unit_once_for_an_outcome_at_or_after_its_exposure(editor, checkout):
    experiment = started(editor)
    rng = np.random.default_rng(7)
    exposures, outcomes = [], []
    exposed_at = {}
    for arm, n, rate in (("A", 700, 0.10), ("B", 650, 0.16)):
        for i in range(n):
            unit, t = f"{arm.lower()}{i}", at(days=int(rng.integers(0, 3)), hours=float(rng.uniform(0, 20)))
            exposures.append((unit, arm, t))
            exposed_at[unit] = (arm, t)
            if rng.random() < rate:  # converts after exposure, sometimes twice, sometimes exactly at it
                outcomes.append((unit, "conversion", 1.0, t + timedelta(hours=float(rng.choice([0, 2, 30])))))
                if rng.random() < 0.3:
                    outcomes.append((unit, "conversion", 2.0, t + timedelta(hours=5)))
            if rng.random() < 0.05:  # converted before the test: not a conversion of the test
                outcomes.append((unit, "conversion", 1.0, t - timedelta(minutes=1)))
            if rng.random() < 0.05:  # a zero-valued outcome is not a conversion
                outcomes.append((unit, "conversion", 0.0, t + timedelta(hours=1)))
            if rng.random() < 0.2:  # another metric
                outcomes.append((unit, "revenue", 10.0, t + timedelta(hours=1)))
    outcomes += [("never-exposed", "conversion", 1.0, at(1))] * 3
    load_exposures(experiment, exposures)
    load_outcomes(outcomes)

    results = analyse(experiment)

    converted = {u for u, m, v, ts in outcomes if m == "conversion" and v > 0 and u in exposed_at and ts >= exposed_at[u][1]}
    n = {arm: sum(1 for a, _ in exposed_at.values() if a == arm) for arm in "AB"}
    x = {arm: sum(1 for u in converted if exposed_at[u][0] == arm) for arm in "AB"}
    z, p = proportions_ztest([x["B"], x["A"]], [n["B"], n["A"]])
    low, high = confint_proportions_2indep(x["B"], n["B"], x["A"], n["A"], method="wald", compare="diff")
    metric = metric_of(results, "conversion")
    assert [(a["variant"], a["units"], a["conversions"]) for a in metric["arms"]] == [("A", n["A"], x["A"]), ("B", n["B"], x["B"])]
    assert metric["arms"][1]["value"] == pytest.approx(x["B"] / n["B"], rel=1e-12)
    c = metric["comparisons"][0]
    assert (c["variant"], c["control"], c["statistic_name"]) == ("B", "A", "z")
    assert c["statistic"] == pytest.approx(z, rel=1e-9) and c["p_value"] == pytest.approx(p, rel=1e-9)
    assert (c["ci_low"], c["ci_high"]) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    assert c["lift"] == pytest.approx((x["B"] / n["B"] - x["A"] / n["A"]) / (x["A"] / n["A"]), rel=1e-9)
    assert results["units_total"] == n["A"] + n["B"] and results["variants"][0]["units"] == n["A"]


def test_the_intervals_of_the_worked_example(editor, checkout):
    experiment = started(editor)
    load_exposures(experiment, [(f"a{i}", "A", at(0)) for i in range(2000)] + [(f"b{i}", "B", at(0)) for i in range(2000)])
    load_outcomes([(f"a{i}", "conversion", 1, at(1)) for i in range(200)] + [(f"b{i}", "conversion", 1, at(1)) for i in range(250)])

    c = metric_of(analyse(experiment), "conversion")["comparisons"][0]

    assert (c["ci_high"] - c["ci_low"]) / 2 == pytest.approx(0.019569, abs=5e-7)
    assert (c["always_valid"]["ci_high"] - c["always_valid"]["ci_low"]) / 2 == pytest.approx(0.030356, abs=5e-7)
    assert c["always_valid"]["significant"] is False and c["significant"] is True
    # 2,000 per arm is below the planned 3,835: the always-valid interval decides, and it includes 0.
    assert c["decision_test"] == "always_valid" and c["decisive"] is False


def test_sample_ratio_mismatch_is_flagged_and_the_results_not_trusted(editor, checkout):
    experiment = started(editor)
    load_exposures(experiment, [(f"a{i}", "A", at(0)) for i in range(1100)] + [(f"b{i}", "B", at(0)) for i in range(900)])
    load_outcomes([(f"b{i}", "conversion", 1, at(1)) for i in range(400)])

    results = analyse(experiment)

    chi2, p = scipy_stats.chisquare([1100, 900], [1000, 1000])
    assert results["srm"]["chi2"] == pytest.approx(chi2, rel=1e-12) and results["srm"]["p_value"] == pytest.approx(p, rel=1e-9)
    assert results["srm"]["flagged"] is True and results["recommendation"]["action"] == "investigate"
    assert "do not trust the results" in results["recommendation"]["text"]
    assert Analysis.objects.get().srm_flagged is True


# --- means and CUPED ---------------------------------------------------------------------------------------------------


def test_revenue_per_exposed_unit_welch_and_cuped_from_the_raw_rows(editor, checkout):
    experiment = started(editor, primary_metric={"name": "revenue", "kind": "mean"}, baseline_rate=None, baseline_std=20.0, mde=2.0)
    rng = np.random.default_rng(11)
    exposures, outcomes, exposed_at = [], [], {}
    for arm, n, lift in (("A", 500, 0.0), ("B", 450, 3.0)):
        for i in range(n):
            unit, t = f"{arm.lower()}{i}", at(hours=float(rng.uniform(0, 60)))
            exposures.append((unit, arm, t))
            exposed_at[unit] = (arm, t)
            habit = float(rng.gamma(2.0, 10.0))  # a unit's spending habit: before and during the test
            if rng.random() < 0.8:
                outcomes.append((unit, "revenue", round(habit * float(rng.uniform(0.5, 1.5)), 2), t - timedelta(days=2)))
            for k in range(int(rng.integers(0, 3))):
                # The first purchase is sometimes at the very moment of exposure: it counts (at or after).
                after = timedelta(0) if k == 0 and rng.random() < 0.3 else timedelta(hours=float(rng.uniform(0, 48)))
                outcomes.append((unit, "revenue", round(habit * float(rng.uniform(0.5, 1.5)) + lift, 2), t + after))
    load_exposures(experiment, exposures)
    load_outcomes(outcomes)

    results = analyse(experiment)

    y = {u: 0.0 for u in exposed_at}
    x = {u: 0.0 for u in exposed_at}
    for u, _, value, ts in outcomes:
        if ts >= exposed_at[u][1]:
            y[u] += value
        else:
            x[u] += value
    ya, yb = (np.array([y[u] for u in y if exposed_at[u][0] == arm]) for arm in "AB")
    xa, xb = (np.array([x[u] for u in x if exposed_at[u][0] == arm]) for arm in "AB")
    t, p = scipy_stats.ttest_ind(yb, ya, equal_var=False)
    low, high = CompareMeans(DescrStatsW(yb), DescrStatsW(ya)).tconfint_diff(alpha=0.05, usevar="unequal")
    metric = metric_of(results, "revenue")
    assert [a["value"] for a in metric["arms"]] == [pytest.approx(ya.mean(), rel=1e-9), pytest.approx(yb.mean(), rel=1e-9)]
    assert [a["std"] for a in metric["arms"]] == [pytest.approx(ya.std(ddof=1), rel=1e-9), pytest.approx(yb.std(ddof=1), rel=1e-9)]
    c = metric["comparisons"][0]
    assert c["statistic_name"] == "t" and c["statistic"] == pytest.approx(t, rel=1e-9) and c["p_value"] == pytest.approx(p, rel=1e-9)
    assert (c["ci_low"], c["ci_high"]) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    se = math.sqrt(ya.var(ddof=1) / ya.size + yb.var(ddof=1) / yb.size)
    assert (c["always_valid"]["ci_high"] - c["always_valid"]["ci_low"]) / 2 == pytest.approx(growthbook_half_width(se, ya.size + yb.size), rel=1e-9)

    # CUPED: theta is the pooled OLS slope of y on x; the adjusted values go through the same Welch test.
    x_all, y_all = np.concatenate([xa, xb]), np.concatenate([ya, yb])
    theta = np.polyfit(x_all, y_all, 1)[0]
    adj_a, adj_b = ya - theta * (xa - x_all.mean()), yb - theta * (xb - x_all.mean())
    t_adj, p_adj = scipy_stats.ttest_ind(adj_b, adj_a, equal_var=False)
    reduction = 1 - np.concatenate([adj_a, adj_b]).var() / y_all.var()
    cuped = c["cuped"]
    assert cuped["theta"] == pytest.approx(theta, rel=1e-9) and cuped["variance_reduction"] == pytest.approx(reduction, rel=1e-9)
    assert cuped["diff"] == pytest.approx(adj_b.mean() - adj_a.mean(), rel=1e-9)
    assert cuped["statistic"] == pytest.approx(t_adj, rel=1e-9) and cuped["p_value"] == pytest.approx(p_adj, rel=1e-9)
    assert "variance reduced by" in metric["cuped_note"] and reduction > 0.1


def test_a_metric_without_values_before_exposure_says_so_instead_of_cuped(editor, checkout):
    experiment = started(editor, primary_metric={"name": "revenue", "kind": "mean"}, baseline_rate=None, baseline_std=20.0, mde=2.0)
    load_exposures(experiment, [(f"a{i}", "A", at(0)) for i in range(20)] + [(f"b{i}", "B", at(0)) for i in range(20)])
    load_outcomes([(f"a{i}", "revenue", float(i), at(1)) for i in range(20)] + [(f"b{i}", "revenue", float(i + 3), at(1)) for i in range(20)])

    metric = metric_of(analyse(experiment), "revenue")

    assert metric["comparisons"][0]["cuped"] is None and metric["cuped_note"].startswith("no pre-period data")


# --- the daily series ----------------------------------------------------------------------------------------------------


def test_the_daily_series_is_cumulative_by_day_of_exposure(editor, checkout):
    experiment = started(editor)
    # Day 0 and day 2 have exposures, day 1 none: the series has the three days, day 1 repeating day 0.
    plan = {0: (300, 30, 300, 45), 2: (200, 20, 220, 50)}
    exposures, outcomes = [], []
    for day, (na, xa, nb, xb) in plan.items():
        for arm, n, x in (("A", na, xa), ("B", nb, xb)):
            for i in range(n):
                unit = f"{arm}{day}-{i}"
                exposures.append((unit, arm, at(day, 8)))
                if i < x:
                    outcomes.append((unit, "conversion", 1.0, at(day + 3)))
    load_exposures(experiment, exposures)
    load_outcomes(outcomes)

    series = analyse(experiment)["series"]

    assert series["days"] == ["2026-03-02", "2026-03-03", "2026-03-04"] and series["metric"] == "conversion"
    cumulative = [(300, 30, 300, 45), (300, 30, 300, 45), (500, 50, 520, 95)]
    assert series["arms"][0]["units"] == [c[0] for c in cumulative] and series["arms"][1]["units"] == [c[2] for c in cumulative]
    lift = series["lifts"][0]
    for d, (na, xa, nb, xb) in enumerate(cumulative):
        low, high = confint_proportions_2indep(xb, nb, xa, na, method="wald", compare="diff")
        se = math.sqrt((xa / na) * (1 - xa / na) / na + (xb / nb) * (1 - xb / nb) / nb)
        assert series["arms"][1]["value"][d] == pytest.approx(xb / nb, rel=1e-12)
        assert lift["diff"][d] == pytest.approx(xb / nb - xa / na, rel=1e-9)
        assert (lift["ci_low"][d], lift["ci_high"][d]) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
        assert lift["always_valid_high"][d] - lift["diff"][d] == pytest.approx(growthbook_half_width(se, na + nb), rel=1e-9)


# --- monitoring events: metrics and guardrails ---------------------------------------------------------------------------


def event(version, unit: str, ts, **fields) -> Event:
    fields.setdefault("latency_ms", 100.0)
    return Event(event_id=uuid4().hex, prompt_version=version, unit_id=unit, timestamp=ts, **fields)


def test_event_metrics_and_guardrails_come_from_each_variants_own_events(editor, prompt_versions):
    experiment = services.experiment_create(
        key="summarize-ab", hypothesis="v3 is judged better", prompt="summarize", actor=editor, mde=0.05, baseline_std=0.2,
        variants=[{"name": "A", "version": 2, "weight": 50}, {"name": "B", "version": 3, "weight": 50}],
        primary_metric={"name": "judge_score", "kind": "mean"}, secondary_metrics=[{"name": "thumbs_up", "kind": "mean"}],
    )
    experiment = services.experiment_start(experiment=experiment, reason="go", actor=editor)
    v2, v3 = prompt_versions[2], prompt_versions[3]
    start = timezone.now() + timedelta(minutes=1)
    rng = np.random.default_rng(5)
    exposures, events, exposed = [], [], {}
    for arm, version, n, judge, error_rate in (("A", v2, 60, 0.70, 0.01), ("B", v3, 60, 0.78, 0.08)):
        for i in range(n):
            unit, t = f"{arm}{i}", start + timedelta(minutes=i)
            exposures.append((unit, arm, t))
            exposed[unit] = arm
            for k in range(3):
                events.append(event(
                    version, unit, t + timedelta(seconds=k), latency_ms=float(rng.gamma(4, 50)), error=bool(rng.random() < error_rate),
                    judge_score=float(np.clip(rng.normal(judge, 0.1), 0, 1)) if k < 2 else None, feedback=int(rng.choice([1, -1])) if k == 0 else None,
                    cost_usd=0.002 if arm == "A" else 0.0021, guardrail_triggered=bool(rng.random() < 0.02),
                ))
    noise = [
        event(v3, "A0", start + timedelta(hours=5), judge_score=0.0, error=True),  # A's unit served by B's version
        event(v2, "A30", start + timedelta(minutes=29), judge_score=0.0, error=True),  # during the test, before its exposure
        event(v2, "stranger", start + timedelta(minutes=3), judge_score=0.0, error=True),  # never exposed
    ]
    load_exposures(experiment, exposures)
    Event.objects.bulk_create(events + noise)

    results = analyse(experiment)

    kept = [e for e in events]
    per_unit = {}
    for e in kept:
        per_unit.setdefault(e.unit_id, []).append(e)
    judge = {arm: np.array([np.mean([e.judge_score for e in es if e.judge_score is not None]) for u, es in per_unit.items() if exposed[u] == arm])
             for arm in "AB"}
    thumbs = {arm: np.array([np.mean([e.feedback == 1 for e in es if e.feedback is not None]) for u, es in per_unit.items() if exposed[u] == arm])
              for arm in "AB"}
    t, p = scipy_stats.ttest_ind(judge["B"], judge["A"], equal_var=False)
    c = metric_of(results, "judge_score")["comparisons"][0]
    assert metric_of(results, "judge_score")["source"] == "events" and c["cuped"] is None
    assert [a["units"] for a in metric_of(results, "judge_score")["arms"]] == [60, 60]
    assert c["statistic"] == pytest.approx(t, rel=1e-9) and c["p_value"] == pytest.approx(p, rel=1e-9)
    t_thumbs, _ = scipy_stats.ttest_ind(thumbs["B"], thumbs["A"], equal_var=False)
    assert metric_of(results, "thumbs_up")["comparisons"][0]["statistic"] == pytest.approx(t_thumbs, rel=1e-9)

    guard = {g["metric"]: g for g in results["guardrails"]}
    for arm_index, arm in enumerate("AB"):
        mine = [e for e in kept if exposed[e.unit_id] == arm]
        assert guard["error_rate"]["arms"][arm_index]["requests"] == len(mine) == 180
        assert guard["error_rate"]["arms"][arm_index]["value"] == pytest.approx(np.mean([e.error for e in mine]), rel=1e-12)
        assert guard["latency_p95"]["arms"][arm_index]["value"] == pytest.approx(np.percentile([e.latency_ms for e in mine], 95), rel=1e-12)
        assert guard["cost_per_request"]["arms"][arm_index]["value"] == pytest.approx(np.mean([e.cost_usd for e in mine]), rel=1e-12)
        assert guard["guardrail_rate"]["arms"][arm_index]["value"] == pytest.approx(np.mean([e.guardrail_triggered for e in mine]), rel=1e-12)
    errors_a, errors_b = (guard["error_rate"]["arms"][i]["value"] for i in (0, 1))
    check = guard["error_rate"]["checks"][0]
    counts = [sum(e.error for e in kept if exposed[e.unit_id] == arm) for arm in "AB"]
    oracle = proportions_2indep_test(counts[1], 180, counts[0], 180, value=0.005, method="wald", compare="diff", alternative="larger")
    assert oracle.pvalue < experiment.alpha  # B's 8 % errors against A's 1 %: significantly beyond the 0.5 points allowed
    assert check["degradation"] == pytest.approx(errors_b - errors_a, rel=1e-12) and check["p_value"] == pytest.approx(oracle.pvalue, rel=1e-9)
    assert (check["state"], check["violated"]) == ("violated", True)
    cost = guard["cost_per_request"]["checks"][0]
    assert cost["degradation"] == pytest.approx(0.05, rel=1e-9) and cost["violated"] is False
    assert results["recommendation"]["action"] == "discard" and "violates a guardrail" in results["recommendation"]["text"]


def test_a_guardrail_beyond_its_margin_by_chance_warns_and_does_not_veto(editor, prompt_versions):
    # B's error rate is above A's by more than the 0.5 points allowed, but 120 requests an arm cannot tell it from noise
    experiment = services.experiment_create(
        key="noisy-guard", hypothesis="h", prompt="summarize", actor=editor, mde=0.05, baseline_std=0.2,
        variants=[{"name": "A", "version": 2, "weight": 50}, {"name": "B", "version": 3, "weight": 50}],
        primary_metric={"name": "judge_score", "kind": "mean"},
    )
    experiment = services.experiment_start(experiment=experiment, reason="go", actor=editor)
    start = timezone.now() + timedelta(minutes=1)
    exposures, events = [], []
    for arm, version, errors in (("A", prompt_versions[2], 2), ("B", prompt_versions[3], 4)):
        for i in range(120):
            unit = f"{arm}{i}"
            exposures.append((unit, arm, start))
            events.append(event(version, unit, start + timedelta(seconds=1), error=i < errors, judge_score=0.7 + (0.2 if arm == "B" else 0) + (i % 10) / 100))
    load_exposures(experiment, exposures)
    Event.objects.bulk_create(events)

    results = analyse(experiment)

    check = next(g for g in results["guardrails"] if g["metric"] == "error_rate")["checks"][0]
    oracle = proportions_2indep_test(4, 120, 2, 120, value=0.005, method="wald", compare="diff", alternative="larger")
    assert check["degradation"] == pytest.approx(4 / 120 - 2 / 120, rel=1e-12) and check["degradation"] > 0.005
    assert check["p_value"] == pytest.approx(oracle.pvalue, rel=1e-9) and oracle.pvalue > experiment.alpha
    assert (check["state"], check["violated"]) == ("warning", False) and "not significantly" in check["message"]
    assert results["recommendation"]["action"] == "promote" and "error_rate beyond the allowed degradation but not significantly" in results["recommendation"]["text"]


def test_guardrails_need_enough_requests_before_they_judge(editor, prompt_versions):
    experiment = services.experiment_create(
        key="few", hypothesis="h", prompt="summarize", actor=editor, mde=0.05, baseline_std=0.2,
        variants=[{"name": "A", "version": 2, "weight": 50}, {"name": "B", "version": 3, "weight": 50}],
        primary_metric={"name": "judge_score", "kind": "mean"},
    )
    experiment = services.experiment_start(experiment=experiment, reason="go", actor=editor)
    start = timezone.now() + timedelta(minutes=1)
    load_exposures(experiment, [("a", "A", start), ("b", "B", start)])
    Event.objects.bulk_create([event(prompt_versions[2], "a", start, error=False), event(prompt_versions[3], "b", start, error=True)])

    results = analyse(experiment)

    check = next(g for g in results["guardrails"] if g["metric"] == "error_rate")["checks"][0]
    assert (check["state"], check["violated"], check["degradation"]) == ("not_enough_data", False, None)
    assert metric_of(results, "judge_score")["comparisons"][0]["state"] == "not_enough_data"


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's join order; PostgreSQL plans by its statistics")
def test_event_metrics_look_up_each_events_exposure_by_its_unit_on_sqlite(editor, prompt_versions):
    experiment = services.experiment_create(
        key="plan", hypothesis="h", prompt="summarize", actor=editor, mde=0.05, baseline_std=0.2,
        variants=[{"name": "A", "version": 2, "weight": 50}, {"name": "B", "version": 3, "weight": 50}],
        primary_metric={"name": "judge_score", "kind": "mean"},
    )
    experiment = services.experiment_start(experiment=experiment, reason="go", actor=editor)
    start = timezone.now() + timedelta(minutes=1)
    load_exposures(experiment, [(f"u{i}", "AB"[i % 2], start) for i in range(40)])
    Event.objects.bulk_create([event(prompt_versions[2 + i % 2], f"u{i}", start, judge_score=0.5) for i in range(40)])

    with CaptureQueriesContext(connection) as queries:
        analyse(experiment)

    joins = [q["sql"] for q in queries if "monitoring_event" in q["sql"] and "experiments_exposure" in q["sql"]]
    assert len(joins) == 2  # the per-unit sums and the latencies
    with connection.cursor() as cursor:
        for query in joins:
            cursor.execute(f"EXPLAIN QUERY PLAN {query}")
            steps = [row[-1] for row in cursor.fetchall()]
            # The events first (by version and time), then each one's exposure by (experiment, unit): never every
            # exposure with a scan of the version's events for each.
            exposure = next(step for step in steps if "experiments_exposure_join_idx" in step)
            assert "unit_id=?" in exposure and steps.index(exposure) > next(i for i, step in enumerate(steps) if "monitoring_event" in step), steps


# --- the recommendation --------------------------------------------------------------------------------------------------


def arms_with(experiment, counts: dict[str, tuple[int, int]]) -> None:
    """counts: {variant: (units, converted)}."""
    exposures, outcomes = [], []
    for arm, (n, x) in counts.items():
        exposures += [(f"{arm}{i}", arm, at(0)) for i in range(n)]
        outcomes += [(f"{arm}{i}", "conversion", 1.0, at(1)) for i in range(x)]
    load_exposures(experiment, exposures)
    load_outcomes(outcomes)


def test_promote_when_the_always_valid_interval_excludes_zero_before_the_planned_size(editor, checkout):
    experiment = started(editor)
    arms_with(experiment, {"A": (1000, 100), "B": (1000, 190)})

    results = analyse(experiment)

    assert results["recommendation"]["action"] == "promote" and results["recommendation"]["variant"] == "B"
    assert results["recommendation"]["test"] == "always_valid" and "always-valid interval" in results["recommendation"]["text"]
    assert results["leading_variant"] == "B" and results["significant"] is True


def test_keep_running_says_how_many_units_are_still_needed(editor, checkout):
    experiment = started(editor)
    arms_with(experiment, {"A": (1000, 100), "B": (1010, 110)})

    verdict = analyse(experiment)["recommendation"]

    assert (verdict["action"], verdict["units_needed_per_arm"]) == ("keep_running", 3835 - 1000)
    assert "2,835 more units per arm" in verdict["text"]


def test_iterate_once_the_planned_size_is_reached_without_an_effect(editor, checkout):
    experiment = started(editor, baseline_rate=0.5, mde=0.3)
    planned = experiment.sample_size_per_arm
    arms_with(experiment, {"A": (planned, planned // 2), "B": (planned + 3, planned // 2 + 1)})

    results = analyse(experiment)

    assert results["recommendation"]["action"] == "iterate" and results["recommendation"]["test"] == "fixed_horizon"
    assert results["decision_test"] == "fixed_horizon" and results["significant"] is False


def test_discard_when_the_variant_is_significantly_worse(editor, checkout):
    experiment = started(editor)
    arms_with(experiment, {"A": (1000, 200), "B": (1000, 80)})

    verdict = analyse(experiment)["recommendation"]

    assert verdict["action"] == "discard" and "B is significantly worse on conversion" in verdict["text"]


def test_with_several_variants_each_is_compared_with_the_control_and_the_best_promoted(editor, checkout):
    experiment = started(editor, variants=[{"name": "A", "version": 1, "weight": 25}, {"name": "B", "version": 2, "weight": 25},
                                           {"name": "C", "version": 3, "weight": 25}, {"name": "D", "version": 1, "weight": 25}])
    arms_with(experiment, {"A": (1000, 100), "B": (1000, 170), "C": (1000, 230), "D": (1000, 50)})

    results = analyse(experiment)

    comparisons = metric_of(results, "conversion")["comparisons"]
    assert [(c["variant"], c["control"], c["better"]) for c in comparisons] == [("B", "A", True), ("C", "A", True), ("D", "A", False)]
    assert results["recommendation"]["variant"] == "C" and results["leading_variant"] == "C"


def test_lower_is_better_for_a_decreasing_metric(editor, checkout):
    experiment = started(editor, primary_metric={"name": "churn", "kind": "proportion", "direction": "decrease"})
    load_exposures(experiment, [(f"a{i}", "A", at(0)) for i in range(1000)] + [(f"b{i}", "B", at(0)) for i in range(1000)])
    load_outcomes([(f"a{i}", "churn", 1, at(1)) for i in range(200)] + [(f"b{i}", "churn", 1, at(1)) for i in range(90)])

    results = analyse(experiment)

    assert results["recommendation"]["action"] == "promote" and results["leading_variant"] == "B"


# --- not enough data -------------------------------------------------------------------------------------------------------


def test_no_units_or_one_unit_per_arm_is_not_enough_data_never_nan(editor, checkout):
    empty = started(editor, key="empty", primary_metric={"name": "revenue", "kind": "mean"}, baseline_rate=None, baseline_std=1.0, mde=0.5)
    tiny = started(editor, key="tiny", primary_metric={"name": "revenue", "kind": "mean"}, baseline_rate=None, baseline_std=1.0, mde=0.5)
    load_exposures(tiny, [("a", "A", at(0)), ("b", "B", at(0))])
    load_outcomes([("a", "revenue", 5.0, at(1))])

    for experiment in (empty, tiny):
        results = analyse(experiment)

        c = metric_of(results, "revenue")["comparisons"][0]
        assert c["state"] == "not_enough_data" and c["diff"] is None and c["p_value"] is None
        assert results["recommendation"]["action"] == "keep_running" and results["significant"] is None


def test_identical_constant_arms_are_no_evidence_and_constant_different_arms_not_enough_data(editor, checkout):
    same = started(editor, key="same", primary_metric={"name": "revenue", "kind": "mean"}, baseline_rate=None, baseline_std=1.0, mde=0.5)
    apart = started(editor, key="apart", primary_metric={"name": "revenue", "kind": "mean"}, baseline_rate=None, baseline_std=1.0, mde=0.5)
    for experiment, b_value in ((same, 2.0), (apart, 3.0)):
        prefix = experiment.key
        load_exposures(experiment, [(f"{prefix}a{i}", "A", at(0)) for i in range(5)] + [(f"{prefix}b{i}", "B", at(0)) for i in range(5)])
        load_outcomes([(f"{prefix}a{i}", "revenue", 2.0, at(1)) for i in range(5)] + [(f"{prefix}b{i}", "revenue", b_value, at(1)) for i in range(5)])

    no_difference = metric_of(analyse(same), "revenue")["comparisons"][0]
    constant = metric_of(analyse(apart), "revenue")["comparisons"][0]

    assert (no_difference["state"], no_difference["p_value"], no_difference["significant"]) == ("ok", 1.0, False)
    assert constant["state"] == "not_enough_data" and "infinite" in constant["message"]


# --- the analysis row: request, claim, failure, schedule, command ------------------------------------------------------------


def test_request_reuses_a_waiting_analysis_and_refuses_a_draft(editor, checkout, django_capture_on_commit_callbacks):
    experiment = started(editor)
    draft = design(editor, key="draft")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = services.analysis_request(experiment=experiment)
        second = services.analysis_request(experiment=experiment)
    with pytest.raises(Exception) as refused:
        services.analysis_request(experiment=draft)

    assert first.pk == second.pk and len(callbacks) == 1 and Analysis.objects.count() == 1
    assert getattr(refused.value, "code", "") == "experiment_not_started"


def test_an_analysis_is_claimed_once_and_a_stale_run_again(editor, checkout):
    experiment = started(editor)
    analysis = services.analysis_request(experiment=experiment, enqueue=False)

    first = services.analysis_run(analysis_id=analysis.pk)
    second = services.analysis_run(analysis_id=analysis.pk)
    stale = services.analysis_request(experiment=experiment, enqueue=False)
    Analysis.objects.filter(pk=stale.pk).update(status="running", started_at=timezone.now() - timedelta(minutes=11), attempts=1)
    fresh = services.analysis_request(experiment=experiment, enqueue=False)
    Analysis.objects.filter(pk=fresh.pk).update(status="running", started_at=timezone.now() - timedelta(minutes=5), attempts=1)

    assert first.status == "done" and second is None
    assert services.analysis_run(analysis_id=stale.pk).attempts == 2
    assert services.analysis_run(analysis_id=fresh.pk) is None


def test_an_analysis_that_cannot_be_computed_fails_with_the_reason(editor, checkout, monkeypatch):
    experiment = started(editor)

    def broken(experiment):
        raise ValueError("weights must sum to 100")

    monkeypatch.setattr(analysis_service, "experiment_results_compute", broken)

    analysis = services.analysis_run(analysis_id=services.analysis_request(experiment=experiment, enqueue=False).pk)

    assert (analysis.status, analysis.error) == ("failed", "weights must sum to 100") and analysis.finished_at is not None


def test_schedule_queues_running_experiments_and_lost_analyses(editor, checkout, django_capture_on_commit_callbacks):
    running = started(editor)
    design(editor, key="still-draft")
    stopped = started(editor, key="stopped")
    services.experiment_stop(experiment=stopped, reason="done", actor=editor)
    lost = Analysis.objects.get(experiment=stopped)
    Analysis.objects.filter(pk=lost.pk).update(requested_at=timezone.now() - timedelta(minutes=30))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        queued = services.analyses_schedule()

    assert queued == 2 and len(callbacks) == 2
    assert Analysis.objects.filter(experiment=running, status="pending").count() == 1
    assert not Analysis.objects.filter(experiment__key="still-draft").exists()


def test_the_command_analyses_running_experiments_synchronously(editor, checkout, capsys):
    experiment = started(editor)
    arms_with(experiment, {"A": (1000, 100), "B": (1000, 190)})

    call_command("analyze_experiments")
    call_command("analyze_experiments", "--key", "checkout-test")
    with pytest.raises(CommandError):
        call_command("analyze_experiments", "--key", "nope")

    out = capsys.readouterr().out
    assert out.count("checkout-test: analysis") == 2 and "Promote B" in out
    assert list(Analysis.objects.values_list("status", flat=True)) == ["done", "done"]
    assert Exposure.objects.count() == 2000
