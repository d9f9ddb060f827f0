"""The product's files and docs stand on their own: no pointer into developer notes, no broken link in the
README or docs/, and every environment variable the settings read documented in docs/configuration.md."""

import ast
import importlib.util
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
THIS_FILE = Path(__file__).resolve().relative_to(ROOT).as_posix()
# Pointers into notes that live outside the product: the shared notes folder, its files by name, and
# "the brief" / "issue #N" style references to the developers' own planning.
NOTE_POINTERS = [
    re.compile(r"\.\./shared"),
    re.compile(r"\b(?:METRICS|BRIEF|DESIGN|STYLE|STACK|API)\.md\b"),
    re.compile(r"(?<![a-z])(?:the|product)[ _]brief(?![a-z])", re.IGNORECASE),
    re.compile(r"\bbrief's", re.IGNORECASE),
    re.compile(r"\bissue #[0-9]", re.IGNORECASE),
]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCED = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
ENV_READERS = {"env_bool", "env_int", "getenv", "get"}


def tracked_files() -> list[str]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in listed.decode().split("\0") if name]


def product_text(name: str) -> str | None:
    """The file's text, or None for what is not product text: CI machinery, this test, binaries, deleted files."""
    if name.startswith(".ci/") or name == THIS_FILE:
        return None
    try:
        data = (ROOT / name).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def note_pointers(text: str) -> list[tuple[int, str]]:
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        if any(pattern.search(line) for pattern in NOTE_POINTERS):
            found.append((number, line.strip()[:160]))
    return found


def relative_links(markdown: str) -> list[str]:
    """Link targets of a Markdown text outside code, without anchors; web addresses and bare anchors left out."""
    prose = INLINE_CODE.sub("", FENCED.sub("", markdown))
    targets = []
    for target in LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue
        targets.append(target.split("#", 1)[0])
    return targets


