"""Deeply nested JSON and YAML, sent as a hostile editor would: every path answers 400 in the error shape, never 500."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.factories import register
from tests.prompts.conftest import brief_folder
from tests.registry.test_api import assert_error_shape

pytestmark = pytest.mark.django_db

URL = "/api/v1/models/fraud/versions/1"
DEEP_JSON = "[" * 100_000 + "]" * 100_000
# Under the interpreter's recursion limit, so the parser accepts it and only a depth check refuses it.
MEDIUM_JSON = "[" * 900 + "]" * 900
OBJECTS_JSON = '{"a": ' * 900 + "1" + "}" * 900  # objects inside objects, as deep
DEEP_YAML = "a: " + "[" * 100_000 + "]" * 100_000 + "\n"
MEDIUM_YAML = "a: " + "[" * 900 + "]" * 900 + "\n"
BLOCK_YAML = "".join(" " * i + "- \n" for i in range(400)) + " " * 400 + "- x\n"


@pytest.mark.parametrize("text", [DEEP_JSON, MEDIUM_JSON, OBJECTS_JSON], ids=["deep", "medium", "objects"])
def test_api_json_body_nested_too_deeply_is_a_400(api_as, editor, text):
    response = api_as(editor).post("/api/v1/prompts/import", text, content_type="application/json")

    assert "nested" in assert_error_shape(response, 400)["message"]


@pytest.mark.parametrize("text", [DEEP_YAML, MEDIUM_YAML, BLOCK_YAML], ids=["deep", "medium", "block"])
def test_prompt_yaml_nested_too_deeply_is_a_400_naming_the_file(api_as, editor, text):
    files = brief_folder() | {"summarize/v4.yaml": text}

    response = api_as(editor).post("/api/v1/prompts/import", {"files": files}, format="json")

    problem = assert_error_shape(response, 400, "invalid")["extra"]["problems"][0]
    assert problem["file"] == "summarize/v4.yaml"
    assert "nest" in problem["message"]


@pytest.mark.parametrize("text", [DEEP_JSON, MEDIUM_JSON], ids=["deep", "medium"])
def test_prompt_eval_set_line_nested_too_deeply_is_a_400_naming_the_file(api_as, editor, text):
    files = brief_folder() | {"summarize/eval_set.jsonl": '{"ok": 1}\n' + text + "\n"}

    response = api_as(editor).post("/api/v1/prompts/import", {"files": files}, format="json")

    problem = assert_error_shape(response, 400, "invalid")["extra"]["problems"][0]
    assert (problem["file"], problem["line"]) == ("summarize/eval_set.jsonl", 2)


@pytest.mark.parametrize("text", [DEEP_JSON, MEDIUM_JSON], ids=["deep", "medium"])
def test_evaluation_options_nested_too_deeply_are_a_400_naming_the_field(api_as, editor, text):
    register("fraud", editor)
    client = api_as(editor)

    multipart = client.post(f"{URL}/evaluations", {"file": SimpleUploadedFile("preds.csv", b"label,prediction\n1,1\n"), "options": text}, format="multipart")
    raw = client.post(f"{URL}/evaluations?options={text}", b"label,prediction\n1,1\n", content_type="text/csv")

    for response in (multipart, raw):
        assert "options" in assert_error_shape(response, 400)["message"]


@pytest.mark.parametrize("text", [DEEP_JSON, MEDIUM_JSON], ids=["deep", "medium"])
def test_reference_json_file_nested_too_deeply_is_a_400(api_as, editor, text):
    register("fraud", editor)

    response = api_as(editor).put(f"{URL}/reference?filename=ref.json", text.encode(), content_type="application/octet-stream")

    assert_error_shape(response, 400)


@pytest.mark.parametrize("text", [DEEP_JSON, MEDIUM_JSON], ids=["deep", "medium"])
def test_dataset_schema_page_nested_too_deeply_is_a_400_with_the_reason(editor, text):
    from registry.models import DatasetSchema
    from tests.registry.test_views_gates import logged_in

    register("fraud", editor)

    response = logged_in(editor).post("/models/fraud/schema/", {"action": "edit", "schema": text})

    assert response.status_code == 400 and "The schema is not valid JSON" in response.content.decode()
    assert not DatasetSchema.objects.exists()
