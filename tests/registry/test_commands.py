import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    from io import StringIO

    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_create_api_user_prints_a_working_token_last():
    lines = run("create_api_user", "ci-bot", "--role", "editor")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {lines[-1]}")

    response = client.get("/api/v1/me")

    assert response.json() == {"username": "ci-bot", "role": "editor"}


def test_create_api_user_updates_role_and_rotates_token():
    first = run("create_api_user", "ci-bot", "--role", "editor")[-1]
    second = run("create_api_user", "ci-bot", "--role", "approver", "--password", PASSWORD)[-1]
    old, new = APIClient(), APIClient()
    old.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    new.credentials(HTTP_AUTHORIZATION=f"Token {second}")

    assert first != second
    assert old.get("/api/v1/me").status_code == 401
    assert new.get("/api/v1/me").json()["role"] == "approver"
    assert APIClient().post("/accounts/login/", {"username": "ci-bot", "password": PASSWORD}).status_code == 302


def test_create_api_user_rejects_unknown_role():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        run("create_api_user", "x", "--role", "superhero")
