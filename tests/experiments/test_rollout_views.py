"""The rollout pages: the list (stage, share, health against the thresholds, filters, pages), one rollout (header, stages,
decisions with their numbers, charts) and its buttons (Advance, Pause, Resume, Roll back now: approvers, a reason, the
service's refusals as messages).

Data comes through the services: a canary promotion approved and started, events through monitoring's ingestion,
the roll-ups caught up, and the controller's ticks. The figures a page shows are checked against values worked out
by hand from the events sent."""

import html as html_lib
import re
from datetime import timedelta

import pytest
from django.test import Client

from experiments import services
from experiments.models import Rollout, RolloutDecision
from monitoring.services import rollups_catch_up
from registry.models import AuditEvent, ModelVersion, PromotionRequest
from tests.experiments.conftest import canary_of, traffic
from tests.factories import promote, register

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text(response) -> str:
    """The page as a reader sees it: tags dropped, whitespace collapsed."""
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def minutes(t0, n: float):
    return t0 + timedelta(minutes=n)


def tick(rollout, at):
    rollups_catch_up()
    action = services.rollout_tick(rollout_id=rollout.pk, now=at)
    rollout.refresh_from_db()
    return action


def row_of(html: str, rollout) -> str:
    return re.search(rf'<tr data-rollout="{rollout.pk}".*?</tr>', html, re.S).group(0)


def decision_row(html: str, seq: int) -> str:
    """A decision's row on the rollout page, its nested tables of numbers included."""
    return re.search(rf'<tr data-seq="{seq}".*?(?=<tr data-seq=|</tbody>\s*</table>\s*<p class="hint">The controller)', html, re.S).group(0)


@pytest.fixture
def at_five(fraud, editor, approver, quick, t0):
    """fraud v2 against v1 under the quick policy: its shadow stage passed (40 mirrored requests, no errors) and advanced
    to 5 % at t0 + 6 min; then, in the 5 % window, v1 serves 200 requests with 2 errors at 100 ms and v2 40 requests with
    1 error at 120 ms (one a second from t0 + 6.5 min), checked at t0 + 10 min (the gate fails; it holds)."""
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=200)
    traffic(editor, version=2, at=minutes(t0, 1), n=40, shadow=True)
    assert tick(rollout, minutes(t0, 6)) == "advance"
    traffic(editor, version=1, at=minutes(t0, 6.5), n=200, errors=2, latency_ms=100.0)
    traffic(editor, version=2, at=minutes(t0, 6.5), n=40, errors=1, latency_ms=120.0)
    assert tick(rollout, minutes(t0, 10)) == "hold"
    return rollout


# --- reachability, empty states -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/rollouts/", "/rollouts/1/"])
def test_rollout_pages_need_login(db, url):
    response = Client().get(url)

    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_rollout_list_with_an_empty_database_says_how_a_canary_starts(viewer):
    response = logged_in(viewer).get("/rollouts/")

    assert response.status_code == 200
    assert 'id="rollouts-empty"' in response.content.decode()
    assert "No rollouts yet. A canary starts when someone requests a promotion to production (a prompt's prod) with “Roll out as a canary”" in text(response)


def test_rollout_list_nav_link_is_active_on_the_rollout_pages_only(viewer):
    client = logged_in(viewer)

    rollouts = client.get("/rollouts/").content.decode()
    experiments = client.get("/experiments/").content.decode()

    assert re.search(r'<a href="/rollouts/" class="active">Rollouts</a>', rollouts)
    assert re.search(r'<a href="/experiments/" class="">Experiments</a>', rollouts)
    assert re.search(r'<a href="/rollouts/" class="">Rollouts</a>', experiments)
    assert re.search(r'<a href="/experiments/" class="active">Experiments</a>', experiments)


@pytest.mark.parametrize("url", ["/rollouts/999/", "/rollouts/99999999999999999999999/"])
def test_an_unknown_rollout_is_a_404(viewer, url):
    assert logged_in(viewer).get(url).status_code == 404


