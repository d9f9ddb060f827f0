"""`python -m mlops_client prompts ...` run as a real subprocess against a live server."""

import json

import requests

from mlops_client.prompts import JSON_IMPORT_MAX_BYTES, folder_archive, json_body
from mlops_site.roles import user_token_refresh
from registry.models import Prompt, PromptDeployment, PromptVersion
from registry.services.prompts import archive_files
from tests.client.test_cli import assert_fails, cli, token_for
from tests.conftest import make_user
from tests.prompts.conftest import brief_folder, write_folder

BRIEF_CREATED = ["classify/v1.yaml", "summarize/eval_set.jsonl", "summarize/v1.yaml", "summarize/v2.yaml", "summarize/v3.yaml"]


def folder(tmp_path, files=None, *, config=True):
    files = dict(brief_folder() if files is None else files)
    if not config:
        files.pop("config.yaml")
    return str(write_folder(tmp_path / "prompts", files))


def running(name: str, environment: str) -> int | None:
    deployment = PromptDeployment.objects.filter(prompt__name=name, environment=environment).select_related("version").first()
    return deployment.version.version if deployment else None


def test_import_brief_folder_then_reimport_creates_nothing(live_server, tmp_path):
    as_alice = {"url": live_server.url, "token": token_for("alice", "editor")}
    path = folder(tmp_path, {**brief_folder(), "README.md": "# prompts\n", ".git/HEAD": "ref: refs/heads/main\n"})

    first = cli("prompts", "import", path, **as_alice)
    again = cli("prompts", "import", path, "--json", **as_alice)

    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith("created")] == BRIEF_CREATED
    assert "requested  summarize dev -> v3: approved (promotion" in first.stdout  # dev needs no approval
    assert "requested  summarize prod -> v2: pending (promotion" in first.stdout
    assert "ignored    README.md" in lines and ".git" not in first.stdout  # hidden folders are never sent
    assert lines[-1] == "5 created, 0 unchanged, 4 environment change(s) requested, 1 ignored."
    assert again.returncode == 0, again.stderr
    body = json.loads(again.stdout)
    assert body["created"] == []
    assert sorted(body["unchanged"]) == sorted(BRIEF_CREATED)
    assert {(r["prompt"], r["environment"], r["status"]) for r in body["requested"]} == {
        ("classify", "prod", "already pending"),
        ("summarize", "staging", "already pending"),
        ("summarize", "prod", "already pending"),
    }
    assert PromptVersion.objects.filter(prompt__name="summarize").count() == 3
    assert running("summarize", "dev") == 3 and running("summarize", "prod") is None


def test_invalid_file_prints_file_and_line_and_imports_nothing(live_server, tmp_path):
    as_alice = {"url": live_server.url, "token": token_for("alice", "editor")}
    files = brief_folder()
    files["summarize/v2.yaml"] = files["summarize/v2.yaml"].replace("temperature: 0.3", "temperature: hot")
    line = files["summarize/v2.yaml"].splitlines().index("temperature: hot") + 1

    result = cli("prompts", "import", folder(tmp_path, files), **as_alice)

    assert result.returncode == 4, (result.stdout, result.stderr)
    problems, last = result.stderr.splitlines()[:-1], result.stderr.splitlines()[-1]
    assert problems and problems[0].startswith(f"summarize/v2.yaml:{line}: temperature")
    assert last.startswith("error: 400 bad request") and "nothing was imported" in last
    assert "Traceback" not in result.stderr
    assert not Prompt.objects.exists()


def test_changed_version_file_is_a_conflict_naming_the_file(live_server, tmp_path):
    as_alice = {"url": live_server.url, "token": token_for("alice", "editor")}
    assert cli("prompts", "import", folder(tmp_path), **as_alice).returncode == 0
    (tmp_path / "prompts" / "summarize" / "v2.yaml").write_text(
        brief_folder()["summarize/v2.yaml"].replace("under 20 words", "under 15 words")
    )
    (tmp_path / "prompts" / "summarize" / "v4.yaml").write_text(brief_folder()["summarize/v3.yaml"].replace("version: 3", "version: 4"))

    result = cli("prompts", "import", str(tmp_path / "prompts"), **as_alice)

    assert result.returncode == 4, (result.stdout, result.stderr)
    assert result.stderr.splitlines()[0] == "summarize/v2.yaml: changed under an existing version number"
    assert result.stderr.splitlines()[-1].startswith("error: 409 conflict (version_changed): ")
    assert not PromptVersion.objects.filter(prompt__name="summarize", version=4).exists()  # all or nothing


