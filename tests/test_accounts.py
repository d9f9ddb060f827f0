"""Accounts attacked as the review did: unlimited password guesses on the login page, and short or common passwords
through create_api_user."""

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def log_in(client: Client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_login_sixth_try_is_locked_out_even_with_the_right_password():
    make_user("alice", "editor")
    client = Client()

    wrong = [log_in(client, "alice", f"guess-{i}").status_code for i in range(5)]
    sixth = log_in(client, "alice", PASSWORD)

    assert wrong == [200, 200, 200, 200, 429]  # the fifth failure locks: its own answer says so
    assert sixth.status_code == 429
    assert "Too many failed logins" in sixth.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/models/").status_code == 302  # still not signed in


def test_login_lockout_is_per_username_and_address():
    make_user("alice", "editor")
    make_user("bob", "approver")
    for i in range(5):
        log_in(Client(), "alice", f"guess-{i}")

    other_user = log_in(Client(), "bob", PASSWORD)
    other_address = log_in(Client(), "alice", PASSWORD, address="10.0.0.2")

    assert other_user.status_code == 302
    assert other_address.status_code == 302


def test_login_success_resets_the_failure_count():
    make_user("alice", "editor")
    for i in range(4):
        log_in(Client(), "alice", f"guess-{i}")
    assert log_in(Client(), "alice", PASSWORD).status_code == 302

    after = [log_in(Client(), "alice", f"again-{i}").status_code for i in range(4)]

    assert after == [200, 200, 200, 200]
    assert log_in(Client(), "alice", PASSWORD).status_code == 302


@pytest.mark.parametrize(
    "password, reason",
    [
        ("short-pw", "too short"),
        ("password1234", "too common"),
        ("918273645546372819", "entirely numeric"),
        ("release-bot1", "too similar to the username"),
    ],
)
def test_create_api_user_refuses_a_weak_password(password, reason):
    with pytest.raises(CommandError, match=reason):
        call_command("create_api_user", "release-bot", "--role", "approver", "--password", password)

    from django.contrib.auth import get_user_model

    assert not get_user_model().objects.filter(username="release-bot").exists()