@pytest.mark.parametrize("action", ["advance", "pause", "resume", "rollback"])
def test_buttons_of_an_unknown_rollout_are_404s(approver, action):
    assert logged_in(approver).post(f"/rollouts/999/{action}/", {"reason": "r"}).status_code == 404


@pytest.mark.parametrize("action", ["advance", "pause", "resume", "rollback"])
def test_rollout_buttons_only_answer_posts(approver, at_five, action):
    assert logged_in(approver).get(f"/rollouts/{at_five.pk}/{action}/").status_code == 405


# --- the list ---------------------------------------------------------------------------------------------------------------


def test_rollout_list_shows_subject_versions_stage_share_and_each_check_against_its_threshold(viewer, at_five):
    response = logged_in(viewer).get("/rollouts/")

    row = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", row_of(response.content.decode(), at_five))).split())
    html = row_of(response.content.decode(), at_five)
    assert 'data-status="running"' in html and 'href="/models/fraud/"' in html
    assert 'href="/models/fraud/versions/2/">v2</a> vs <a href="/models/fraud/versions/1/">v1</a>' in html
    assert "5% (2 of 4)" in row and re.search(r'data-col="share">5 %<', html)
    # the 5 % gate: v2 1/40 = 2.5 % against v1 2/200 = 1 % + 0.5 points = 1.5 %: fails (the rollout holds: warning)
    assert "gate: error rate: 2.5 % ≥ 1.5 % (baseline 1 % + 0.5 points)" in row
    assert 'data-health="failing"' in html and "gate failing" in row
    # the triggers: 2.5 % under the 5 % rollback line; P95 120 ms under 2 x 100 ms
    assert "error rate (roll back): 2.5 % ≤ 5 %" in row
    p95 = re.search(r"P95 latency \(roll back\): ([\d.]+) ms ≤ ([\d.]+) ms \(2 × baseline ([\d.]+) ms\)", row)
    value, limit, baseline = (float(p95.group(i)) for i in (1, 2, 3))
    assert value == pytest.approx(120, rel=0.01) and baseline == pytest.approx(100, rel=0.01)  # the sketches: within 1 %
    assert limit == pytest.approx(2 * baseline, rel=1e-3)
    # no feedback, no cost, no guardrail reported: not enough data, with the count behind it
    assert "guardrail rate (roll back): not enough data (0 of 10 requests)" in row
    assert "cost per request (pause): not enough data (0 of 10 requests)" in row
    assert row.count("not enough data") == 3


def test_rollout_list_health_reads_failing_when_a_rollback_trigger_fired(viewer, fraud, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)
    traffic(editor, version=1, at=minutes(t0, 1), n=100)
    traffic(editor, version=2, at=minutes(t0, 1), n=40, errors=3, shadow=True)

    assert tick(rollout, minutes(t0, 5)) == "rollback"
    html = row_of(logged_in(viewer).get("/rollouts/").content.decode(), rollout)

    assert 'data-status="rolled_back"' in html and ">rolled back</span>" in html
    assert 'data-health="triggered"' in html
    # 3/40 = 7.5 % > 5 %: the rollback trigger is the failing check
    assert re.search(r'<li data-state="failing">.*?error rate \(roll back\): 7\.5 % &gt; 5 %</li>', html)
    assert re.search(r'data-col="share">0 %<', html)


