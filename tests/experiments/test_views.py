"""The experiment pages: the list, the design form, one experiment with its results, and every button.

Data comes through the services (design, start, exposures and outcomes, the analysis run inline); the
figures a page shows are checked against statsmodels and scipy computed here from the raw counts."""

import html as html_lib
import json
import re
from datetime import timedelta
from uuid import uuid4

import numpy as np
import pytest
from django.test import Client
from django.utils import timezone
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportions_ztest

from experiments import services
from experiments.models import Analysis, Experiment, ExperimentStatus
from monitoring.models import Event
from registry.models import AuditEvent, ModelVersion, PromotionRequest
from registry.services.gates import gate_policy_set
from tests.experiments.conftest import design, load_exposures, load_outcomes

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def analyse(experiment) -> Analysis:
    analysis = services.analysis_run(analysis_id=services.analysis_request(experiment=experiment, enqueue=False).pk)
    assert analysis.status == "done", analysis.error
    return analysis


def with_traffic(experiment, per_arm: tuple[int, int], converted: tuple[int, int], days: int = 3) -> None:
    """Units exposed over `days` days ending now (A then B), the first `converted` of each arm converting an hour later."""
    start = timezone.now() - timedelta(days=days)
    rows, outcomes = [], []
    for arm, n, x in (("A", per_arm[0], converted[0]), ("B", per_arm[1], converted[1])):
        for i in range(n):
            at = start + timedelta(days=i % days, minutes=i % 600)
            rows.append((f"{arm}{i}", arm, at))
            if i < x:
                outcomes.append((f"{arm}{i}", "conversion", 1.0, at + timedelta(hours=1)))
    load_exposures(experiment, rows)
    load_outcomes(outcomes)


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.context["messages"]) if response.context else ""


