"""Every page with charts, the API docs, the browsable API and the admin, drawn by a real Chromium under the site's Content Security
Policy: no violation (a `securitypolicyviolation` event or Chrome's "Refused to ..." console error) and the Plotly
charts present."""

from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from experiments import services as experiment_services
from monitoring import services as monitoring_services
from registry import services
from tests.conftest import api_client_for, make_user
from tests.experiments.conftest import QUICK, canary_of, design, load_exposures, load_outcomes, traffic
from tests.factories import promote, register
from tests.monitoring.test_reports import T0, send
from tests.prompts.conftest import brief_folder
from tests.test_browser import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-password-0"
# Every violation the page reports, kept on window (the listener is installed before any of the page's scripts run).
WATCH_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " " + e.sample + " at " + e.sourceFile + ":" + e.lineNumber + ":" + e.columnNumber);
});
"""


def charts_and_pages(editor, approver) -> dict[str, str]:
    """The pages that draw charts, with their data: path -> what the page is."""
    churn = [register("churn", editor, metrics={"auc": 0.80 + i / 100, "f1": 0.7}) for i in range(2)]

    fraud = register("fraud", editor)
    rng = np.random.default_rng(0)
    reference = "amount,country\n" + "".join(f"{v},{'DE' if i % 2 else 'FR'}\n" for i, v in enumerate(rng.normal(100, 10, 500)))
    monitoring_services.reference_set_from_file(model_version=fraud, data=reference.encode(), actor=editor)
    send(api_client_for, editor, rng.normal(130, 10, 200))
    report = monitoring_services.drift_report_request(model_version=fraud, start=T0, end=T0 + timedelta(hours=1))
    monitoring_services.drift_report_run(report_id=report.pk)

    services.prompts_import(files=brief_folder(), actor=editor)
    now = timezone.now()
    events = [{"event_id": f"p-{i}", "prompt": "summarize", "version": 2, "timestamp": (now - timedelta(minutes=5 + 7 * i)).isoformat(),
               "latency_ms": 800.0 + 10 * i, "input_tokens": 500, "output_tokens": 120, "cost_usd": 0.002} for i in range(60)]
    monitoring_services.events_ingest(payload={"events": events}, actor=editor)
    monitoring_services.rollups_update()
    monitoring_services.budget_set(name="daily", amount_usd=1.0, period="day", scope="prompt", members=["prompt:summarize"], actor=editor)

    for _ in range(2):
        register("checkout", editor)
    experiment = design(editor)
    experiment_services.experiment_start(experiment=experiment, reason="go", actor=editor)
    experiment.refresh_from_db()
    start = now - timedelta(days=2)
    load_exposures(experiment, [(f"{arm}{i}", arm, start + timedelta(days=i % 2, minutes=i)) for arm in "AB" for i in range(400)])
    load_outcomes([(f"{arm}{i}", "conversion", 1.0, start + timedelta(days=i % 2, minutes=i + 30)) for arm, n in (("A", 40), ("B", 60))
                   for i in range(n)])
    analysis = experiment_services.analysis_run(analysis_id=experiment_services.analysis_request(experiment=experiment, enqueue=False).pk)
    assert analysis.status == "done", analysis.error

    promote(fraud, "production", editor, approver)
    experiment_services.rollout_policy_create(name="quick", actor=approver, **QUICK)
    t0 = now.replace(second=0, microsecond=0) - timedelta(minutes=30)
    rollout = canary_of(register("fraud", editor), editor, approver, policy="quick", at=t0)
    traffic(editor, version=1, at=t0 + timedelta(minutes=1), n=100, latency_ms=100.0)
    traffic(editor, version=2, at=t0 + timedelta(minutes=1), n=30, latency_ms=105.0, shadow=True)
    monitoring_services.rollups_catch_up()

    return {
        f"/models/{churn[0].model.name}/": "model history", f"/monitoring/reports/{report.pk}/": "drift report",
        "/monitoring/operations/prompt/summarize/": "operations", "/monitoring/costs/": "costs",
        f"/experiments/{experiment.key}/": "experiment", f"/rollouts/{rollout.pk}/": "rollout",
    }


def test_pages_with_charts_api_docs_and_admin_run_under_the_policy(live_server, page):
    editor, approver = make_user("alice", "editor", password=PASSWORD), make_user("carol", "approver", password=PASSWORD)
    admin = make_user("root", "admin", password=PASSWORD)
    admin.is_staff = admin.is_superuser = True
    admin.save()
    chart_pages = charts_and_pages(editor, approver)
    refused = []
    page.on("console", lambda msg: msg.type == "error" and refused.append(f"{page.url}: {msg.text}"))
    page.add_init_script(WATCH_VIOLATIONS)
    log_in(page, live_server, "root", PASSWORD)
    drawn, violations = {}, {}

    for path, what in chart_pages.items():
        response = page.goto(live_server.url + path)
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_selector(".js-plotly-plot .main-svg")
        drawn[what] = page.locator(".js-plotly-plot").count()
        violations[what] = page.evaluate("window.cspViolations")
    page.goto(live_server.url + "/api/v1/docs/")
    page.wait_for_selector(".swagger-ui .opblock-tag")
    drawn["api docs"] = page.locator(".swagger-ui .opblock").count()
    violations["api docs"] = page.evaluate("window.cspViolations")
    for path in ("/api/v1/models", "/api/v1/models/churn", "/admin/", "/admin/registry/modelversion/", f"/admin/auth/user/{admin.pk}/change/"):
        page.goto(live_server.url + path)
        page.wait_for_selector("#content")
        violations[path] = page.evaluate("window.cspViolations")
    page.goto(live_server.url + "/admin/auth/user/")
    page.check("#action-toggle")  # the admin's own script (actions.js) ticks every row
    drawn["admin rows ticked"] = page.locator("input.action-select:checked").count()

    assert all(count >= 1 for count in drawn.values()), drawn
    assert drawn["admin rows ticked"] == 3  # alice, carol, root
    assert {where: found for where, found in violations.items() if found} == {}
    assert refused == []
