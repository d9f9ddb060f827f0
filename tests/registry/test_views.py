import json
import re

import pytest
from django.test import Client

from registry import services
from registry.models import AuditEvent, ModelVersion, PromotionRequest
from tests.conftest import PASSWORD, make_user
from tests.factories import promote, register

pytestmark = pytest.mark.django_db

PAGES = ["/", "/models/", "/promotions/", "/audit/", "/promotions/?status=all"]


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize("url", [*PAGES, "/models/fraud/", "/models/fraud/versions/1/", "/models/fraud/compare/", "/api/v1/docs/"])
def test_pages_need_login(url):
    response = Client().get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_healthz_and_login_page_are_open(db):
    assert Client().get("/healthz").json() == {"status": "ok"}
    assert Client().get("/accounts/login/").status_code == 200


@pytest.mark.parametrize("url", PAGES)
def test_pages_work_with_an_empty_database(viewer, url):
    response = logged_in(viewer).get(url)

    assert response.status_code == 200
    assert b"empty" in response.content


def test_login_with_password_reaches_home(editor):
    client = Client()

    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}, follow=True)

    assert response.status_code == 200
    assert response.request["PATH_INFO"] == "/"
    assert b"What needs attention" in response.content


def test_model_list_shows_latest_production_and_pending_and_searches(viewer, editor, approver):
    v1 = register("fraud-detector", editor)
    register("fraud-detector", editor)
    register("churn", editor)
    promote(v1, "production", editor, approver)
    services.promotion_request_create(version=ModelVersion.objects.get(model__name="fraud-detector", version=2), to_stage="production", reason="r", actor=editor)
    client = logged_in(viewer)

    page = client.get("/models/").content.decode()
    searched = client.get("/models/?q=churn").content.decode()

    row = re.search(r"fraud-detector</a>.*?</tr>", page, re.S).group(0)
    assert "v2" in row and "production" in row and "1 pending" in row
    assert "churn" in searched and "fraud-detector" not in searched


def test_model_page_shows_versions_timeline_and_chart(viewer, editor, approver):
    v1 = register("fraud", editor, metrics={"auc": 0.9})
    v2 = register("fraud", editor, metrics={"auc": 0.93})
    promote(v1, "production", editor, approver)
    promote(v2, "production", editor, approver)
    services.model_rollback(model_name="fraud", stage="production", reason="too slow", actor=approver)

    response = logged_in(viewer).get("/models/fraud/")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="production-version">v1<' in html
    assert "rolled back" in html and "too slow" in html
    figure = json.loads(re.search(r'<script id="history-figure" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert figure["data"][0]["name"] == "auc"
    assert "Roll back" not in html  # viewers get no rollback form


def test_version_page_buttons_follow_roles_and_four_eyes(viewer, editor, approver, approver2):
    version = register("fraud", editor)
    promotion = services.promotion_request_create(version=version, to_stage="production", reason="better", actor=approver)
    url = "/models/fraud/versions/1/"

    as_viewer = logged_in(viewer).get(url).content.decode()
    as_requester = logged_in(approver).get(url).content.decode()
    as_other = logged_in(approver2).get(url).content.decode()

    approve_button = f'data-testid="approve-{promotion.pk}"'
    assert approve_button not in as_viewer and "needs the approver role" in as_viewer
    assert approve_button not in as_requester and "another approver must decide" in as_requester
    assert approve_button in as_other
    assert "Request a promotion" not in as_viewer


def test_version_page_disables_approve_for_the_versions_author_and_says_why(editor, approver, approver2):
    register("fraud", approver)
    promotion = services.promotion_request_create(version=ModelVersion.objects.get(), to_stage="staging", reason="r", actor=editor)
    url = "/models/fraud/versions/1/"

    as_author = logged_in(approver).get(url).content.decode()
    as_other = logged_in(approver2).get(url).content.decode()

    approve_button = f'data-testid="approve-{promotion.pk}"'
    assert approve_button not in as_author
    assert 'disabled title="Four eyes: You created this version; someone else must approve its promotion."' in as_author
    assert f'data-testid="reject-{promotion.pk}"' not in as_author
    assert approve_button in as_other


def test_approve_button_promotes_and_writes_audit(editor, approver):
    version = register("fraud", editor)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=editor)

    response = logged_in(approver).post(f"/promotions/{promotion.pk}/approve/", {"comment": "fine"}, follow=True)

    assert response.status_code == 200
    assert "is now in staging" in response.content.decode()
    version.refresh_from_db()
    assert version.stage == "staging"
    assert AuditEvent.objects.filter(action="promotion_approved", actor_name="bob", reason="fine").exists()


def test_buttons_show_errors_instead_of_acting(editor, approver):
    version = register("fraud", editor)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=editor)

    by_editor = logged_in(editor).post(f"/promotions/{promotion.pk}/approve/", follow=True)
    reject_blank = logged_in(approver).post(f"/promotions/{promotion.pk}/reject/", {"comment": ""}, follow=True)

    assert "needs the approver role" in by_editor.content.decode()
    assert "Say why you reject it" in reject_blank.content.decode()
    promotion.refresh_from_db()
    assert promotion.status == "pending"
    assert logged_in(approver).get(f"/promotions/{promotion.pk}/approve/").status_code == 405


