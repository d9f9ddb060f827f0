"""Real Chromium (Debian's, driven by Playwright) against the live server."""

import pytest
from playwright.sync_api import expect

from registry import services
from registry.models import ModelVersion
from tests.conftest import PASSWORD, make_user
from tests.factories import promote, register

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# Waits go through Playwright's expect, not wait_for_function: a string predicate is evaluated in the page, which
# the Content Security Policy (no 'unsafe-eval') refuses. As long as wait_for_function's default.
WAIT = {"timeout": 30_000}


def log_in(page, live_server, username: str, password: str = PASSWORD):
    page.goto(live_server.url + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")


def test_approver_approves_a_pending_promotion_and_sees_it_in_production_and_the_audit_log(live_server, page):
    editor = make_user("alice", "editor")
    make_user("bob", "approver")
    v1 = register("fraud-detector", editor, metrics={"auc": 0.91})
    promote(v1, "production", editor, make_user("carol", "approver"))
    v2 = register("fraud-detector", editor, metrics={"auc": 0.94})
    promotion = services.promotion_request_create(version=v2, to_stage="production", reason="AUC +0.03", actor=editor)
    console_errors = []
    page.on("console", lambda msg: msg.type == "error" and console_errors.append(msg.text))

    log_in(page, live_server, "bob")
    page.click(f"#promotion-{promotion.pk} a")
    page.wait_for_selector("h1:has-text('fraud-detector v2')")
    page.click(f"[data-testid=approve-{promotion.pk}]")

    page.wait_for_selector(".msg-success")
    assert "is now in production" in page.inner_text(".messages")
    assert page.inner_text("#version-stage").strip() == "production"
    assert ModelVersion.objects.get(pk=v1.pk).stage == "archived"
    page.click("nav >> text=Audit log")
    first_row = page.locator("tr.audit-row").first
    assert first_row.get_attribute("data-action") == "promotion_approved"
    assert "bob" in first_row.inner_text() and "v2" in first_row.inner_text()
    assert console_errors == []


def test_compare_page_draws_the_metrics_chart(live_server, page):
    editor = make_user("alice", "editor")
    register("churn", editor, metrics={"auc": 0.8, "f1": 0.7})
    register("churn", editor, metrics={"auc": 0.82, "f1": 0.69})

    log_in(page, live_server, "alice")
    page.goto(live_server.url + "/models/churn/")
    page.check("input[name=v][value='1']")
    page.check("input[name=v][value='2']")
    page.click("text=Compare selected")

    page.wait_for_selector("#compare-chart .main-svg")
    assert page.locator("#compare-chart .trace.bars").count() == 2
    assert page.locator("#compare-table tr.differs").count() >= 2


def test_approver_opens_a_prompt_diff_and_approves_the_prod_move(live_server, page):
    from registry.models import PromotionRequest, PromptVersion
    from tests.prompts.conftest import brief_folder

    editor, approver = make_user("alice", "editor"), make_user("bob", "approver")
    services.prompts_import(files=brief_folder(), actor=editor)
    for promotion in PromotionRequest.objects.filter(status="pending"):
        services.promotion_approve(promotion_id=promotion.pk, actor=approver)
    v3 = PromptVersion.objects.get(prompt__name="summarize", version=3)
    request = services.promotion_request_create(version=v3, to_stage="prod", reason="tighter summaries", actor=editor)

    log_in(page, live_server, "bob")
    page.click("nav >> text=Prompts")
    page.click("#prompt-table >> text=summarize")
    page.click(f"#promotion-{request.pk} a")
    settings_diff = page.locator("table.diff[data-section=settings] tr.d-replace")
    assert "temperature: 0.3" in settings_diff.first.inner_text() and "temperature: 0.2" in settings_diff.first.inner_text()
    page.click(f"[data-testid=approve-{request.pk}]")

    page.wait_for_selector(".msg-success")
    assert "prod" in page.inner_text("#runs-in")
    page.click(".crumbs >> text=summarize")
    assert page.inner_text("#env-prod strong").strip() == "v3"
    assert "prod: v2 → v3 moved by bob (requested by alice)" in " ".join(page.inner_text("#env-timeline").split())


def test_operations_and_cost_pages_draw_their_charts(live_server, page):
    from datetime import timedelta

    from django.utils import timezone

    from monitoring.services import budget_set, rollups_update
    from tests.conftest import api_client_for
    from tests.prompts.conftest import brief_folder

    editor = make_user("alice", "editor")
    services.prompts_import(files=brief_folder(), actor=editor)
    now = timezone.now()
    events = [
        {"event_id": f"e-{i}", "prompt": "summarize", "version": 2 + i % 2, "timestamp": (now - timedelta(minutes=5 + 7 * i)).isoformat(),
         "latency_ms": 800.0 + 10 * i, "ttft_ms": 300.0, "input_tokens": 500, "output_tokens": 120, "cost_usd": 0.002, "judge_score": 0.5 + i / 400}
        for i in range(120)
    ]
    assert api_client_for(editor).post("/api/v1/events", {"events": events}, format="json").status_code == 202
    rollups_update()
    budget_set(name="daily", amount_usd=1.0, period="day", scope="prompt", members=["prompt:summarize"], actor=editor)
    console_errors = []
    page.on("console", lambda msg: msg.type == "error" and console_errors.append(msg.text))

    log_in(page, live_server, "alice")
    page.goto(live_server.url + "/monitoring/operations/prompt/summarize/")
    page.wait_for_selector("#latency-chart .main-svg")
    assert page.locator("#throughput-chart .main-svg").count() >= 1
    assert "P95 limit 10 s" in page.inner_text("#latency-chart")
    page.click("nav >> text=Costs")
    page.wait_for_selector("#spend-chart .main-svg")
    assert page.locator("[id^=budget-][id$=-chart] .main-svg").count() >= 1
    assert page.inner_text("#prompt-costs tr[data-prompt=summarize] td[data-col=spend]").strip() == "$0.2400"
    assert console_errors == []


def test_approver_sees_the_red_gate_and_approves_once_an_evaluation_passes(live_server, page, tmp_path):
    from registry.models import Evaluation, PromotionRequest
    from registry.services.evaluations import evaluation_run
    from registry.services.gates import gate_policy_set

    editor, approver = make_user("alice", "editor"), make_user("bob", "approver")
    version = register("fraud", editor)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="ship it", actor=editor)
    gate_policy_set(model=version.model, checks=[{"check": "accuracy", "op": ">=", "threshold": 0.9}], actor=approver)
    predictions = tmp_path / "holdout.csv"
    predictions.write_text("label,prediction\n1,1\n0,0\n1,1\n0,0\n")

    log_in(page, live_server, "bob")
    page.goto(live_server.url + "/models/fraud/versions/1/")
    assert page.get_attribute("#gate-card", "data-gates") == "failed"
    assert page.inner_text("#gate-reason") == "Gates failed: accuracy never ran"
    assert page.locator(f"[data-testid=approve-{promotion.pk}]").is_disabled()
    page.set_input_files("#evaluate-form input[name=file]", str(predictions))
    page.click("#evaluate-form button[type=submit]")
    page.wait_for_selector(".msg-success")
    assert "queued; a worker computes it" in page.inner_text(".messages")
    for pending in Evaluation.objects.filter(status="pending"):  # the worker, when Celery did not run it eagerly
        evaluation_run(evaluation_id=pending.pk)
    page.reload()

    assert page.get_attribute("#gate-card", "data-gates") == "passed"
    assert page.get_attribute("#gate-checks tr[data-check=accuracy]", "data-status") == "passed"
    page.click(f"[data-testid=approve-{promotion.pk}]")
    page.wait_for_selector(".msg-success >> text=is now in staging")
    assert PromotionRequest.objects.get(pk=promotion.pk).status == "approved"