def test_symlink_is_refused_before_any_request_and_binary_files_go_as_archive(live_server, tmp_path):
    as_alice = {"url": live_server.url, "token": token_for("alice", "editor")}
    path = folder(tmp_path, config=False)
    (tmp_path / "elsewhere.yaml").write_text(brief_folder()["classify/v1.yaml"])
    (tmp_path / "prompts" / "classify" / "v2.yaml").symlink_to(tmp_path / "elsewhere.yaml")

    linked = cli("prompts", "import", path, **as_alice)
    (tmp_path / "prompts" / "classify" / "v2.yaml").unlink()
    (tmp_path / "prompts" / "summarize" / "diagram.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary")
    binary = cli("prompts", "import", path, "--json", **as_alice)
    forced = cli("prompts", "import", path, "--archive", **as_alice)

    assert_fails(linked, 2, "classify/v2.yaml is a symbolic link")
    assert binary.returncode == 0, binary.stderr
    assert json.loads(binary.stdout)["ignored"] == ["summarize/diagram.png"]
    assert sorted(json.loads(binary.stdout)["created"]) == BRIEF_CREATED
    assert (forced.returncode, forced.stdout.splitlines()[-1]) == (
        0,
        "0 created, 5 unchanged, 0 environment change(s) requested, 1 ignored.",
    )


def test_a_folder_holding_only_prompts_is_imported_alike_as_json_or_archive(live_server, tmp_path):
    as_alice = {"url": live_server.url, "token": token_for("alice", "editor")}
    write_folder(tmp_path / "repo" / "prompts", brief_folder())
    write_folder(tmp_path / "repo", {".github/workflows/ci.yml": "on: push\n"})
    write_folder(tmp_path / "elsewhere", {"notes/todo.md": "- write prompts\n"})

    as_json = cli("prompts", "import", str(tmp_path / "repo"), "--json", **as_alice)
    as_archive = cli("prompts", "import", str(tmp_path / "repo"), "--archive", "--json", **as_alice)
    no_prompts = cli("prompts", "import", str(tmp_path / "elsewhere"), **as_alice)

    assert sorted(json.loads(as_json.stdout)["created"]) == BRIEF_CREATED, as_json.stderr
    assert sorted(json.loads(as_archive.stdout)["unchanged"]) == BRIEF_CREATED, as_archive.stderr
    assert no_prompts.returncode == 0 and "ignored    notes/todo.md" in no_prompts.stdout
    assert no_prompts.stderr.startswith("warning: no prompt files")


def test_promote_to_prod_then_approve_by_another_user_runs_that_version(live_server, tmp_path):
    editor = make_user("alice", "editor")
    as_alice = {"url": live_server.url, "token": user_token_refresh(user=editor)}
    as_bob = {"url": live_server.url, "token": token_for("bob", "approver")}
    assert cli("prompts", "import", folder(tmp_path, config=False), **as_alice).returncode == 0

    to_dev = cli("prompts", "promote", "summarize", "--version", "2", "--to", "dev", "--reason", "try it", **as_alice)
    requested = cli("prompts", "promote", "summarize", "--version", "latest", "--to", "prod", "--reason", "fewer bullets", **as_alice)
    promotion_id, status = requested.stdout.split()
    listed = cli("promotions", "--status", "pending", **as_bob)
    approved = cli("approve", promotion_id, "--comment", "ok", **as_bob)
    shown = cli("prompts", "show", "summarize", **as_bob)
    prod = requests.get(
        f"{live_server.url}/api/v1/prompts/summarize/environments/prod", headers={"Authorization": f"Token {as_bob['token']}"}, timeout=30
    )

    assert (to_dev.returncode, to_dev.stdout.split()[1]) == (0, "approved"), to_dev.stderr
    assert (requested.returncode, status) == (0, "pending"), requested.stderr
    assert listed.stdout.splitlines()[1].split()[:5] == [promotion_id, "prompt:summarize", "v3", "prod", "pending"]
    assert (approved.returncode, approved.stdout) == (0, f"{promotion_id} approved\n"), approved.stderr
    assert prod.status_code == 200 and prod.json()["version"] == 3
    assert shown.stdout.splitlines()[0] == "summarize  latest v3  dev v2  staging -  prod v3  pending requests 0"
    assert [line.split()[:2] for line in shown.stdout.splitlines()[2:]] == [["v3", "prod"], ["v2", "dev"], ["v1", "-"]]