def test_rollout_list_filters_by_status_and_by_promotion(viewer, fraud, editor, approver, quick, at_five):
    other = register("churn", editor)
    promote(other, "production", editor, approver)
    paused = canary_of(register("churn", editor), editor, approver, policy="quick")
    services.rollout_pause(rollout_id=paused.pk, reason="hold on", actor=approver)
    client = logged_in(viewer)

    running = client.get("/rollouts/?status=running").content.decode()
    paused_only = client.get("/rollouts/?status=paused").content.decode()
    by_promotion = client.get(f"/rollouts/?promotion={paused.promotion_id}").content.decode()
    done = client.get("/rollouts/?status=completed")
    not_started = client.get("/rollouts/?promotion=424242")
    bogus = client.get("/rollouts/?status=bogus&promotion=x").content.decode()

    assert f'data-rollout="{at_five.pk}"' in running and f'data-rollout="{paused.pk}"' not in running
    assert f'data-rollout="{paused.pk}"' in paused_only and f'data-rollout="{at_five.pk}"' not in paused_only
    assert "hold on" in row_of(paused_only, paused)
    assert f'data-rollout="{paused.pk}"' in by_promotion and f'data-rollout="{at_five.pk}"' not in by_promotion
    assert "No rollout is completed." in text(done)
    assert "No rollout of promotion request #424242 (yet)" in text(not_started)
    assert f'data-rollout="{paused.pk}"' in bogus and f'data-rollout="{at_five.pk}"' in bogus


def test_rollout_list_paginates(viewer, editor, approver, settings):
    settings.MLOPS_PAGE_SIZE = 2
    for name in ("a", "b", "c"):
        promote(register(name, editor), "production", editor, approver)
        canary_of(register(name, editor), editor, approver)
    client = logged_in(viewer)

    first = client.get("/rollouts/").content.decode()
    second = client.get("/rollouts/?page=2").content.decode()

    assert first.count("<tr data-rollout=") == 2 and second.count("<tr data-rollout=") == 1
    assert "page 1 of 2 · 3 in all" in first


def test_rollout_list_uses_a_constant_number_of_queries(viewer, editor, approver, django_assert_max_num_queries):
    client = logged_in(viewer)
    client.get("/rollouts/")  # the session and the user, once
    for name in ("a", "b", "c", "d", "e"):
        promote(register(name, editor), "production", editor, approver)
        canary_of(register(name, editor), editor, approver)

    # the session, the user, the role's groups, the page's count and its rows
    with django_assert_max_num_queries(5):
        response = client.get("/rollouts/")

    assert response.content.decode().count("<tr data-rollout=") == 5


# --- one rollout -----------------------------------------------------------------------------------------------------------


def test_rollout_page_shows_the_header_and_the_promotion_link(viewer, at_five):
    response = logged_in(viewer).get(f"/rollouts/{at_five.pk}/")

    page, html = text(response), response.content.decode()
    assert response.status_code == 200
    assert f"Rollout #{at_five.pk}: fraud v2 running" in page
    assert "Candidate v2 Baseline v1 (in production when it started) Policy quick v1 Status running" in page
    assert re.search(r'id="rollout-stage">5%</strong> <span class="small muted">2 of 4', html)
    assert 'id="rollout-share">5 %<' in html and 'data-health="failing"' in html
    assert f'href="/models/fraud/versions/2/#promotion-{at_five.promotion_id}" id="promotion-link">request #{at_five.promotion_id}<' in html


def test_rollout_page_lays_out_the_stages_done_current_and_next(viewer, at_five):
    html = logged_in(viewer).get(f"/rollouts/{at_five.pk}/").content.decode()

    states = re.findall(r'<li class="stage-\w+" data-stage="(\d)" data-state="(\w+)">', html)
    assert states == [("0", "done"), ("1", "current"), ("2", "next"), ("3", "planned")]
    stages = " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", re.search(r'<ol class="stages".*?</ol>', html, re.S).group(0))).split())
    assert "shadow 0 % done 5 min to 30 min · gate: no errors (the candidate's errors = 0)" in stages
    assert "5% 5 % current 10 min to 1 h · gate: error rate < baseline + 0.5 points" in stages
    assert "25% 25 % next 10 min to 1 h · gate: P95 latency < 1.1 × baseline" in stages
    assert "100% 100 % planned 5 min to no maximum · gate: no gate" in stages


