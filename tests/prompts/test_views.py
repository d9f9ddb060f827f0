import re

import pytest
from django.test import Client

from registry import services
from registry.models import PromotionRequest, PromptVersion
from tests.prompts.conftest import SUMMARIZE, brief_folder

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def imported(editor):
    services.prompts_import(files=brief_folder(), actor=editor)


@pytest.mark.parametrize("url", ["/prompts/", "/prompts/summarize/", "/prompts/summarize/versions/1/", "/prompts/summarize/eval-sets/1/"])
def test_prompt_pages_need_login(url):
    assert Client().get(url).status_code == 302


def test_prompt_list_is_helpful_when_empty(viewer):
    html = logged_in(viewer).get("/prompts/").content.decode()

    assert "No prompts yet" in html


def test_prompt_list_shows_what_runs_where(viewer, imported):
    html = logged_in(viewer).get("/prompts/").content.decode()

    row = re.search(r'href="/prompts/summarize/">summarize</a>.*?</tr>', html, re.S).group(0)
    assert "v3" in row and "3 pending" not in row and "2 pending" in row


def test_prompt_page_has_environment_timeline(viewer, imported, approver):
    for promotion in PromotionRequest.objects.filter(prompt__name="summarize", status="pending"):
        services.promotion_approve(promotion_id=promotion.pk, actor=approver)

    html = logged_in(viewer).get("/prompts/summarize/").content.decode()

    timeline = re.search(r'<ol class="timeline" id="env-timeline">(.*?)</ol>', html, re.S).group(1)
    assert "prod</strong>: nothing → " in " ".join(timeline.split()) and "by bob (requested by alice)" in timeline
    assert re.search(r'id="env-prod"><span>prod</span><strong><a [^>]*>v2</a>', html)


def test_version_page_shows_yaml_diff_and_unknown_criteria(viewer, imported):
    client = logged_in(viewer)

    v3 = client.get("/prompts/summarize/versions/3/").content.decode()
    classify = client.get("/prompts/classify/versions/1/").content.decode()

    assert "temperature: 0.2" in v3  # the YAML as imported
    settings_diff = re.search(r'data-section="settings">(.*?)</table>', v3, re.S).group(1)
    assert re.search(r'<tr class="d-replace">.*?temperature: 0.3.*?temperature: 0.2', settings_diff, re.S)
    assert 'data-section="template"' not in v3  # unchanged between v2 and v3
    assert "custom_label_check" in classify and "custom" in classify


def test_version_page_diff_against_any_version(viewer, imported):
    html = logged_in(viewer).get("/prompts/summarize/versions/3/?against=1").content.decode()

    system_diff = re.search(r'data-section="system">(.*?)</table>', html, re.S).group(1)
    assert "exactly 5 bullet points" in system_diff and "exactly 3 bullet points" in system_diff
    assert logged_in(viewer).get("/prompts/summarize/versions/3/?against=99").status_code == 404


def test_eval_set_viewer_paginates(viewer, editor):
    files = brief_folder() | {"summarize/eval_set.jsonl": "".join(f'{{"i": {i}}}\n' for i in range(1, 121))}
    services.prompts_import(files=files, actor=editor)

    html = logged_in(viewer).get("/prompts/summarize/eval-sets/1/?page=3").content.decode()

    assert "page 3 of 3" in html and "&quot;i&quot;: 101" in html and "&quot;i&quot;: 100" not in html


def test_import_upload_and_rollback_buttons(editor, approver):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in brief_folder().items():
            archive.writestr(name, text)
    buffer.name = "prompts.zip"
    buffer.seek(0)

    response = logged_in(editor).post("/prompts/import/", {"archive": buffer}, follow=True)

    assert "5 created" in response.content.decode()
    for promotion in PromotionRequest.objects.filter(prompt__name="summarize", status="pending"):
        services.promotion_approve(promotion_id=promotion.pk, actor=approver)
    request = services.promotion_request_create(
        version=PromptVersion.objects.get(prompt__name="summarize", version=3), to_stage="prod", reason="r", actor=editor
    )
    services.promotion_approve(promotion_id=request.pk, actor=approver)
    back = logged_in(approver).post("/prompts/summarize/rollback/", {"environment": "prod", "reason": "quality"}, follow=True)
    assert "Rolled back summarize prod" in back.content.decode()