def test_editor_designs_an_experiment_with_the_live_calculator_starts_it_and_sees_its_charts(live_server, page, settings, celery_eager):
    import math
    from datetime import timedelta
    from uuid import uuid4

    from django.utils import timezone
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    from experiments.models import Experiment
    from monitoring.models import Event
    from tests.experiments.conftest import load_exposures, load_outcomes

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "browser-experiments"}}
    editor = make_user("alice", "editor")
    v1 = register("checkout", editor)
    register("checkout", editor)
    now = timezone.now()
    # 700 distinct units in the last 7 days: 100 units a day of current traffic
    Event.objects.bulk_create([Event(event_id=uuid4().hex, model_version=v1, unit_id=f"visitor-{i}", timestamp=now - timedelta(hours=i % 160),
                                     latency_ms=50.0) for i in range(700)])

    def per_arm(mde: float) -> int:
        return math.ceil(NormalIndPower().solve_power(effect_size=proportion_effectsize(0.1 + mde, 0.1), alpha=0.05, power=0.8))

    console_errors = []
    page.on("console", lambda msg: msg.type == "error" and console_errors.append(msg.text))

    log_in(page, live_server, "alice")
    page.click("nav >> text=Experiments")
    page.click("#experiments-empty >> text=Design an experiment")
    page.fill("input[name=key]", "checkout-v2")
    page.fill("textarea[name=hypothesis]", "v2 raises conversion by 2 points")
    page.select_option("#subject", "model:checkout")

    expect(page.locator("#calc-per-day")).to_have_text("100 units a day", **WAIT)  # the subject's traffic
    expect(page.locator("#calculator")).to_have_attribute("data-state", "ready", **WAIT)
    assert page.inner_text("#calc-per-arm") == "3,835" and per_arm(0.02) == 3835
    assert page.input_value("#variant-table tr:nth-child(1) input[name=variant_version]") == "1"
    assert page.input_value("#variant-table tr:nth-child(2) input[name=variant_version]") == "2"
    assert page.inner_text("#calc-total") == "7,670"
    assert page.inner_text("#calc-days") == "77 days (11.0 weeks)"
    page.focus("input[name=mde]")
    expect(page.locator("#calculator")).to_have_attribute("data-state", "ready", **WAIT)
    page.keyboard.press("Control+A")
    page.keyboard.type("0.03")  # keystrokes, no blur: the calculator follows the typing
    expect(page.locator("#calc-per-arm")).to_have_text(f"{per_arm(0.03):,}", **WAIT)
    page.click("#variant-table ~ p [data-add-row]")
    expect(page.locator("#calc-total")).to_have_text(f"{per_arm(0.03) * 3:,}", **WAIT)
    page.click("#variant-table tbody tr:nth-child(3) [data-remove-row]")
    page.fill("input[name=mde]", "0.02")
    expect(page.locator("#calc-total")).to_have_text("7,670", **WAIT)
    assert page.inner_text("#weight-sum") == "Weights sum to 100 ✓"
    page.click("#design-submit")
    page.wait_for_selector(".msg-success >> text=Experiment checkout-v2 designed: 3,835 units per arm")
    page.fill("#start-form input[name=reason]", "traffic is back")
    page.click("[data-testid=start]")
    page.wait_for_selector("#experiment-status >> text=running")

    experiment = Experiment.objects.get(key="checkout-v2")
    start = timezone.now() - timedelta(days=2)
    load_exposures(experiment, [(f"{arm}{i}", arm, start + timedelta(days=i % 3, minutes=i % 300)) for arm in "AB" for i in range(1500)])
    load_outcomes([(f"{arm}{i}", "conversion", 1.0, start + timedelta(days=i % 3, minutes=i % 300 + 30))
                   for arm, converted in (("A", 150), ("B", 270)) for i in range(converted)])
    page.click("[data-testid=refresh]")

    page.wait_for_selector("#metric-chart .plot-container", state="attached")
    page.wait_for_selector("#lift-chart .plot-container", state="attached")
    page.wait_for_selector("#lift-chart .main-svg")
    assert page.locator("#metric-chart .scatterlayer .trace").count() == 2
    assert page.get_attribute("#recommendation", "data-action") == "promote"
    assert page.get_attribute("[data-step=randomisation]", "data-state") == "done"
    assert console_errors == []