def test_rollout_page_lists_each_decision_with_its_actor_reason_and_numbers(viewer, approver, at_five, t0):
    services.rollout_pause(rollout_id=at_five.pk, reason="a look at the errors first", actor=approver, now=minutes(t0, 11))

    html = logged_in(viewer).get(f"/rollouts/{at_five.pk}/").content.decode()

    rows = re.findall(r'<tr data-seq="(\d+)" data-action="(\w+)".*?<td>(\w+)</td>', html, re.S)
    assert rows == [("4", "pause", "bob"), ("3", "hold", "system"), ("2", "advance", "system"), ("1", "start", "system")]
    pause = decision_row(html, 4)
    assert "a look at the errors first" in pause
    # the numbers it read: the 5 % window's figures of both sides
    assert re.search(r'<tr data-metric="requests"><th>requests</th><td class="num">40</td><td class="num">200</td>', pause)
    assert re.search(r'<tr data-metric="error rate"><th>error rate</th><td class="num">2.5 %</td><td class="num">1 %</td>', pause)
    advance = decision_row(html, 2)
    assert "shadow -&gt; 5% (5 %)" in advance and "gate: no errors: 0 errors in 40 requests (must be 0)" in advance
    start = decision_row(html, 1)
    assert "the numbers it read" not in start


def test_rollout_page_draws_a_chart_per_metric_either_side_reported(viewer, editor, at_five, t0):
    html = logged_in(viewer).get(f"/rollouts/{at_five.pk}/").content.decode()

    assert 'id="chart-error-rate" data-figure="figure-error-rate"' in html and '<script id="figure-error-rate" type="application/json">' in html
    assert 'id="chart-latency-p95" data-figure="figure-latency-p95"' in html
    assert "vendor/plotly.min.js" in html and "js/charts.js" in html
    assert "roll back above 5 %" in html  # the error rate's absolute trigger, a labelled line
    assert "5% gate: below baseline + 0.5 points" in html
    assert "No chart of the guardrail rate, negative feedback rate, cost per request: neither version reported it" in text(
        logged_in(viewer).get(f"/rollouts/{at_five.pk}/"))

    traffic(editor, version=2, at=minutes(t0, 12), n=10, cost_usd=0.002, feedback=-1, guardrail_triggered=True)
    rollups_catch_up()
    html = logged_in(viewer).get(f"/rollouts/{at_five.pk}/").content.decode()

    for metric in ("error-rate", "latency-p95", "guardrail-rate", "negative-feedback-rate", "cost-per-request"):
        assert f'id="chart-{metric}" data-figure="figure-{metric}"' in html
    assert 'id="unreported"' not in html


def test_rollout_page_without_traffic_says_the_charts_come_with_the_first_events(viewer, fraud, editor, approver, quick, t0):
    rollout = canary_of(fraud[1], editor, approver, policy="quick", at=t0)

    response = logged_in(viewer).get(f"/rollouts/{rollout.pk}/")

    assert response.status_code == 200
    assert 'id="no-charts"' in response.content.decode() and "plotly" not in response.content.decode()
    assert "Not checked yet" in text(response)
    assert re.findall(r'data-state="(\w+)">', re.search(r'<ol class="stages".*?</ol>', response.content.decode(), re.S).group(0)) == [
        "current", "next", "planned", "planned"]


def test_rollout_page_of_a_prompt_links_its_prompt_versions(viewer, editor, approver, prompt_versions):
    prod_request = PromotionRequest.objects.get(prompt__name="summarize", to_stage="prod", status="pending")
    from registry import services as registry_services

    registry_services.promotion_approve(promotion_id=prod_request.pk, actor=approver)
    rollout = canary_of(prompt_versions[3], editor, approver)

    html = logged_in(viewer).get(f"/rollouts/{rollout.pk}/").content.decode()

    assert 'href="/prompts/summarize/versions/3/">v3</a>' in html and 'href="/prompts/summarize/versions/2/">v2</a>' in html
    assert "prompt <a href=\"/prompts/summarize/\">summarize</a> → prod" in html
    assert "Policy default v1" in text(logged_in(viewer).get(f"/rollouts/{rollout.pk}/"))


