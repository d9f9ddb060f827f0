"""The Content Security Policy: the header on every kind of page, its settings, and templates that need no
'unsafe-inline' (no inline script, event handler, javascript: URL or style attribute). The pages drawn by a real
browser under the policy are in tests/test_browser.py."""

import re
from pathlib import Path

import pytest

from mlops_site.middleware import csp_header
from tests.conftest import make_user
from tests.factories import register

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIRS = [ROOT / "templates", *ROOT.glob("*/templates")]
# An inline script: a <script> tag without src whose type is not data (json_script writes application/json).
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", re.IGNORECASE)
INLINE_HANDLER = re.compile(r"\son[a-z]+\s*=", re.IGNORECASE)
JAVASCRIPT_URL = re.compile(r"javascript:", re.IGNORECASE)
STYLE_ATTRIBUTE = re.compile(r"\sstyle\s*=", re.IGNORECASE)
STYLE_ELEMENT = re.compile(r"<style[\s>]", re.IGNORECASE)
PASSWORD = "a-long-test-password-0"


def inline_code(text: str) -> list[str]:
    """What in a template the policy would block, by kind."""
    found = []
    for kind, pattern in (("inline script", INLINE_SCRIPT), ("event handler", INLINE_HANDLER), ("javascript: URL", JAVASCRIPT_URL),
                          ("style attribute", STYLE_ATTRIBUTE), ("style element", STYLE_ELEMENT)):
        found += [f"{kind}: {m.group(0).strip()}" for m in pattern.finditer(text)]
    return found


def test_templates_have_no_inline_script_handler_or_style():
    templates = [path for folder in TEMPLATE_DIRS for path in folder.rglob("*.html")]

    found = {str(path.relative_to(ROOT)): problems for path in templates if (problems := inline_code(path.read_text()))}

    assert len(templates) > 40
    assert found == {}


@pytest.mark.parametrize("snippet", [
    "<script>alert(1)</script>", "<SCRIPT type='text/javascript'>x()</SCRIPT>", '<button onclick="go()">',
    '<select name="a" onchange="this.form.submit()">', '<a href="javascript:void(0)">', '<span style="width: 5%">',
    "<style>p { color: red }</style>",
])
def test_inline_code_finds_what_the_policy_blocks(snippet):
    assert inline_code(f"<p>before</p>{snippet}<p>after</p>") != []


@pytest.mark.parametrize("snippet", [
    "<script src=\"/static/js/charts.js\" defer></script>", '<script id="fig" type="application/json">{"a": 1}</script>',
    '<button data-confirm="Roll back?">', '<link rel="stylesheet" href="/static/css/app.css">', "<p>Monday online</p>",
])
def test_inline_code_passes_what_the_policy_allows(snippet):
    assert inline_code(snippet) == []


@pytest.mark.parametrize("path", ["/", "/models/fraud/", "/api/v1/docs/", "/admin/", "/accounts/login/", "/api/v1/models", "/no-such-page/"])
def test_csp_header_on_every_kind_of_response(client, db, path):
    admin = make_user("root", "admin", password=PASSWORD)
    admin.is_staff = admin.is_superuser = True
    admin.save()
    register("fraud", admin)
    client.force_login(admin)

    response = client.get(path)

    assert response.status_code in (200, 302, 404)
    policy = dict(part.split(" ", 1) for part in response.headers["Content-Security-Policy"].split("; "))
    assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'" and policy["default-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'"


def test_csp_swagger_start_up_script_is_a_file_of_its_own(client, db):
    client.force_login(make_user("vera", "viewer", password=PASSWORD))

    page = client.get("/api/v1/docs/")
    script = client.get("/api/v1/docs/?script=")

    assert inline_code(page.content.decode()) == []
    assert 'src="/api/v1/docs/?script="' in page.content.decode()
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_csp_settings_replace_or_extend_the_policy(client, settings):
    settings.MLOPS_CSP = "default-src 'self'; img-src 'self' data:"
    settings.MLOPS_CSP_EXTRA = "img-src https://cdn.example.com data:; connect-src https://errors.example.com"

    response = client.get("/accounts/login/")

    assert response.headers["Content-Security-Policy"] == (
        "default-src 'self'; img-src 'self' data: https://cdn.example.com; connect-src https://errors.example.com")


def test_csp_empty_setting_sends_no_header(client, settings):
    settings.MLOPS_CSP = ""

    response = client.get("/accounts/login/")

    assert "Content-Security-Policy" not in response.headers


def test_csp_header_merges_directives_case_and_spacing():
    assert csp_header("default-src 'self';  ;script-src 'self'", "SCRIPT-SRC 'self' https://a.example ;") == (
        "default-src 'self'; script-src 'self' https://a.example")
