import io
import tarfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from registry.models import PromotionRequest, Prompt, PromptVersion
from tests.prompts.conftest import SUMMARIZE, brief_folder
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db


def imported(client, files=None):
    response = client.post("/api/v1/prompts/import", {"files": files or brief_folder()}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_import_json_then_reimport_is_idempotent(api_as, editor):
    client = api_as(editor)

    first = imported(client)
    second = imported(client)

    assert len(first["created"]) == 5 and second["created"] == []
    assert sorted(second["unchanged"]) == sorted(first["created"])
    assert PromptVersion.objects.count() == 4


def test_import_archive_upload(api_as, editor):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in brief_folder().items():
            data = text.encode()
            info = tarfile.TarInfo("prompts/" + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

    response = api_as(editor).post("/api/v1/prompts/import", {"archive": SimpleUploadedFile("prompts.tar.gz", buffer.getvalue())}, format="multipart")

    assert response.status_code == 200, response.content
    assert "summarize/v3.yaml" in response.json()["created"]


@pytest.mark.parametrize(
    ("path", "text", "line", "fragment"),
    [
        ("summarize/v4.yaml", "- just\n- a list\n", 1, "must be a YAML mapping"),
        ("summarize/v4.yaml", SUMMARIZE.format(n=4, bullets=3).replace("max_tokens: 500", "max_tokens: 500\nmax_tokens: 5"), 6, "duplicate key"),
        ("summarize/v4.yaml", SUMMARIZE.format(n=5, bullets=3), 2, "does not match the file name v4"),
        ("summarize/v4.yaml", SUMMARIZE.format(n=4, bullets=3).replace("{text}", "{text"), 12, "unbalanced braces"),
        ("summarize/v4.yaml", SUMMARIZE.format(n=4, bullets=3).replace("{text}", "{text.__class__}"), 12, "not a plain name"),
        ("summarize/v4.yaml", SUMMARIZE.format(n=4, bullets=3).replace("{text}", "{0.__globals__}"), 12, "not a plain name"),
        ("summarize/v4.yaml", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n", 1, "aliases"),
        ("summarize/eval_set.jsonl", '{"ok": 1}\n{broken\n', 2, "not valid JSON"),
        ("../outside/v1.yaml", "x", None, "escapes the prompts folder"),
    ],
)
def test_bad_files_are_a_400_naming_file_and_line_and_nothing_is_written(api_as, editor, path, text, line, fragment):
    files = brief_folder() | {path: text}

    response = api_as(editor).post("/api/v1/prompts/import", {"files": files}, format="json")

    body = assert_error_shape(response, 400, "invalid")
    problem = body["extra"]["problems"][0]
    assert (problem["file"], problem["line"]) == (path, line)
    assert fragment in problem["message"]
    assert not Prompt.objects.exists()


def test_oversized_file_is_a_400(api_as, editor, settings):
    settings.MLOPS_PROMPT_MAX_FILE_BYTES = 100

    response = api_as(editor).post("/api/v1/prompts/import", {"files": brief_folder()}, format="json")

    assert "the limit is 100" in assert_error_shape(response, 400)["message"]


def test_changed_version_is_a_409_naming_the_file(api_as, editor):
    client = api_as(editor)
    imported(client)
    files = brief_folder()
    files["summarize/v1.yaml"] = files["summarize/v1.yaml"].replace("0.3", "0.4")

    body = assert_error_shape(client.post("/api/v1/prompts/import", {"files": files}, format="json"), 409, "version_changed")

    assert body["extra"]["files"] == ["summarize/v1.yaml"]


def test_prompt_detail_version_and_environment(api_as, editor, approver):
    imported(api_as(editor))
    client = api_as(approver)
    prod = PromotionRequest.objects.get(prompt__name="summarize", to_stage="prod")
    assert client.post(f"/api/v1/promotions/{prod.pk}/approve", {}, format="json").status_code == 200

    detail = client.get("/api/v1/prompts/summarize").json()
    version = client.get("/api/v1/prompts/summarize/versions/2").json()
    env = client.get("/api/v1/prompts/summarize/environments/prod").json()

    assert detail["environments"] == {"dev": 3, "staging": None, "prod": 2}
    assert [v["version"] for v in detail["versions"]] == [3, 2, 1]
    assert (version["model"], version["temperature"], version["max_tokens"], version["placeholders"]) == ("claude-sonnet-4", 0.3, 500, ["text"])
    assert version["eval_criteria"][1] == {"name": "relevance", "type": "llm_judge", "threshold": 0.8}
    assert version["yaml"] == brief_folder()["summarize/v2.yaml"]
    assert env["version"] == 2
    assert_error_shape(client.get("/api/v1/prompts/summarize/environments/staging"), 404, "stage_empty")
    assert_error_shape(client.get("/api/v1/prompts/summarize/environments/qa"), 400)
    assert_error_shape(client.get("/api/v1/prompts/nope"), 404)


def test_render_fills_the_template_and_names_bad_variables(api_as, editor):
    client = api_as(editor)
    imported(client)

    ok = client.post("/api/v1/prompts/summarize/versions/2/render", {"variables": {"text": "Sales grew."}}, format="json")
    missing = client.post("/api/v1/prompts/summarize/versions/2/render", {"variables": {}}, format="json")
    unknown = client.post("/api/v1/prompts/summarize/versions/2/render", {"variables": {"text": "x", "txt": "y"}}, format="json")

    assert ok.json() == {
        "system": "You are a concise summarizer. Extract key points from the given text.\nReturn exactly 3 bullet points, each under 20 words.\n",
        "prompt": "Summarize the following text:\n\nSales grew.\n",
        "model": "claude-sonnet-4",
        "temperature": 0.3,
        "max_tokens": 500,
    }
    assert "variables.text" in assert_error_shape(missing, 400)["extra"]["fields"]
    assert "variables.txt" in assert_error_shape(unknown, 400)["extra"]["fields"]


def test_promote_to_prod_approve_and_roll_back_over_the_api(api_as, editor, approver, approver2):
    imported(api_as(editor))
    for promotion in PromotionRequest.objects.filter(status="pending"):
        api_as(approver).post(f"/api/v1/promotions/{promotion.pk}/approve", {}, format="json")

    created = api_as(editor).post("/api/v1/prompts/summarize/versions/3/promotions", {"to": "prod", "reason": "tighter"}, format="json")
    assert created.status_code == 201
    promotion = created.json()
    assert (promotion["kind"], promotion["prompt"], promotion["model"], promotion["version"], promotion["from_version"]) == ("prompt", "summarize", None, 3, 2)
    assert api_as(approver2).post(f"/api/v1/promotions/{promotion['id']}/approve", {"comment": "ok"}, format="json").status_code == 200
    assert api_as(editor).get("/api/v1/prompts/summarize/environments/prod").json()["version"] == 3

    back = api_as(approver).post("/api/v1/prompts/summarize/rollback", {"environment": "prod", "reason": "judge score fell"}, format="json")

    assert back.status_code == 200 and back.json()["version"] == 2
    events = api_as(editor).get("/api/v1/audit?subject=prompt:summarize&action=rolled_back").json()["results"]
    assert (events[0]["actor"], events[0]["version"], events[0]["to_stage"], events[0]["extra"]["replaced_version"]) == ("bob", 2, "prod", 3)
    assert_error_shape(api_as(editor).post("/api/v1/prompts/summarize/rollback", {"environment": "prod", "reason": "r"}, format="json"), 403)
    assert_error_shape(api_as(editor).post("/api/v1/prompts/summarize/versions/3/promotions", {"to": "production", "reason": "r"}, format="json"), 400)


def test_requester_cannot_reject_own_prompt_request_over_the_api(api_as, editor, approver, approver2):
    imported(api_as(editor))
    as_bob = api_as(approver)
    promotion = as_bob.post("/api/v1/prompts/summarize/versions/3/promotions", {"to": "prod", "reason": "tighter"}, format="json").json()

    refused = as_bob.post(f"/api/v1/promotions/{promotion['id']}/reject", {"comment": "changed my mind"}, format="json")

    assert_error_shape(refused, 403, "four_eyes")
    assert PromotionRequest.objects.get(pk=promotion["id"]).status == "pending"
    rejected = api_as(approver2).post(f"/api/v1/promotions/{promotion['id']}/reject", {"comment": "not yet"}, format="json")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"


def test_eval_set_rows_are_paginated(api_as, editor):
    client = api_as(editor)
    files = brief_folder() | {"summarize/eval_set.jsonl": "".join(f'{{"i": {i}}}\n' for i in range(120))}
    imported(client, files)

    page = client.get("/api/v1/prompts/summarize/eval-sets/1?page=3&page_size=50").json()

    assert (page["count"], page["eval_set"]["row_count"]) == (120, 120)
    assert [row["i"] for row in page["rows"]] == list(range(100, 120))
    assert_error_shape(client.get("/api/v1/prompts/summarize/eval-sets/1?page=0"), 400)


def test_prompt_lists_use_a_constant_number_of_queries(api_as, editor, django_assert_max_num_queries):
    client = api_as(editor)
    files = {f"p{i}/v1.yaml": SUMMARIZE.format(n=1, bullets=3).replace("name: summarize", f"name: p{i}") for i in range(20)}
    imported(client, files | {"config.yaml": "".join(f"p{i}:\n  dev: 1\n  prod: 1\n" for i in range(20))})

    with django_assert_max_num_queries(5):
        assert client.get("/api/v1/prompts").json()["count"] == 20
    with django_assert_max_num_queries(5):
        assert client.get("/api/v1/promotions?page_size=100").json()["count"] == 40
    with django_assert_max_num_queries(6):
        assert len(client.get("/api/v1/prompts/p0").json()["versions"]) == 1


def test_json_and_archive_treat_a_top_prompts_folder_alike(api_as, editor):
    files = {f"prompts/{name}": text for name, text in brief_folder().items()}

    result = imported(api_as(editor), files)

    assert "summarize/v1.yaml" in result["created"] and result["ignored"] == []


def test_promotions_filter_by_prompt(api_as, editor):
    client = api_as(editor)
    imported(client)

    listed = client.get("/api/v1/promotions?prompt=summarize").json()["results"]

    assert {p["prompt"] for p in listed} == {"summarize"} and len(listed) == 3
    assert_error_shape(client.get("/api/v1/promotions?prompt=nope"), 404)
