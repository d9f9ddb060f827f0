"""The run pages in a real Chromium under the site's Content Security Policy: tick two runs, press Compare, see the
params table and the metric charts drawn, then one run's page with its chart, with no policy violation."""

import pytest

from registry.models import RunGroup, RunStatus
from tests.conftest import make_user
from tests.test_browser import WAIT, log_in
from tests.test_browser_csp import WATCH_VIOLATIONS
from tests.test_run_pages import T0, make_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_viewer_ticks_two_runs_compares_them_and_opens_one_seeing_drawn_charts(live_server, page):
    make_user("vera", "viewer")
    group = RunGroup.objects.create(name="churn-training")
    a = make_run(group, "lr-0.1", params={"lr": "0.1", "depth": "4"}, metrics=[("loss", s, 1 / (s + 1)) for s in range(10)], start=T0)
    b = make_run(group, "lr-0.01", params={"lr": "0.01", "depth": "4"}, metrics=[("loss", s, 2 / (s + 2)) for s in range(10)], start=T0 + 1)
    make_run(group, "not-picked", status=RunStatus.FAILED, start=T0 + 2)
    refused = []
    page.on("console", lambda msg: msg.type == "error" and refused.append(f"{page.url}: {msg.text}"))
    page.add_init_script(WATCH_VIOLATIONS)

    log_in(page, live_server, "vera")
    page.click("nav >> text=Runs")
    page.click("#run-group-table >> text=churn-training")
    page.check(f"input[name=run][value='{a.run_id}']")
    page.check(f"input[name=run][value='{b.run_id}']")
    page.click("text=Compare selected")

    page.wait_for_selector("[data-metric=loss] .main-svg", **WAIT)
    # In the order of the group's table: newest first.
    assert page.locator("#run-params-table tr.differs").all_inner_texts() == ["lr\t0.01\t0.1"]
    assert page.locator("[data-metric=loss] .scatterlayer .trace").count() == 2
    assert page.locator("[data-metric=loss] .legendtext").all_text_contents() == ["lr-0.01", "lr-0.1"]
    assert page.evaluate("window.cspViolations") == []
    page.click("#run-params-table >> text=lr-0.1")
    page.wait_for_selector("[data-metric=loss] .main-svg", **WAIT)
    assert page.locator("[data-metric=loss] .scatterlayer .trace").count() == 1
    assert page.evaluate("window.cspViolations") == []
    assert refused == []