def test_approver_pauses_and_resumes_a_running_rollout_beside_its_charts(live_server, page, settings):
    from datetime import timedelta

    from django.utils import timezone

    from experiments import services as experiment_services
    from experiments.models import Rollout
    from monitoring.services import rollups_catch_up
    from registry.models import AuditEvent
    from tests.experiments.conftest import QUICK, canary_of, traffic

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "browser-rollouts"}}
    editor, carol = make_user("alice", "editor"), make_user("carol", "approver")
    make_user("bob", "approver")  # presses the buttons; carol approved the canary
    v1 = register("fraud", editor)
    promote(v1, "production", editor, carol)
    experiment_services.rollout_policy_create(name="quick", actor=carol, **QUICK)
    t0 = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=30)
    rollout = canary_of(register("fraud", editor), editor, carol, policy="quick", at=t0)
    traffic(editor, version=1, at=t0 + timedelta(minutes=1), n=300, latency_ms=100.0)
    traffic(editor, version=2, at=t0 + timedelta(minutes=1), n=60, latency_ms=105.0, shadow=True)  # mirrored: the shadow stage
    rollups_catch_up()
    assert experiment_services.rollout_tick(rollout_id=rollout.pk, now=t0 + timedelta(minutes=6)) == "advance"
    console_errors = []
    page.on("console", lambda msg: msg.type == "error" and console_errors.append(msg.text))

    log_in(page, live_server, "bob")
    page.click("nav >> text=Rollouts")
    page.click(f"#rollout-table tr[data-rollout='{rollout.pk}'] a >> text=#{rollout.pk}")
    page.wait_for_selector("#chart-error-rate .plot-container", state="attached")
    page.wait_for_selector("#chart-latency-p95 .main-svg")
    assert page.locator("#chart-latency-p95 .scatterlayer .trace").count() >= 3  # candidate, baseline, 2 x baseline
    assert "roll back above 5 %" in page.inner_text("#chart-error-rate")
    assert page.inner_text("#rollout-stage") == "5%" and page.inner_text("#rollout-share") == "5 %"
    page.fill("#decide-form textarea[name=reason]", "a look at the latency first")
    page.click("[data-testid=pause]")

    page.wait_for_selector(".msg-success >> text=Paused at 5% (5 %)")
    assert page.get_attribute("#rollout-status", "data-status") == "paused"
    assert "a look at the latency first" in page.inner_text("#decision-table tr[data-action=pause]")
    page.fill("#decide-form textarea[name=reason]", "latency is fine")
    page.click("[data-testid=resume]")

    page.wait_for_selector(".msg-success >> text=Resumed: stage 5% (5 %) starts over.")
    assert page.get_attribute("#rollout-status", "data-status") == "running"
    assert Rollout.objects.get(pk=rollout.pk).status == "running"
    assert list(AuditEvent.objects.filter(action__in=["rollout_paused", "rollout_resumed"]).order_by("id").values_list("action", "actor_name", "reason")) == [
        ("rollout_paused", "bob", "a look at the latency first"), ("rollout_resumed", "bob", "latency is fine")]
    page.click("#rollout-candidate a")
    expect(page.locator("#rolling-out [data-rollout-stage]")).to_have_text(": stage 5%, 5 %", **WAIT)
    assert page.get_attribute("#rollout-link", "href") == f"/rollouts/{rollout.pk}/"
    assert console_errors == []