def test_rollout_page_uses_a_constant_number_of_queries(viewer, approver, at_five, t0, django_assert_max_num_queries):
    client = logged_in(viewer)
    client.get(f"/rollouts/{at_five.pk}/")
    with django_assert_max_num_queries(7) as few:
        client.get(f"/rollouts/{at_five.pk}/")
    for m in (20, 40, 60, 80):
        services.rollout_pause(rollout_id=at_five.pk, reason=f"pause {m}", actor=approver, now=minutes(t0, m))
        services.rollout_resume(rollout_id=at_five.pk, reason=f"resume {m}", actor=approver, now=minutes(t0, m + 1))

    # the session, the user, the role's groups, the rollout, its decisions, both sides' roll-ups
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(f"/rollouts/{at_five.pk}/")

    assert response.content.decode().count("<tr data-seq=") == 11


# --- buttons ---------------------------------------------------------------------------------------------------------------


def test_approvers_see_the_buttons_of_the_rollouts_status(approver, at_five):
    html = logged_in(approver).get(f"/rollouts/{at_five.pk}/").content.decode()

    buttons = re.findall(r'formaction="/rollouts/\d+/(\w+)/" data-testid="\w+"( disabled)?', html)
    assert buttons == [("advance", ""), ("pause", ""), ("rollback", "")]
    assert re.search(r'<textarea name="reason"[^>]*required', html)


def test_others_see_the_buttons_disabled_with_the_reason(viewer, editor, at_five):
    for user in (viewer, editor):
        response = logged_in(user).get(f"/rollouts/{at_five.pk}/")

        html = response.content.decode()
        buttons = re.findall(r'formaction="/rollouts/\d+/(\w+)/" data-testid="\w+"( disabled title="Needs the approver role")?', html)
        assert buttons == [("advance", " disabled title=\"Needs the approver role\""), ("pause", " disabled title=\"Needs the approver role\""),
                           ("rollback", " disabled title=\"Needs the approver role\"")]
        assert "Advancing, pausing, resuming and rolling back need the approver role." in text(response)


def test_a_finished_rollout_offers_no_button(approver, at_five):
    services.rollout_rollback(rollout_id=at_five.pk, reason="enough", actor=approver)

    response = logged_in(approver).get(f"/rollouts/{at_five.pk}/")

    assert "formaction=" not in response.content.decode()
    assert "This rollout is rolled back: nothing is left to decide." in text(response)


def test_pause_then_resume_buttons_act_and_are_audited_with_the_reason(approver, at_five):
    client = logged_in(approver)

    paused = client.post(f"/rollouts/{at_five.pk}/pause/", {"reason": "errors look high"}, follow=True)

    assert paused.redirect_chain[-1][0] == f"/rollouts/{at_five.pk}/"
    assert "Paused at 5% (5 %): the candidate keeps its share; its rollback triggers still act." in messages_of(paused)
    assert Rollout.objects.get(pk=at_five.pk).status == "paused"
    assert re.findall(r'formaction="/rollouts/\d+/(\w+)/"', paused.content.decode()) == ["resume", "advance", "rollback"]
    assert "Paused. errors look high" in text(paused)
    event = AuditEvent.objects.get(action="rollout_paused")
    assert (event.actor_name, event.reason, event.subject) == ("bob", "errors look high", "model:fraud")

    resumed = client.post(f"/rollouts/{at_five.pk}/resume/", {"reason": "a deploy fixed it"}, follow=True)

    assert "Resumed: stage 5% (5 %) starts over." in messages_of(resumed)
    assert Rollout.objects.get(pk=at_five.pk).status == "running"
    assert AuditEvent.objects.get(action="rollout_resumed").reason == "a deploy fixed it"