def test_request_and_rollback_buttons(editor, approver):
    v1 = register("fraud", editor)
    v2 = register("fraud", editor)
    promote(v1, "production", editor, approver)

    logged_in(editor).post("/models/fraud/versions/2/promote/", {"to": "production", "reason": "better"})
    promotion = PromotionRequest.objects.get(status="pending")
    logged_in(approver).post(f"/promotions/{promotion.pk}/approve/")
    response = logged_in(approver).post("/models/fraud/rollback/", {"stage": "production", "reason": "errors up"}, follow=True)

    assert "Rolled back" in response.content.decode()
    v1.refresh_from_db()
    v2.refresh_from_db()
    assert (v1.stage, v2.stage) == ("production", "archived")


def test_redirect_after_button_stays_on_site(editor, approver):
    version = register("fraud", editor)
    promotion = services.promotion_request_create(version=version, to_stage="staging", reason="r", actor=editor)

    response = logged_in(approver).post(f"/promotions/{promotion.pk}/approve/", {"next": "https://evil.example/"})

    assert response["Location"] == "/models/fraud/versions/1/"


def test_compare_highlights_differences_and_draws_chart(viewer, editor):
    register("fraud", editor, params={"lr": 0.1, "depth": 6}, metrics={"auc": 0.91, "f1": 0.8})
    register("fraud", editor, params={"lr": 0.05, "depth": 6}, metrics={"auc": 0.93, "f1": 0.8})
    register("fraud", editor, params={"lr": 0.05, "depth": 6}, metrics={"auc": 0.95})

    html = logged_in(viewer).get("/models/fraud/compare/?v=1&v=2&v=3").content.decode()

    rows = {key: css for css, key in re.findall(r'<tr class="(differs|)"><th>(\w+)</th>', html)}
    assert rows["lr"] == "differs" and rows["auc"] == "differs" and rows["f1"] == "differs"
    assert rows["depth"] == ""
    figure = json.loads(re.search(r'<script id="compare-figure" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert [trace["name"] for trace in figure["data"]] == ["v1", "v2", "v3"]
    assert figure["data"][0]["x"] == ["auc", "f1"]


def test_compare_unknown_version_is_404(viewer, editor):
    register("fraud", editor)

    assert logged_in(viewer).get("/models/fraud/compare/?v=1&v=9").status_code == 404
    assert logged_in(viewer).get("/models/nope/").status_code == 404


def test_model_page_paginates_thousands_of_versions(viewer, editor):
    from registry.models import RegisteredModel

    model = RegisteredModel.objects.create(name="big")
    ModelVersion.objects.bulk_create(ModelVersion(model=model, version=n, metrics={"auc": n / 2000}) for n in range(1, 2001))
    client = logged_in(viewer)

    last_page = client.get("/models/big/?page=40")

    html = last_page.content.decode()
    assert "page 40 of 40" in html
    assert 'href="/models/big/versions/1/"' in html and 'href="/models/big/versions/51/"' not in html


def test_audit_page_filters(viewer, editor, approver):
    v1 = register("fraud", editor)
    register("churn", editor)
    promote(v1, "staging", editor, approver)
    client = logged_in(viewer)

    by_subject = client.get("/audit/?subject=model:churn").content.decode()
    by_action = client.get("/audit/?action=promotion_approved").content.decode()
    by_actor = client.get("/audit/?actor=bob").content.decode()

    assert by_subject.count('class="audit-row"') == 1
    assert by_action.count('class="audit-row"') == 1 and "bob" in by_action
    assert by_actor.count('class="audit-row"') == 1


@pytest.mark.parametrize(("url", "limit"), [("/", 12), ("/models/", 10), ("/models/m-0/", 14), ("/audit/", 10), ("/promotions/?status=all", 10), ("/models/m-0/compare/?v=1&v=2", 12)])
def test_pages_use_a_constant_number_of_queries(viewer, editor, approver, django_assert_max_num_queries, url, limit):
    for i in range(25):
        first = register(f"m-{i}", editor)
        register(f"m-{i}", editor)
        promote(first, "production", editor, approver)
        services.promotion_request_create(version=ModelVersion.objects.get(model__name=f"m-{i}", version=2), to_stage="production", reason="r", actor=editor)
    client = logged_in(viewer)

    with django_assert_max_num_queries(limit):
        assert client.get(url).status_code == 200


def test_version_page_shows_metrics_beside_production(viewer, editor, approver):
    v1 = register("fraud", editor, metrics={"auc": 0.90, "f1": 0.80})
    register("fraud", editor, metrics={"auc": 0.93, "latency_ms": 12})
    promote(v1, "production", editor, approver)

    html = logged_in(viewer).get("/models/fraud/versions/2/").content.decode()

    table = re.search(r'<table class="kvtable" id="metrics-table">(.*?)</table>', html, re.S).group(1)
    auc_row = re.search(r"<th>auc</th>(.*?)</tr>", table, re.S).group(1)
    assert "0.93" in auc_row and "0.9" in auc_row and "+0.03" in auc_row and 'class="num up"' in auc_row
    f1_row = re.search(r"<th>f1</th>(.*?)</tr>", table, re.S).group(1)
    assert "—" in f1_row


def test_a_metric_param_or_tag_named_items_does_not_break_pages(viewer, editor):
    register("fraud", editor, metrics={"items": 0.5}, params={"items": 3}, tags={"items": "x"})
    client = logged_in(viewer)

    for url in ["/models/fraud/", "/models/fraud/versions/1/", "/models/fraud/compare/?v=1"]:
        response = client.get(url)
        assert response.status_code == 200, url
        assert "items" in response.content.decode()


def test_logged_in_user_without_a_role_sees_no_pages(db):
    no_role = make_user("nobody", None)
    client = logged_in(no_role)

    assert client.get("/").status_code == 403
    assert client.get("/audit/").status_code == 403
    assert "has no role" in client.get("/models/").content.decode()


def test_odd_page_inputs_are_not_server_errors(viewer, editor):
    register("fraud", editor)
    client = logged_in(viewer)

    assert client.get("/models/fraud/compare/?v=99999999999999999999999").status_code == 404
    assert client.get("/models/fraud/compare/?v=abc").status_code == 200
    assert client.get("/audit/?until=9999-12-31&since=0000-01-01").status_code == 200
    assert client.get("/models/?page=-3").status_code == 200


def test_chart_labels_are_escaped(viewer, editor):
    register("fraud", editor, metrics={'<a href="https://evil.example">x</a>': 1.0})

    html = logged_in(viewer).get("/models/fraud/compare/?v=1").content.decode()

    figure = json.loads(re.search(r'<script id="compare-figure" type="application/json">(.*?)</script>', html, re.S).group(1))
    assert figure["data"][0]["x"] == ['&lt;a href="https://evil.example"&gt;x&lt;/a&gt;']


def test_url_filters_agree_with_the_url_configuration():
    from django.urls import reverse

    from registry.templatetags.registry_extras import model_url, version_url

    assert model_url("fraud-detector.v2_x") == reverse("registry:model-detail", args=["fraud-detector.v2_x"])
    assert version_url("fraud", 12) == reverse("registry:version-detail", args=["fraud", 12])


def test_metric_numbers_are_written_with_four_significant_digits():
    from registry.templatetags.registry_extras import metric_pairs

    values = {"a": 0.91234567, "b": 1.5, "c": 3, "d": 2.0, "e": -0.00001234, "f": 123456.78919, "g": "n/a", "h": 0.99995, "i": None}

    assert metric_pairs(values) == [
        ("a", "0.9123"), ("b", "1.5"), ("c", "3"), ("d", "2"), ("e", "-1.234e-05"), ("f", "123456.7892"), ("g", "n/a"), ("h", "1"), ("i", "—"),
    ]


# --- canary promotions -------------------------------------------------------------------------------------------------


def messages_of(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


@pytest.fixture
def fraud_v2(editor, approver):
    """fraud v1 in production, v2 registered."""
    promote(register("fraud", editor), "production", editor, approver)
    return register("fraud", editor)


def test_version_page_offers_a_canary_while_production_is_a_target(editor, fraud_v2):
    client = logged_in(editor)

    candidate = client.get("/models/fraud/versions/2/").content.decode()
    in_production = client.get("/models/fraud/versions/1/").content.decode()

    form = re.search(r'<form [^>]*id="promote-form".*?</form>', candidate, re.S).group(0)
    assert '<input type="checkbox" name="strategy" value="canary" id="canary-strategy"> Roll out as a canary' in form
    assert 'data-canary-stage="production"' in form and '<input name="policy" list="rollout-policy-names" placeholder="default"' in form
    assert "js/canary.js" in candidate
    assert 'name="strategy"' not in in_production


def test_request_as_a_canary_passes_the_strategy_and_the_policy(editor, fraud_v2):
    response = logged_in(editor).post("/models/fraud/versions/2/promote/",
                                      {"to": "production", "reason": "faster", "strategy": "canary", "policy": "quick"}, follow=True)

    promotion = PromotionRequest.objects.get(status="pending")
    assert (promotion.strategy, promotion.policy, promotion.to_stage, promotion.version) == ("canary", "quick", "production", fraud_v2)
    assert messages_of(response) == ("Requested fraud v2 → production as a canary (rollout policy quick). Once someone with the approver role "
                                     "approves it, it rolls out in stages while the current version keeps serving the rest.")
    assert '<span class="tag" title="Approval starts a staged rollout under this rollout policy">canary · quick</span>' in response.content.decode()


def test_a_direct_request_ignores_the_policy_box(editor, fraud_v2):
    logged_in(editor).post("/models/fraud/versions/2/promote/", {"to": "staging", "reason": "r", "policy": "quick"})

    promotion = PromotionRequest.objects.get(status="pending")
    assert (promotion.strategy, promotion.policy, promotion.to_stage) == ("direct", "", "staging")


def test_a_canary_to_staging_is_refused_with_the_services_message(editor, fraud_v2):
    response = logged_in(editor).post("/models/fraud/versions/2/promote/", {"to": "staging", "reason": "r", "strategy": "canary"}, follow=True)

    assert messages_of(response) == "A canary of a model rolls out into production, not staging."
    assert not PromotionRequest.objects.filter(status="pending").exists()


def test_approving_a_canary_says_it_rolls_out_and_the_version_page_links_the_rollout(viewer, editor, approver, fraud_v2):
    promotion = services.promotion_request_create(version=fraud_v2, to_stage="production", reason="faster", actor=editor, strategy="canary")

    approved = logged_in(approver).post(f"/promotions/{promotion.pk}/approve/", follow=True)
    page = logged_in(viewer).get("/models/fraud/versions/2/").content.decode()

    assert messages_of(approved) == ("Approved: fraud v2 rolls out into production as a canary, stage by stage; the version there keeps serving "
                                     "the rest until the rollout completes.")
    assert PromotionRequest.objects.get(pk=promotion.pk).status == "rolling_out"
    assert ModelVersion.objects.get(model__name="fraud", version=1).stage == "production"
    banner = re.search(r'<p class="msg banner rolling-out" id="rolling-out".*?</p>', page, re.S).group(0)
    assert f'data-promotion="{promotion.pk}" data-kind="model" data-name="fraud"' in banner
    assert f'<strong>Rolling out as a canary</strong> into production<span data-rollout-stage></span> — <a href="/rollouts/?promotion={promotion.pk}"' in banner
    assert "v1 stays in production until it completes" in banner
    assert 'id="rolling-out"' not in logged_in(viewer).get("/models/fraud/versions/1/").content.decode()


def test_a_rolled_back_canary_shows_no_banner(viewer, editor, approver, fraud_v2):
    promotion = services.promotion_request_create(version=fraud_v2, to_stage="production", reason="faster", actor=editor, strategy="canary")
    services.promotion_approve(promotion_id=promotion.pk, actor=approver)
    services.promotion_rollout_abort(promotion_id=promotion.pk, reason="errors")

    page = logged_in(viewer).get("/models/fraud/versions/2/").content.decode()

    assert 'id="rolling-out"' not in page and 'class="status status-rolled_back">rolled_back<' in page