def test_rollback_returns_the_environment_to_the_version_before(live_server, tmp_path):
    approver = make_user("bob", "approver")
    as_alice = {"url": live_server.url, "token": token_for("alice", "editor")}
    as_bob = {"url": live_server.url, "token": user_token_refresh(user=approver)}
    assert cli("prompts", "import", folder(tmp_path), **as_alice).returncode == 0  # config.yaml puts v3 in dev at once
    assert cli("prompts", "promote", "summarize", "--version", "1", "--to", "dev", "--reason", "compare", **as_alice).returncode == 0
    assert running("summarize", "dev") == 1

    by_editor = cli("prompts", "rollback", "summarize", "--environment", "dev", "--reason", "worse", **as_alice)
    back = cli("prompts", "rollback", "summarize", "--environment", "dev", "--reason", "worse", **as_bob)
    nothing_before = cli("prompts", "rollback", "summarize", "--environment", "dev", "--reason", "again", **as_bob)

    assert_fails(by_editor, 4, "403")
    assert (back.returncode, back.stdout) == (0, "3\n"), back.stderr
    assert_fails(nothing_before, 4, "409 conflict (no_previous_version)")
    assert running("summarize", "dev") == 3


def test_render_fills_variables_and_names_a_missing_one(live_server, tmp_path):
    as_alice = {"url": live_server.url, "token": token_for("alice", "editor")}
    assert cli("prompts", "import", folder(tmp_path), **as_alice).returncode == 0

    rendered = cli("prompts", "render", "summarize", "--version", "2", "--var", "text=Sales grew 4% in Q3.", **as_alice)
    in_dev = cli("prompts", "render", "summarize", "--environment", "dev", "--vars", '{"text": "x"}', "--json", **as_alice)
    missing = cli("prompts", "render", "summarize", "--version", "2", **as_alice)
    unknown = cli("prompts", "render", "classify", "--version", "latest", "--var", "ticket=t", "--var", "mood=sad", **as_alice)
    bad_flag = cli("prompts", "render", "summarize", "--version", "2", "--var", "text", **as_alice)

    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout.splitlines()[0] == "summarize v2  model claude-sonnet-4  temperature 0.3  max_tokens 500"
    assert "--- system\nYou are a concise summarizer." in rendered.stdout
    assert "Return exactly 3 bullet points" in rendered.stdout
    assert rendered.stdout.endswith("--- prompt\nSummarize the following text:\n\nSales grew 4% in Q3.\n")
    assert in_dev.returncode == 0, in_dev.stderr
    assert json.loads(in_dev.stdout)["temperature"] == 0.2  # dev runs v3
    assert_fails(missing, 4, "400 bad request", "missing variable(s): text")
    assert_fails(unknown, 4, "unknown variable(s): mood")
    assert bad_flag.returncode == 2 and "expected NAME=VALUE" in bad_flag.stderr


def test_large_folder_goes_as_a_tar_gz_the_server_unpacks_to_the_same_files():
    small = {path: text.encode() for path, text in brief_folder().items()}
    large = {**small, "assets/big.txt": b"x" * JSON_IMPORT_MAX_BYTES}

    assert json_body(small) == {"files": brief_folder()}
    assert json_body(large) is None
    assert json_body({**small, "logo.png": b"\x89PNG\xff"}) is None  # not UTF-8: only an archive can carry it
    assert archive_files(folder_archive(large)) == large