def settings_environment_variables(source: str) -> set[str]:
    """Names the settings read: os.environ.get / os.getenv / env_bool / env_int("NAME", ...), os.environ["NAME"],
    and DATABASE_URL when dj_database_url.config reads it."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            reads_environ = called != "get" or (isinstance(func, ast.Attribute) and ast.unparse(func.value) == "os.environ")
            if called in ENV_READERS and reads_environ:
                names.add(node.args[0].value)
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ" and isinstance(node.slice, ast.Constant):
            names.add(node.slice.value)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "dj_database_url.config":
            names.add("DATABASE_URL")
    return names


def test_product_files_never_point_into_developer_notes():
    files = tracked_files()

    found = [f"{name}:{number}: {line}" for name in files if (text := product_text(name)) is not None
             for number, line in note_pointers(text)]

    assert len(files) > 100
    assert found == []


def test_note_pointer_patterns_catch_each_kind_and_leave_ordinary_words_alone():
    # Built from parts, so that this file itself holds no pointer for a grep of the tree to find.
    notes, brief = "../" + "shared", "the " + "brief"
    pointers = [f"see {notes}/notes", "as METRICS" + ".md pins it", f"{brief}'s defaults", "test_is_" + brief.replace(" ", "_") + "_written_out",
                "the product " + "brief", "(issue " + "#3)", "API" + ".md in the shared folder"]
    ordinary = ["docs/api.md and docs/metrics.md", "brief_folder()", "Be brief.", "an issue with #3", "README.md"]

    assert [bool(note_pointers(text)) for text in pointers] == [True] * len(pointers)
    assert [bool(note_pointers(text)) for text in ordinary] == [False] * len(ordinary)


def test_readme_and_docs_links_point_to_files_that_exist():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

    broken = [f"{page.relative_to(ROOT)} -> {target}" for page in pages for target in relative_links(page.read_text())
              if not (page.parent / target).exists()]

    assert len(pages) > 5 and sum(len(relative_links(page.read_text())) for page in pages) > 20
    assert broken == []


def test_relative_links_skip_code_web_addresses_and_anchors():
    markdown = ("[a](docs/a.md#part) ![b](img/b.png) [c](https://x.org/c.md) [d](#top) `[e](e.md)`\n"
                "```\n[f](f.md)\n```\n[g](g.md \"title\")")

    targets = relative_links(markdown)

    assert targets == ["docs/a.md", "img/b.png", "g.md"]


def test_every_environment_variable_the_settings_read_is_in_the_configuration_page():
    names = settings_environment_variables((ROOT / "mlops_site" / "settings.py").read_text())
    page = (ROOT / "docs" / "configuration.md").read_text()

    undocumented = sorted(name for name in names if f"`{name}`" not in page)

    assert {"DATABASE_URL", "DJANGO_SECRET_KEY", "REDIS_URL", "MLOPS_LATENCY_SLA_MS", "EMAIL_FILE_PATH"} <= names
    assert undocumented == []


def test_every_variable_the_configuration_page_documents_is_read_by_the_code():
    page = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", page, re.M))
    sources = [p for pattern in ("mlops_site/*.py", "scripts/*", "mlops_client/*.py", "demo/**/*.py", "registry/**/*.py", "monitoring/**/*.py",
                                 "experiments/**/*.py", "Makefile") for p in ROOT.glob(pattern) if p.is_file()]
    code = "\n".join(p.read_text(errors="ignore") for p in sources)

    read_by_libraries = {"AWS_ACCESS_KEY_ID"}  # boto3 reads AWS credentials itself (the page says so)
    unread = sorted(name for name in documented - read_by_libraries if f'"{name}"' not in code and f"${name}" not in code and f"${{{name}" not in code
                    and f"{name}=" not in code)

    assert len(documented) > 50 and unread == []


def test_environment_variable_reader_finds_every_form_and_nothing_else():
    source = ('import os\nA = os.environ.get("A_VAR", "")\nB = env_bool("B_VAR", False)\nC = env_int("C_VAR", 1)\n'
              'D = os.environ["D_VAR"]\nE = os.getenv("E_VAR")\nF = {}.get("NOT_ENV")\nG = dj_database_url.config(default="x")\n')

    names = settings_environment_variables(source)

    assert names == {"A_VAR", "B_VAR", "C_VAR", "D_VAR", "E_VAR", "DATABASE_URL"}


def load_api_docs():
    spec = importlib.util.spec_from_file_location("api_docs", ROOT / "scripts" / "api_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_page_endpoints_are_what_the_openapi_schema_says():
    from drf_spectacular.generators import SchemaGenerator

    api_docs = load_api_docs()
    page = (ROOT / "docs" / "api.md").read_text()

    wanted = api_docs.render(page, SchemaGenerator().get_schema(request=None, public=True))

    assert api_docs.BEGIN in page and api_docs.END in page
    assert wanted == page, "docs/api.md is out of date: run `.venv/bin/python scripts/api_docs.py` and commit it"


def test_api_page_generation_lists_each_operation_its_body_fields_and_answers():
    api_docs = load_api_docs()
    schema = {"paths": {"/api/v1/things/{name}/": {
        "get": {"description": "One thing.", "parameters": [{"in": "path", "name": "name", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ThingOut"}}}}}},
        "post": {"description": "Change it.", "security": [{}],
                 "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ThingIn"}}}},
                 "responses": {"204": {"description": "done"}}},
    }}, "components": {"schemas": {
        "ThingOut": {"type": "object", "properties": {"id": {"type": "integer"}, "size": {"type": "number"}}},
        "ThingIn": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "number", "description": "in <units>"}, "kind": {"$ref": "#/components/schemas/KindEnum"}}},
        "KindEnum": {"enum": ["a", "b"], "type": "string"},
    }}}

    text = api_docs.render("# API\n\nintro\n", schema)

    assert text.startswith("# API\n\nintro\n\n" + api_docs.BEGIN)
    assert "### `GET /api/v1/things/{name}/`\n\nOne thing.\n\nParameters: `name` (path, string, required)." in text
    assert "- `200`: `application/json` `ThingOut` with `id`, `size`" in text
    assert "### `POST /api/v1/things/{name}/`\n\nChange it.\n\nNo token needed." in text
    assert "| `size` | number | yes | in &lt;units> |\n| `kind` | `\"a\"` \\| `\"b\"` |  |  |" in text
    assert "- `204`: done" in text
    assert api_docs.render(text, schema) == text