def text(response) -> str:
    """The page as a reader sees it: tags dropped, whitespace collapsed."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


# --- reachability, empty states ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/experiments/", "/experiments/new/", "/experiments/x/"])
def test_pages_need_login(db, url):
    response = Client().get(url)

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_list_with_an_empty_database_invites_to_design_one(editor):
    response = logged_in(editor).get("/experiments/")

    assert response.status_code == 200
    assert 'id="experiments-empty"' in response.content.decode()
    assert "No experiments yet" in text(response)
    assert 'href="/experiments/new/">Design an experiment</a>' in response.content.decode()


def test_design_form_with_an_empty_database_says_versions_come_first(editor):
    response = logged_in(editor).get("/experiments/new/")

    assert response.status_code == 200
    assert "No model or prompt has a version yet" in text(response)


def test_nav_links_to_the_experiments(viewer):
    html = logged_in(viewer).get("/experiments/").content.decode()

    assert re.search(r'<a href="/experiments/" class="active">Experiments</a>', html)


@pytest.mark.parametrize("url", ["/experiments/nope/"])
def test_an_unknown_experiment_is_a_404(viewer, url):
    assert logged_in(viewer).get(url).status_code == 404


@pytest.mark.parametrize("action", ["start", "stop", "refresh", "decision"])
def test_buttons_of_an_unknown_experiment_are_404s(editor, action):
    response = logged_in(editor).post(f"/experiments/nope/{action}/", {"reason": "r", "decision": "discard"})

    assert response.status_code == 404


@pytest.mark.parametrize("action", ["start", "stop", "refresh", "decision"])
def test_buttons_only_answer_posts(editor, running, action):
    assert logged_in(editor).get(f"/experiments/{running.key}/{action}/").status_code == 405


# --- the list ---------------------------------------------------------------------------------------------------------------


def test_list_shows_status_subject_days_progress_and_the_leading_variant(viewer, editor, running):
    design(editor, key="draft-one")
    with_traffic(running, (200, 180), (20, 40))
    analyse(running)
    Experiment.objects.filter(pk=running.pk).update(started_at=timezone.now() - timedelta(days=3, hours=4))

    response = logged_in(viewer).get("/experiments/")

    row = re.search(r'<tr data-key="checkout-test".*?</tr>', response.content.decode(), re.S).group(0)
    assert 'data-status="running"' in row and ">checkout</a>" in row
    assert re.search(r'data-col="days">3\.2<', row)
    # the smallest arm (180) against the planned 3,835 per arm (statsmodels' NormalIndPower, test_services)
    assert "180 / 3,835 per arm (5 %)" in row
    assert re.search(r'data-col="leading">B<', row)
    assert "keep running" in row
    draft = re.search(r'<tr data-key="draft-one".*?</tr>', response.content.decode(), re.S).group(0)
    assert re.search(r'data-col="days">—<', draft) and "no results" in draft and "0 / 3,835" in draft


def test_list_filters_by_status_and_searches_key_and_hypothesis(viewer, editor, running):
    design(editor, key="draft-one", hypothesis="a calmer checkout page")
    client = logged_in(viewer)

    running_only = client.get("/experiments/?status=running").content.decode()
    drafts = client.get("/experiments/?status=draft").content.decode()
    by_hypothesis = client.get("/experiments/?q=calmer").content.decode()
    nothing = client.get("/experiments/?q=calmer&status=running")
    unknown_status = client.get("/experiments/?status=bogus").content.decode()

    assert 'data-key="checkout-test"' in running_only and 'data-key="draft-one"' not in running_only
    assert 'data-key="draft-one"' in drafts and 'data-key="checkout-test"' not in drafts
    assert 'data-key="draft-one"' in by_hypothesis and 'data-key="checkout-test"' not in by_hypothesis
    assert "No experiment matches “calmer” with status running." in text(nothing)
    assert 'data-key="draft-one"' in unknown_status and 'data-key="checkout-test"' in unknown_status


def test_list_paginates(viewer, editor, checkout, settings):
    settings.MLOPS_PAGE_SIZE = 2
    for i in range(3):
        design(editor, key=f"exp-{i}")
    client = logged_in(viewer)

    first = client.get("/experiments/").content.decode()
    second = client.get("/experiments/?page=2").content.decode()

    assert first.count("<tr data-key=") == 2 and second.count("<tr data-key=") == 1
    assert "page 1 of 2 · 3 in all" in first and 'data-key="exp-0"' in second


def test_list_uses_a_constant_number_of_queries(viewer, editor, checkout, django_assert_max_num_queries):
    for i in range(25):
        experiment = design(editor, key=f"exp-{i}")
        if i % 2:
            experiment = services.experiment_start(experiment=experiment, reason="go", actor=editor)
            load_exposures(experiment, [(f"u{i}-{k}", "AB"[k % 2], timezone.now()) for k in range(6)])
            analyse(experiment)
    client = logged_in(viewer)

    with django_assert_max_num_queries(8):
        response = client.get("/experiments/")

    assert response.content.decode().count("<tr data-key=") == 25


# --- the design form --------------------------------------------------------------------------------------------------------


def form_data(**overrides) -> dict:
    data = {
        "key": "checkout-v2", "hypothesis": "v2 raises conversion by 2 points", "subject": "model:checkout",
        "variant_name": ["A", "B"], "variant_version": ["1", "2"], "variant_weight": ["50", "50"],
        "primary_name": "conversion", "primary_kind": "proportion", "primary_direction": "",
        "secondary_name": ["revenue", ""], "secondary_kind": ["mean", "mean"],
        "guardrail": ["error_rate", "latency_p95"], "guardrail_error_rate_max": "0.01", "guardrail_latency_p95_max": "0.2",
        "guardrail_latency_p95_relative": "on", "guardrail_cost_per_request_max": "0.1",
        "alpha": "0.05", "power": "0.8", "mde": "0.02", "baseline_rate": "0.1", "baseline_std": "3", "action": "create",
    }
    data.update(overrides)
    return data


def test_design_form_offers_the_subjects_and_their_versions(editor, checkout, prompt_versions):
    response = logged_in(editor).get("/experiments/new/?model=checkout")

    html = response.content.decode()
    subjects = json.loads(re.search(r'<script id="design-subjects" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert subjects["model"] == {"checkout": [3, 2, 1]} and subjects["prompt"]["summarize"] == sorted(prompt_versions, reverse=True)
    assert '<option value="model:checkout" selected>' in html
    versions = re.findall(r'name="variant_version" value="(\d*)"', html)
    assert versions == ["2", "3"]  # the control on the older version, the challenger on the newest
    assert 'data-sample-size-url="/api/v1/experiments/sample-size"' in html


def test_model_and_prompt_pages_link_editors_to_the_design_form_with_their_subject(editor, viewer, checkout, prompt_versions):
    pages = {kind: logged_in(editor).get(url).content.decode() for kind, url in (("model", "/models/checkout/"), ("prompt", "/prompts/summarize/"))}
    as_viewer = [logged_in(viewer).get(url).content.decode() for url in ("/models/checkout/", "/prompts/summarize/")]

    links = {kind: re.search(r'<a class="small" href="([^"]+)" id="design-experiment-link">Design an A/B test', page).group(1)
             for kind, page in pages.items()}
    assert links == {"model": "/experiments/new/?model=checkout", "prompt": "/experiments/new/?prompt=summarize"}
    assert not any("design-experiment-link" in page for page in as_viewer)
    form = logged_in(editor).get(html_lib.unescape(links["prompt"])).content.decode()
    assert '<option value="prompt:summarize" selected>' in form


def test_design_form_creates_a_draft_as_typed(editor, checkout):
    response = logged_in(editor).post("/experiments/new/", form_data())

    assert response.status_code == 302 and response["Location"] == "/experiments/checkout-v2/"
    experiment = Experiment.objects.get(key="checkout-v2")
    assert experiment.status == ExperimentStatus.DRAFT and experiment.created_by == editor and experiment.model == checkout
    assert [(v.name, v.model_version.version, str(v.weight)) for v in experiment.variants.order_by("position")] == [("A", 1, "50.00"), ("B", 2, "50.00")]
    assert experiment.secondary_metrics == [{"name": "revenue", "kind": "mean", "direction": "increase"}]
    assert experiment.guardrails == [{"metric": "error_rate", "max_degradation": 0.01, "relative": False},
                                     {"metric": "latency_p95", "max_degradation": 0.2, "relative": True}]
    # a proportion is sized from its baseline rate; the standard deviation typed in the hidden field is not kept
    assert (experiment.baseline_rate, experiment.baseline_std, experiment.sample_size_per_arm) == (0.1, None, 3835)
    followed = logged_in(editor).get(response["Location"])
    assert "v2 raises conversion by 2 points" in text(followed)


def test_design_form_sizes_a_mean_from_its_standard_deviation(editor, checkout):
    response = logged_in(editor).post("/experiments/new/", form_data(primary_name="revenue", primary_kind="mean", secondary_name=[""], mde="0.5",
                                                                      baseline_std="4"))

    assert response.status_code == 302
    experiment = Experiment.objects.get(key="checkout-v2")
    # statsmodels NormalIndPower on Cohen's d = 0.5 / 4 (two-sided, alpha 0.05, power 0.8), rounded up
    from statsmodels.stats.power import NormalIndPower

    assert experiment.sample_size_per_arm == int(-(-NormalIndPower().solve_power(effect_size=0.5 / 4, alpha=0.05, power=0.8) // 1))
    assert experiment.baseline_rate is None and experiment.baseline_std == 4


@pytest.mark.parametrize(("overrides", "message", "invalid"), [
    ({"variant_weight": ["60", "30"]}, "variants: the weights sum to 90.00, not 100.", 'class="grid invalid" id="variant-table"'),
    ({"variant_version": ["1", "7"]}, "variants[1].version: checkout has no version 7.", 'value="7" list="subject-versions" inputmode="numeric" aria-label="Variant version" placeholder="version" class="invalid"'),
    ({"variant_version": ["1", ""]}, "variants[1].version: required: a version number of the subject.", None),
    ({"alpha": "1.5"}, "alpha: in (0, 1).", None),
    ({"power": "lots"}, "power: a finite number.", None),
    ({"mde": "0"}, "mde: not 0: no test detects a zero effect.", None),
    ({"baseline_rate": ""}, "baseline_rate: needed to size the test", None),
    ({"subject": ""}, "subject: give either model or prompt (a name).", None),
    ({"key": "Bad Key"}, "key: 1 to 100 lower-case letters", None),
    ({"primary_name": "judge_score"}, "primary_metric.kind: judge_score comes from the monitoring events as a mean per unit: kind mean.", None),
    ({"guardrail_error_rate_max": "-1"}, "guardrails[0].max_degradation: 0 or more", None),
])
def test_design_form_refusals_re_render_with_the_message_and_the_input(editor, checkout, overrides, message, invalid):
    response = logged_in(editor).post("/experiments/new/", form_data(hypothesis="typed <hypothesis>", **overrides))

    assert response.status_code == 400
    assert message in text(response) and "Nothing was saved." in text(response)
    html = response.content.decode()
    assert ">typed &lt;hypothesis&gt;</textarea>" in html and 'name="key" value="' + overrides.get("key", "checkout-v2") + '"' in html
    for typed in overrides.get("variant_weight", []) + [v for v in overrides.get("variant_version", []) if v]:
        assert f'value="{typed}"' in html
    if invalid:
        assert invalid in html
    assert not Experiment.objects.exists()


def test_design_form_refuses_a_key_in_use_with_409(editor, checkout):
    design(editor, key="checkout-v2")

    response = logged_in(editor).post("/experiments/new/", form_data())

    assert response.status_code == 409 and "An experiment with the key 'checkout-v2' exists already." in text(response)


def test_design_form_refuses_a_viewer_with_the_services_message(viewer, checkout):
    response = logged_in(viewer).post("/experiments/new/", form_data())

    assert response.status_code == 403
    assert "Designing an experiment needs the editor role." in text(response)
    assert 'id="design-submit"' not in response.content.decode() and not Experiment.objects.exists()


def test_design_form_adds_and_removes_rows_without_saving(editor, checkout):
    client = logged_in(editor)

    added = client.post("/experiments/new/", form_data(action="add-variant"))
    removed = client.post("/experiments/new/", form_data(variant_name=["A", "B", "C"], variant_version=["1", "2", "3"], variant_weight=["40", "30", "30"],
                                                         action="remove-variant-1"))
    kept = client.post("/experiments/new/", form_data(action="remove-variant-0"))
    metric = client.post("/experiments/new/", form_data(action="remove-secondary-0"))

    assert added.status_code == 200 and added.content.decode().count('class="variant-row"') == 3
    assert re.findall(r'name="variant_name" value="([^"]*)"', removed.content.decode()) == ["A", "C"]
    assert re.findall(r'name="variant_weight" value="([^"]*)"', removed.content.decode()) == ["40", "30"]
    assert re.findall(r'name="variant_name" value="([^"]*)"', kept.content.decode()) == ["A", "B"]  # never fewer than two
    assert re.findall(r'name="secondary_name" value="([^"]*)"', metric.content.decode()) == [""]
    assert not Experiment.objects.exists()


# --- one experiment -----------------------------------------------------------------------------------------------------------


def test_a_draft_shows_its_design_checklist_and_a_start_button(editor, checkout):
    design(editor)

    response = logged_in(editor).get("/experiments/checkout-test/")

    page = text(response)
    assert response.status_code == 200
    assert "v2 raises conversion by 2 points" in page and "Not started: no units, no results." in page
    steps = dict(re.findall(r'data-step="([a-z ]+)" data-state="(\w+)"', response.content.decode()))
    assert steps == {"hypothesis": "done", "metrics": "done", "sample size": "done", "randomisation": "todo", "duration": "todo",
                     "significance": "todo", "decision": "todo"}
    assert "3,835 units per arm (alpha 0.05, power 0.8, MDE 0.02, baseline rate 0.1)" in page
    assert 'data-testid="start"' in response.content.decode() and 'data-testid="promote"' not in response.content.decode()
    assert 'id="metric-chart"' not in response.content.decode()


def test_a_running_experiment_without_results_says_so(editor, running):
    response = logged_in(editor).get("/experiments/checkout-test/")

    page = text(response)
    assert "No results yet: the analysis runs hourly, or press Refresh." in page
    assert "Randomisation the sample ratio check runs with the first analysis" in page
    assert 'data-testid="stop"' in response.content.decode() and 'data-testid="refresh"' in response.content.decode()


def test_the_page_shows_the_results_against_statsmodels_and_scipy(viewer, editor, running):
    with_traffic(running, (2000, 1950), (200, 300))
    analyse(running)

    response = logged_in(viewer).get("/experiments/checkout-test/")

    html, page = response.content.decode(), text(response)
    z, p = proportions_ztest([300, 200], [1950, 2000])
    chi2, srm_p = scipy_stats.chisquare([2000, 1950])
    row = re.search(r'<tr data-variant="B" class="better">.*?</tr>', html, re.S).group(0)
    assert f"z = {z:.4g}" in row and f">{p:.4g}<" in row
    diff = 300 / 1950 - 200 / 2000
    assert f'data-col="diff">+{diff * 100:.4g} points<' in row
    assert f'data-col="lift">+{diff / 0.1 * 100:.4g} %<' in row
    assert re.search(r'<tr data-variant="A">.*?data-col="value">10 %<', html, re.S)
    assert f"Randomisation SRM check passes (p = {srm_p:.4g})" in page
    assert "Significance B better by the always-valid interval" in page
    assert 'data-action="promote"' in html and "Promote B:" in page and "Decided by the always-valid interval" in page
    assert "1,950 / 3,835" in page and 'id="srm-banner"' not in html
    assert re.search(r'data-step="duration" data-state="active"', html) and "1,950 of 3,835 units per arm (51%)" in page
    figures = {name: json.loads(re.search(rf'<script id="{name}" type="application/json">(.*?)</script>', html, re.S).group(1))
               for name in ("metric-figure", "lift-figure")}
    assert [t["name"] for t in figures["metric-figure"]["data"]] == ["A", "B"]
    assert figures["metric-figure"]["data"][0]["y"][-1] == pytest.approx(10.0)  # percent
    assert "NaN" not in html and "Infinity" not in html and "nan" not in page.lower().split()
    assert 'src="/static/vendor/plotly.min.js"' in html


def test_a_prompt_experiment_shows_means_and_welchs_t_against_scipy(viewer, editor, prompt_versions):
    experiment = services.experiment_create(
        key="summarize-ab", hypothesis="v3 is judged better", prompt="summarize", actor=editor, mde=0.05, baseline_std=0.2,
        variants=[{"name": "A", "version": 2, "weight": 50}, {"name": "B", "version": 3, "weight": 50}],
        primary_metric={"name": "judge_score", "kind": "mean"}, guardrails=[],
    )
    experiment = services.experiment_start(experiment=experiment, reason="go", actor=editor)
    start = timezone.now() + timedelta(minutes=1)
    scores = {"A": [0.6 + 0.01 * (i % 7) for i in range(40)], "B": [0.7 + 0.01 * (i % 5) for i in range(40)]}
    load_exposures(experiment, [(f"{arm}{i}", arm, start) for arm in "AB" for i in range(40)])
    Event.objects.bulk_create([
        Event(event_id=uuid4().hex, prompt_version=prompt_versions[2 if arm == "A" else 3], unit_id=f"{arm}{i}", timestamp=start,
              latency_ms=100.0, judge_score=score)
        for arm in "AB" for i, score in enumerate(scores[arm])
    ])
    analyse(experiment)

    response = logged_in(viewer).get("/experiments/summarize-ab/")

    html = response.content.decode()
    t, p = scipy_stats.ttest_ind(scores["B"], scores["A"], equal_var=False)
    arm_b = re.search(r'<tr data-variant="B"><td>B</td><td class="num">40</td>.*?</tr>', html, re.S).group(0)
    assert f'data-col="value">{np.mean(scores["B"]):.4g}<' in arm_b and f">{np.std(scores['B'], ddof=1):.4g}<" in arm_b
    row = re.search(r'<tr data-variant="B" class="better">.*?</tr>', html, re.S).group(0)
    assert f"t = {t:.4g}" in row and f">{p:.4g}<" in row
    assert f'data-col="diff">+{np.mean(scores["B"]) - np.mean(scores["A"]):.4g}<' in row
    assert 'href="/prompts/summarize/versions/3/">v3</a>' in html and "from the events" in text(response)


def test_once_the_planned_sample_is_reached_the_fixed_horizon_test_decides(viewer, editor, checkout):
    experiment = services.experiment_start(experiment=design(editor, mde=0.1), reason="go", actor=editor)
    planned = experiment.sample_size_per_arm
    with_traffic(experiment, (planned + 10, planned + 10), (planned // 10, planned // 4))
    analyse(experiment)

    response = logged_in(viewer).get("/experiments/checkout-test/")

    html, page = response.content.decode(), text(response)
    assert re.search(r'data-step="duration" data-state="done"', html)
    assert f"planned sample reached ({planned + 10:,} of {planned:,} units per arm)" in page
    assert "Decided by the fixed-horizon test: the planned sample size is reached." in page


def test_a_test_stopped_before_its_sample_size_fails_the_duration_step(viewer, editor, running):
    with_traffic(running, (30, 30), (3, 3))
    services.experiment_stop(experiment=running, reason="out of time", actor=editor)

    response = logged_in(viewer).get("/experiments/checkout-test/")

    assert re.search(r'data-step="duration" data-state="failed"', response.content.decode())
    assert "stopped after 0.0 days at 30 of 3,835 units per arm" in text(response)


def test_a_sample_ratio_mismatch_raises_the_banner_and_fails_randomisation(viewer, editor, running):
    with_traffic(running, (1100, 900), (100, 100))
    analyse(running)

    response = logged_in(viewer).get("/experiments/checkout-test/")

    chi2, p = scipy_stats.chisquare([1100, 900])
    html = response.content.decode()
    banner = text(response).split("Sample ratio mismatch.")[1]
    assert 'id="srm-banner"' in html and f"chi-square {chi2:.4g}, p = {p:.4g} < 0.001" in banner
    assert re.search(r'data-step="randomisation" data-state="failed"', html)
    assert 'data-action="investigate"' in html


def test_not_enough_data_is_a_state_not_nan(viewer, editor, running):
    load_exposures(running, [("a", "A", timezone.now()), ("b", "B", timezone.now())])
    analyse(running)

    response = logged_in(viewer).get("/experiments/checkout-test/")

    html, page = response.content.decode(), text(response)
    assert "Not enough data: fewer than 2 units in an arm." in page
    assert "Significance not enough data yet for a test" in page
    for bad in ("NaN", "nan", "Infinity", "inf"):
        assert not re.search(rf"\b{bad}\b", html)


def test_guardrails_show_their_status(viewer, editor, running):
    with_traffic(running, (50, 50), (5, 5))
    analyse(running)

    response = logged_in(viewer).get("/experiments/checkout-test/")

    html = response.content.decode()
    rows = dict(re.findall(r'<tr data-guardrail="(\w+)">.*?class="guard guard-([a-z-]+)"', html, re.S))
    assert rows == {"error_rate": "not-enough-data", "latency_p95": "not-enough-data", "cost_per_request": "not-enough-data",
                    "guardrail_rate": "not-enough-data"}
    assert "fewer than 100 requests with this figure in an arm" in text(response)
    assert "+0.5 points" in text(response) and "+10 % of the control's" in text(response)


def test_the_experiment_page_uses_a_constant_number_of_queries(viewer, editor, checkout, django_assert_max_num_queries):
    three = [{"name": "A", "version": 1, "weight": 34}, {"name": "B", "version": 2, "weight": 33}, {"name": "C", "version": 3, "weight": 33}]
    experiment = services.experiment_start(experiment=design(editor, variants=three), reason="go", actor=editor)
    now = timezone.now()
    load_exposures(experiment, [(f"{arm}{i}", arm, now - timedelta(days=i % 3)) for arm in "ABC" for i in range(300)])
    load_outcomes([(f"{arm}{i}", "conversion", 1.0, now) for arm, x in (("A", 30), ("B", 45), ("C", 40)) for i in range(x)])
    analyse(experiment)
    services.experiment_decide(experiment=experiment, decision="promote", variant="B", reason="clear win", actor=editor)
    client = logged_in(viewer)

    # session, user, role; the experiment, its variants; the latest analysis, one in progress; the promotion
    with django_assert_max_num_queries(8):
        response = client.get("/experiments/checkout-test/")

    html = response.content.decode()
    assert response.status_code == 200 and 'id="promotion-link"' in html
    assert html.count('<tr data-variant="C"') == 3  # the variants table, the primary metric's arms and its comparison


# --- buttons --------------------------------------------------------------------------------------------------------------------


def test_start_runs_the_draft(editor, checkout):
    design(editor)

    response = logged_in(editor).post("/experiments/checkout-test/start/", {"reason": "traffic is back"}, follow=True)

    assert "Started checkout-test: units are assigned from now on." in messages_of(response)
    assert Experiment.objects.get().status == ExperimentStatus.RUNNING
    assert AuditEvent.objects.filter(action="experiment_started", reason="traffic is back").exists()


@pytest.mark.parametrize(("who", "reason", "message"), [
    ("viewer", "go", "Starting an experiment needs the editor role."),
    ("editor", "", "reason: required: say why."),
])
def test_start_refusals_show_the_services_message(viewer, editor, checkout, who, reason, message):
    design(editor)
    user = viewer if who == "viewer" else editor

    response = logged_in(user).post("/experiments/checkout-test/start/", {"reason": reason}, follow=True)

    assert response.status_code == 200 and message in messages_of(response)
    assert Experiment.objects.get().status == ExperimentStatus.DRAFT


def test_start_refused_by_the_gates_names_the_checks(editor, approver, checkout):
    design(editor)
    gate_policy_set(model=checkout, checks=[{"check": "accuracy", "op": ">=", "threshold": 0.95}], actor=approver)

    response = logged_in(editor).post("/experiments/checkout-test/start/", {"reason": "go"}, follow=True)

    assert "Gates not passed, the experiment cannot start: A (v1): accuracy never ran; B (v2): accuracy never ran." in messages_of(response)
    assert Experiment.objects.get().status == ExperimentStatus.DRAFT


def test_start_twice_is_refused(editor, running):
    response = logged_in(editor).post("/experiments/checkout-test/start/", {"reason": "again"}, follow=True)

    assert "Experiment checkout-test is running; only a draft can start." in messages_of(response)


def test_stop_ends_the_test_and_queues_a_last_analysis(editor, running):
    response = logged_in(editor).post("/experiments/checkout-test/stop/", {"reason": "enough"}, follow=True)

    assert "Stopped checkout-test" in messages_of(response)
    assert Experiment.objects.get().status == ExperimentStatus.STOPPED
    assert Analysis.objects.filter(experiment=running, status="pending").count() == 1
    assert 'id="analysis-current"' in response.content.decode()


@pytest.mark.parametrize(("who", "message"), [
    ("viewer", "Stopping an experiment needs the editor role."),
    ("editor-draft", "Experiment draft-one is draft; only a running one can stop."),
])
def test_stop_refusals_show_the_services_message(viewer, editor, running, who, message):
    design(editor, key="draft-one")
    key = "draft-one" if who == "editor-draft" else "checkout-test"

    response = logged_in(viewer if who == "viewer" else editor).post(f"/experiments/{key}/stop/", {"reason": "r"}, follow=True)

    assert message in messages_of(response)
    assert Experiment.objects.get(key="checkout-test").status == ExperimentStatus.RUNNING


def test_refresh_queues_an_analysis_that_runs_on_commit(editor, running, celery_eager, django_capture_on_commit_callbacks):
    with_traffic(running, (40, 40), (4, 8))

    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(editor).post("/experiments/checkout-test/refresh/", follow=True)

    analysis = Analysis.objects.get(experiment=running)
    assert f"Analysis #{analysis.pk} queued" in messages_of(response)
    assert analysis.status == "done" and analysis.units_total == 80


@pytest.mark.parametrize(("who", "message"), [
    ("viewer", "Refreshing the results needs the editor role."),
    ("editor-draft", "Experiment draft-one has not started: there is nothing to analyse."),
])
def test_refresh_refusals_show_the_message_and_queue_nothing(viewer, editor, running, who, message):
    design(editor, key="draft-one")
    key = "draft-one" if who == "editor-draft" else "checkout-test"

    response = logged_in(viewer if who == "viewer" else editor).post(f"/experiments/{key}/refresh/", follow=True)

    assert message in messages_of(response)
    assert not Analysis.objects.exists()


def test_promote_b_opens_the_promotion_an_approver_then_approves(editor, approver, running):
    with_traffic(running, (2000, 2000), (200, 300))
    analyse(running)

    response = logged_in(editor).post("/experiments/checkout-test/decision/", {"decision": "promote", "variant": "B", "reason": "clear win"}, follow=True)

    promotion = PromotionRequest.objects.get()
    assert f"Promote B: promotion request #{promotion.pk} opened" in messages_of(response)
    assert promotion.status == "pending" and promotion.version.version == 2 and promotion.to_stage == "production"
    html = response.content.decode()
    assert f'href="/models/checkout/versions/2/#promotion-{promotion.pk}" id="promotion-link"' in html
    assert re.search(r'data-step="decision" data-state="done"', html) and "promoted B by alice: “clear win”" in text(response)
    assert 'data-testid="promote"' not in html
    version_page = logged_in(approver).get(f"/models/checkout/versions/2/#promotion-{promotion.pk}").content.decode()
    assert f'data-testid="approve-{promotion.pk}"' in version_page and "experiment:checkout-test" in version_page
    approved = logged_in(approver).post(f"/promotions/{promotion.pk}/approve/", {"comment": "ok"}, follow=True)
    assert "is now in production" in messages_of(approved)
    assert ModelVersion.objects.get(model__name="checkout", version=2).stage == "production"


@pytest.mark.parametrize(("post", "message"), [
    ({"decision": "promote", "variant": "B", "reason": "r"}, "Experiment checkout-test has no results yet: run an analysis first."),
    ({"decision": "promote", "variant": "A", "reason": "r"}, "variant: A is the control: promote a variant tested against it."),
    ({"decision": "discard", "reason": ""}, "reason: required: say why."),
    ({"decision": "maybe", "reason": "r"}, "decision: one of promote, discard, iterate."),
])
def test_decision_refusals_show_the_services_message(editor, running, post, message):
    response = logged_in(editor).post("/experiments/checkout-test/decision/", post, follow=True)

    assert message in messages_of(response)
    assert Experiment.objects.get().decision == "" and not PromotionRequest.objects.exists()


def test_a_viewer_cannot_decide_and_sees_no_buttons(viewer, editor, running):
    with_traffic(running, (2000, 2000), (200, 300))
    analyse(running)
    client = logged_in(viewer)

    page = client.get("/experiments/checkout-test/").content.decode()
    response = client.post("/experiments/checkout-test/decision/", {"decision": "discard", "reason": "r"}, follow=True)

    assert not re.search(r'data-testid="(start|stop|refresh|promote|iterate|discard)"', page)
    assert "Deciding an experiment needs the editor role." in messages_of(response)
    assert Experiment.objects.get().decision == ""


@pytest.mark.parametrize("decision", ["discard", "iterate"])
def test_discard_and_iterate_record_the_decision_and_stop_the_test(editor, running, decision):
    response = logged_in(editor).post("/experiments/checkout-test/decision/", {"decision": decision, "reason": "not worth it"}, follow=True)

    experiment = Experiment.objects.get()
    assert f"Decision recorded: {decision}." in messages_of(response)
    assert (experiment.decision, experiment.status, experiment.decision_reason) == (f"{decision}ed" if decision == "discard" else decision, "stopped", "not worth it")
    assert AuditEvent.objects.filter(action="experiment_decided", reason="not worth it").exists()
    assert f'id="decision">{experiment.decision}<' in response.content.decode()
