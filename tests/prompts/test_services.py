import io
import tarfile
import zipfile

import pytest

from mlops_site.exceptions import Conflict, Forbidden, TooLarge, ValidationFailed
from registry import services
from registry.models import AuditEvent, EvalSet, PromotionRequest, Prompt, PromptDeployment, PromptVersion, StageChange
from registry.prompt_files import read_folder
from tests.prompts.conftest import SUMMARIZE, brief_folder

pytestmark = pytest.mark.django_db


def deployed(name: str) -> dict[str, int]:
    return {d.environment: d.version.version for d in PromptDeployment.objects.filter(prompt__name=name).select_related("version")}


def test_first_import_creates_versions_eval_set_and_requests_for_config(prompts_dir, editor):
    result = services.prompts_import(files=read_folder(prompts_dir), actor=editor)

    assert sorted(result.created) == ["classify/v1.yaml", "summarize/eval_set.jsonl", "summarize/v1.yaml", "summarize/v2.yaml", "summarize/v3.yaml"]
    assert PromptVersion.objects.count() == 4
    eval_set = EvalSet.objects.get()
    assert (eval_set.version, eval_set.row_count) == (1, 2)
    assert set(PromptVersion.objects.filter(prompt__name="summarize").values_list("eval_set", flat=True)) == {eval_set.pk}
    # dev moves at once (no approval needed); staging and prod wait for an approver
    assert deployed("summarize") == {"dev": 3}
    statuses = {(r["prompt"], r["environment"]): r["status"] for r in result.requested}
    assert statuses == {("summarize", "dev"): "approved", ("summarize", "staging"): "pending", ("summarize", "prod"): "pending", ("classify", "prod"): "pending"}


def test_reimport_of_the_same_folder_creates_nothing(prompts_dir, editor):
    files = read_folder(prompts_dir)
    services.prompts_import(files=files, actor=editor)
    counts = (PromptVersion.objects.count(), EvalSet.objects.count(), PromotionRequest.objects.count(), AuditEvent.objects.count())

    result = services.prompts_import(files=files, actor=editor)

    assert result.created == []
    assert len(result.unchanged) == 5
    assert {r["status"] for r in result.requested} == {"already pending"}
    assert (PromptVersion.objects.count(), EvalSet.objects.count(), PromotionRequest.objects.count(), AuditEvent.objects.count()) == counts


def test_a_changed_file_under_an_existing_version_is_a_conflict_and_nothing_is_written(editor):
    files = brief_folder()
    services.prompts_import(files=files, actor=editor)
    counts = (PromptVersion.objects.count(), AuditEvent.objects.count())
    files["summarize/v2.yaml"] = files["summarize/v2.yaml"].replace("concise", "brief")
    files["summarize/v4.yaml"] = SUMMARIZE.format(n=4, bullets=4)

    with pytest.raises(Conflict) as caught:
        services.prompts_import(files=files, actor=editor)

    assert caught.value.code == "version_changed"
    assert "summarize/v2.yaml" in caught.value.message
    assert (PromptVersion.objects.count(), AuditEvent.objects.count()) == counts
    assert not PromptVersion.objects.filter(version=4).exists()


def test_an_invalid_file_is_a_400_naming_file_and_line_and_nothing_is_written(editor):
    files = brief_folder()
    files["summarize/v4.yaml"] = SUMMARIZE.format(n=4, bullets=4).replace("temperature: 0.3", "temperature: 7")

    with pytest.raises(ValidationFailed) as caught:
        services.prompts_import(files=files, actor=editor)

    assert caught.value.extra["problems"] == [{"file": "summarize/v4.yaml", "line": 4, "message": "temperature: Ensure this value is less than or equal to 2."}]
    assert not Prompt.objects.exists()


def test_a_new_eval_set_is_a_new_version_that_new_prompt_versions_use(editor):
    files = brief_folder()
    services.prompts_import(files=files, actor=editor)
    files["summarize/eval_set.jsonl"] += '{"input": {"text": "New row."}}\n'
    files["summarize/v4.yaml"] = SUMMARIZE.format(n=4, bullets=3)

    services.prompts_import(files=files, actor=editor)

    assert list(EvalSet.objects.order_by("version").values_list("version", "row_count")) == [(1, 2), (2, 3)]
    assert PromptVersion.objects.get(prompt__name="summarize", version=4).eval_set.version == 2
    assert PromptVersion.objects.get(prompt__name="summarize", version=3).eval_set.version == 1


def test_config_naming_a_missing_version_is_a_400(editor):
    files = brief_folder()
    files["config.yaml"] = "summarize:\n  prod: 9\n"

    with pytest.raises(ValidationFailed) as caught:
        services.prompts_import(files=files, actor=editor)

    assert "summarize.prod: v9" in caught.value.message
    assert not PromptVersion.objects.exists()