def test_version_performance_page_draws_its_charts_from_the_version_page(live_server, page):
    from datetime import timedelta

    from django.utils import timezone

    from monitoring.services import labels_attach, performance_windows_schedule
    from tests.conftest import api_client_for

    editor = make_user("alice", "editor")
    register("fraud", editor, metrics={"accuracy": 0.9, "f1": 0.8, "roc_auc": 0.95})
    now = timezone.now()
    events = [{"event_id": f"e-{i}", "model": "fraud", "version": 1, "timestamp": (now - timedelta(minutes=5 + i)).isoformat(),
               "latency_ms": 5.0, "prediction": 0.8 if i % 3 else 0.2} for i in range(60)]
    assert api_client_for(editor).post("/api/v1/events", {"events": events}, format="json").status_code == 202
    labels_attach(payload={"labels": [{"event_id": f"e-{i}", "label": int(i % 4 != 0)} for i in range(40)]}, actor=editor)
    performance_windows_schedule(now=now)
    console_errors = []
    page.on("console", lambda msg: msg.type == "error" and console_errors.append(msg.text))

    log_in(page, live_server, "alice")
    page.goto(live_server.url + "/models/fraud/versions/1/")
    page.click("#performance-link")

    page.wait_for_selector("#accuracy-chart.js-plotly-plot .main-svg")
    assert page.locator("#f1-chart.js-plotly-plot").count() == 1 and page.locator("#label-delay-chart.js-plotly-plot").count() == 1
    assert "alert below 0.855" in page.inner_text("#accuracy-chart")
    assert console_errors == []
