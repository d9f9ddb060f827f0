import pytest
from django.core.management import CommandError, call_command

from registry.models import PromptVersion
from tests.prompts.conftest import brief_folder, write_folder

pytestmark = pytest.mark.django_db


def test_import_then_export_gives_back_the_same_bytes(prompts_dir, tmp_path, editor, approver):
    from io import StringIO

    from registry import services
    from registry.models import PromotionRequest

    out = StringIO()
    call_command("import_prompts", str(prompts_dir), "--user", "alice", stdout=out)
    for promotion in PromotionRequest.objects.filter(status="pending"):
        services.promotion_approve(promotion_id=promotion.pk, actor=approver)
    call_command("export_prompts", str(tmp_path / "out"), stdout=StringIO())

    assert "5 created, 0 unchanged" in out.getvalue()
    originals = {p.relative_to(prompts_dir): p.read_bytes() for p in prompts_dir.rglob("*") if p.is_file()}
    exported = {p.relative_to(tmp_path / "out"): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert exported == originals


def test_import_reports_file_and_line_and_writes_nothing(tmp_path, editor):
    files = brief_folder()
    files["summarize/v2.yaml"] = files["summarize/v2.yaml"].replace("max_tokens: 500", "max_tokens: 500\nmax_tokens: 600")
    folder = write_folder(tmp_path / "prompts", files)

    with pytest.raises(CommandError) as caught:
        call_command("import_prompts", str(folder), "--user", "alice")

    assert "summarize/v2.yaml:6: duplicate key 'max_tokens'" in str(caught.value)
    assert not PromptVersion.objects.exists()


def test_import_needs_a_known_user(prompts_dir):
    with pytest.raises(CommandError):
        call_command("import_prompts", str(prompts_dir), "--user", "ghost")