def test_prod_move_needs_a_second_person_and_rolls_back(editor, approver, approver2):
    services.prompts_import(files=brief_folder(), actor=editor)
    prod = PromotionRequest.objects.get(prompt__name="summarize", to_stage="prod")
    services.promotion_approve(promotion_id=prod.pk, actor=approver)
    v3 = PromptVersion.objects.get(prompt__name="summarize", version=3)

    request = services.promotion_request_create(version=v3, to_stage="prod", reason="v3 is tighter", actor=approver)
    with pytest.raises(Forbidden):
        services.promotion_approve(promotion_id=request.pk, actor=approver)
    services.promotion_approve(promotion_id=request.pk, actor=approver2, comment="diff reviewed")

    assert deployed("summarize")["prod"] == 3
    back = services.prompt_rollback(prompt_name="summarize", environment="prod", reason="quality dropped", actor=approver)
    assert back.version == 2
    assert deployed("summarize") == {"dev": 3, "prod": 2}
    history = list(StageChange.objects.filter(prompt__name="summarize", stage="prod").order_by("id").values_list("kind", "prompt_version__version", "previous_prompt_version__version"))
    assert history == [("promotion", 2, None), ("promotion", 3, 2), ("rollback", 2, 3)]
    moves = list(AuditEvent.objects.filter(subject="prompt:summarize", to_stage="prod").order_by("id").values_list("action", "version", "actor_name"))
    assert moves[-3:] == [("promotion_requested", 3, "bob"), ("promotion_approved", 3, "carol"), ("rolled_back", 2, "bob")]


def test_requester_can_never_reject_own_prompt_request(editor, approver, approver2):
    services.prompts_import(files=brief_folder(), actor=editor)
    v3 = PromptVersion.objects.get(prompt__name="summarize", version=3)
    request = services.promotion_request_create(version=v3, to_stage="prod", reason="v3 is tighter", actor=approver)

    with pytest.raises(Forbidden) as caught:
        services.promotion_reject(promotion_id=request.pk, actor=approver, comment="changed my mind")

    assert caught.value.code == "four_eyes"
    request.refresh_from_db()
    assert request.status == "pending"
    assert not AuditEvent.objects.filter(action="promotion_rejected").exists()
    services.promotion_reject(promotion_id=request.pk, actor=approver2, comment="not yet")
    request.refresh_from_db()
    assert (request.status, request.decided_by) == ("rejected", approver2)


def test_one_prompt_version_may_run_in_several_environments(editor, approver):
    services.prompts_import(files=brief_folder(), actor=editor)
    v3 = PromptVersion.objects.get(prompt__name="summarize", version=3)
    request = services.promotion_request_create(version=v3, to_stage="staging", reason="r", actor=editor)

    services.promotion_approve(promotion_id=request.pk, actor=approver)

    assert deployed("summarize") == {"dev": 3, "staging": 3}
    assert PromotionRequest.objects.get(prompt__name="summarize", to_stage="staging", prompt_version__version=2).status == "superseded"


def test_viewer_cannot_import(viewer):
    with pytest.raises(Forbidden):
        services.prompts_import(files=brief_folder(), actor=viewer)


def test_export_round_trips_byte_for_byte(prompts_dir, editor, approver):
    files = read_folder(prompts_dir)
    services.prompts_import(files=files, actor=editor)
    for promotion in PromotionRequest.objects.filter(status="pending"):
        services.promotion_approve(promotion_id=promotion.pk, actor=approver)

    exported = services.prompts_export()

    assert {name: text.encode() for name, text in exported.items()} == files


def _tar(files: dict[str, str], prefix: str = "prompts/") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(prefix + name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_archives_unpack_to_the_same_files():
    files = brief_folder()
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)

    assert services.archive_files(_tar(files, prefix="")) == {k: v.encode() for k, v in files.items()}
    assert services.archive_files(zipped.getvalue()) == {k: v.encode() for k, v in files.items()}


def test_archive_with_a_path_escaping_the_folder_is_refused(editor):
    files = services.archive_files(_tar({"../evil/v1.yaml": "x", "summarize/v1.yaml": SUMMARIZE.format(n=1, bullets=3)}, prefix=""))

    with pytest.raises(ValidationFailed) as caught:
        services.prompts_import(files=files, actor=editor)

    assert caught.value.extra["problems"][0]["file"] == "../evil/v1.yaml"
    assert not Prompt.objects.exists()


def test_archive_with_a_link_or_too_much_data_is_refused(settings):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        link = tarfile.TarInfo("summarize/v1.yaml")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    with pytest.raises(ValidationFailed):
        services.archive_files(buffer.getvalue())

    settings.MLOPS_PROMPT_ARCHIVE_MAX_BYTES = 1000
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("summarize/eval_set.jsonl", "0" * 10_000_000)
    assert len(bomb.getvalue()) < 20_000
    with pytest.raises(TooLarge):
        services.archive_files(bomb.getvalue())
    with pytest.raises(ValidationFailed):
        services.archive_files(b"not an archive at all")


def test_the_importer_of_a_prompt_version_can_never_approve_its_promotion(editor, approver, approver2):
    services.prompts_import(files=brief_folder(), actor=approver)
    v3 = PromptVersion.objects.get(prompt__name="summarize", version=3)
    request = services.promotion_request_create(version=v3, to_stage="prod", reason="v3 is tighter", actor=editor)

    with pytest.raises(Forbidden) as caught:
        services.promotion_approve(promotion_id=request.pk, actor=approver, comment="mine")

    assert caught.value.code == "four_eyes"
    request.refresh_from_db()
    assert request.status == "pending"
    services.promotion_approve(promotion_id=request.pk, actor=approver2, comment="reviewed")
    request.refresh_from_db()
    assert (request.status, request.decided_by) == ("approved", approver2)