def test_advance_button_moves_to_the_next_stage(approver, at_five):
    response = logged_in(approver).post(f"/rollouts/{at_five.pk}/advance/", {"reason": "looks fine to me"}, follow=True)

    assert "Advanced to 25% (25 %)." in messages_of(response)
    rollout = Rollout.objects.get(pk=at_five.pk)
    assert (rollout.stage_index, float(rollout.traffic_percent)) == (2, 25.0)
    decision = RolloutDecision.objects.filter(rollout=rollout).latest("seq")
    assert (decision.action, decision.actor.username, decision.reason) == ("advance", "bob", "looks fine to me")


def test_advance_from_the_last_stage_completes_and_moves_production(approver, at_five):
    client = logged_in(approver)
    for _ in range(2):
        client.post(f"/rollouts/{at_five.pk}/advance/", {"reason": "next"})

    response = client.post(f"/rollouts/{at_five.pk}/advance/", {"reason": "done"}, follow=True)

    assert "Advanced past the last stage: the rollout is complete and v2 takes over." in messages_of(response)
    assert ModelVersion.objects.get(model__name="fraud", version=2).stage == "production"


def test_roll_back_now_button_sends_traffic_back_and_closes_the_promotion(approver, at_five):
    response = logged_in(approver).post(f"/rollouts/{at_five.pk}/rollback/", {"reason": "customers complain"}, follow=True)

    assert "Rolled back: all traffic is back on v1; the promotion request is closed as rolled back." in messages_of(response)
    assert Rollout.objects.get(pk=at_five.pk).status == "rolled_back"
    assert PromotionRequest.objects.get(pk=at_five.promotion_id).status == "rolled_back"
    assert ModelVersion.objects.get(model__name="fraud", version=1).stage == "production"
    assert AuditEvent.objects.get(action="rollout_rolled_back").reason == "customers complain"


@pytest.mark.parametrize("action", ["advance", "pause", "resume", "rollback"])
def test_a_button_without_a_reason_is_refused_with_the_services_message(approver, at_five, action):
    response = logged_in(approver).post(f"/rollouts/{at_five.pk}/{action}/", {"reason": "  "}, follow=True)

    assert response.redirect_chain[-1][0] == f"/rollouts/{at_five.pk}/"
    assert messages_of(response) == "reason: required: say why."
    assert RolloutDecision.objects.filter(rollout=at_five).count() == 3


@pytest.mark.parametrize("user, doing", [("viewer", "Pausing a rollout"), ("editor", "Pausing a rollout")])
def test_pause_by_a_non_approver_is_refused_with_the_services_message(request, at_five, user, doing):
    response = logged_in(request.getfixturevalue(user)).post(f"/rollouts/{at_five.pk}/pause/", {"reason": "r"}, follow=True)

    assert messages_of(response) == f"{doing} needs the approver role."
    assert Rollout.objects.get(pk=at_five.pk).status == "running"


def test_resume_of_a_running_rollout_is_refused_with_the_services_message(approver, at_five):
    response = logged_in(approver).post(f"/rollouts/{at_five.pk}/resume/", {"reason": "r"}, follow=True)

    assert messages_of(response) == f"Rollout {at_five.pk} is running: resuming a rollout needs it paused."
    assert 'class="msg msg-error"' in response.content.decode()


def test_a_button_on_a_finished_rollout_is_refused_with_the_services_message(approver, at_five):
    logged_in(approver).post(f"/rollouts/{at_five.pk}/rollback/", {"reason": "stop"})

    response = logged_in(approver).post(f"/rollouts/{at_five.pk}/advance/", {"reason": "go on"}, follow=True)

    assert messages_of(response) == f"Rollout {at_five.pk} is rolled_back: advancing a rollout needs it running or paused."