def test_a_viewers_upload_is_refused_before_the_archive_is_opened(viewer, monkeypatch):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in brief_folder().items():
            archive.writestr(name, text)
    buffer.name = "prompts.zip"
    buffer.seek(0)
    opened = []
    monkeypatch.setattr(services, "archive_files", lambda data, **kwargs: opened.append(len(data)) or {})

    html = logged_in(viewer).post("/prompts/import/", {"archive": buffer}, follow=True).content.decode()

    assert "Importing prompts needs the editor role." in html
    assert opened == []
    assert not PromptVersion.objects.exists()


def test_bad_upload_lists_file_and_line(editor):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("summarize/v1.yaml", SUMMARIZE.format(n=2, bullets=3))
    buffer.name = "prompts.zip"
    buffer.seek(0)

    html = logged_in(editor).post("/prompts/import/", {"archive": buffer}, follow=True).content.decode()

    assert "summarize/v1.yaml:2 version 2 does not match the file name v1" in html
    assert "Nothing was imported." in html


@pytest.mark.parametrize(("url", "limit"), [("/prompts/", 8), ("/prompts/summarize/", 14), ("/prompts/summarize/versions/2/", 16), ("/", 12)])
def test_prompt_pages_use_few_queries(viewer, imported, django_assert_max_num_queries, url, limit):
    client = logged_in(viewer)

    with django_assert_max_num_queries(limit):
        assert client.get(url).status_code == 200


def test_approve_and_reject_buttons_work_for_prompt_requests(imported, approver):
    staging = PromotionRequest.objects.get(prompt__name="summarize", to_stage="staging")
    prod = PromotionRequest.objects.get(prompt__name="summarize", to_stage="prod")
    client = logged_in(approver)

    approved = client.post(f"/promotions/{prod.pk}/approve/", follow=True)
    rejected = client.post(f"/promotions/{staging.pk}/reject/", {"comment": "not yet"}, follow=True)

    assert approved.redirect_chain[-1][0] == "/prompts/summarize/versions/2/"
    assert "Approved: summarize v2 is now in prod." in approved.content.decode()
    assert "Rejected the request to move summarize v2 to staging." in rejected.content.decode()


# --- canary promotions -------------------------------------------------------------------------------------------------


@pytest.fixture
def in_prod(imported, approver):
    """The sample prompts with their pending moves approved: summarize v2 in prod, v3 in staging."""
    for promotion in PromotionRequest.objects.filter(status="pending"):
        services.promotion_approve(promotion_id=promotion.pk, actor=approver)


def test_prompt_version_page_offers_a_canary_into_prod(editor, in_prod):
    client = logged_in(editor)

    v3 = client.get("/prompts/summarize/versions/3/").content.decode()
    v2 = client.get("/prompts/summarize/versions/2/").content.decode()

    assert 'data-canary-stage="prod"' in v3 and "Roll out as a canary" in v3 and "js/canary.js" in v3
    assert 'name="strategy"' not in v2  # v2 runs in prod already


def test_prompt_canary_request_approval_and_banner(viewer, editor, approver, in_prod):
    requested = logged_in(editor).post("/prompts/summarize/versions/3/promote/",
                                       {"to": "prod", "reason": "tighter", "strategy": "canary", "policy": ""}, follow=True)
    promotion = PromotionRequest.objects.get(status="pending", prompt__name="summarize")

    approved = logged_in(approver).post(f"/promotions/{promotion.pk}/approve/", follow=True)
    page = logged_in(viewer).get("/prompts/summarize/versions/3/").content.decode()

    assert (promotion.strategy, promotion.policy, promotion.to_stage) == ("canary", "", "prod")
    assert " ".join(str(m) for m in requested.context["messages"]).startswith("Requested summarize v3 → prod as a canary (rollout policy default).")
    assert "Approved: summarize v3 rolls out into prod as a canary" in " ".join(str(m) for m in approved.context["messages"])
    assert PromptVersion.objects.get(prompt__name="summarize", version=2).deployments.filter(environment="prod").exists()
    banner = re.search(r'<p class="msg banner rolling-out" id="rolling-out".*?</p>', page, re.S).group(0)
    assert f'data-promotion="{promotion.pk}" data-kind="prompt" data-name="summarize"' in banner
    assert f'<a href="/rollouts/?promotion={promotion.pk}" id="rollout-link">see the rollout</a>' in banner
    assert "v2 stays in prod until it completes" in banner


def test_a_prompt_canary_to_dev_is_refused_with_the_services_message(editor, imported):
    response = logged_in(editor).post("/prompts/summarize/versions/3/promote/", {"to": "dev", "reason": "r", "strategy": "canary"}, follow=True)

    assert " ".join(str(m) for m in response.context["messages"]) == "A canary of a prompt rolls out into prod, not dev."
