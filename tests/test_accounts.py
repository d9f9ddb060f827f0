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


# --- the address behind reverse proxies (MLOPS_PROXY_COUNT) ------------------------------------------------------------


def log_in_through(client: Client, username: str, password: str, forwarded: str, proxy: str = "10.9.9.9"):
    """A login as a proxy passes it on: from the proxy's address, with the X-Forwarded-For it built."""
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=forwarded)


def test_without_proxies_a_guesser_cannot_escape_the_lockout_with_x_forwarded_for():
    make_user("alice", "editor")

    answers = [log_in_through(Client(), "alice", f"guess-{i}", forwarded=f"203.0.113.{i}").status_code for i in range(6)]

    assert answers[4:] == [429, 429]  # one count: the connecting address, whatever the header says
    assert log_in_through(Client(), "alice", PASSWORD, forwarded="198.51.100.7").status_code == 429


def test_behind_one_proxy_each_client_address_has_its_own_count(settings):
    settings.MLOPS_PROXY_COUNT = 1
    make_user("alice", "editor")
    for i in range(5):
        log_in_through(Client(), "alice", f"guess-{i}", forwarded="203.0.113.5")

    locked = log_in_through(Client(), "alice", PASSWORD, forwarded="203.0.113.5")
    # The guesser writes another address in front: the proxy appends the real one, which is the one counted.
    spoofed = log_in_through(Client(), "alice", PASSWORD, forwarded="198.51.100.7, 203.0.113.5")
    colleague = log_in_through(Client(), "alice", PASSWORD, forwarded="198.51.100.7")  # the same proxy, another client

    assert (locked.status_code, spoofed.status_code, colleague.status_code) == (429, 429, 302)


@pytest.mark.parametrize(
    "proxies, forwarded, expected",
    [
        (0, "203.0.113.5", "10.9.9.9"),  # no proxy configured: the header is never read
        (1, "203.0.113.5", "203.0.113.5"),
        (1, "1.1.1.1, 203.0.113.5", "203.0.113.5"),  # what a client wrote in front is ignored
        (2, "1.1.1.1, 203.0.113.5, 10.0.0.8", "203.0.113.5"),  # two proxies: the address the outer one saw
        (2, "203.0.113.5", "10.9.9.9"),  # fewer entries than proxies: it did not come through them
        (1, "2001:db8::1", "2001:db8::1"),
        (1, "203.0.113.5:41234", "203.0.113.5"),  # load balancers that write the port too
        (1, "[2001:db8::1]:41234", "2001:db8::1"),
        (1, "[2001:db8::1", "10.9.9.9"),
        (1, "1.1.1.1, 203.0.113.5:x", "10.9.9.9"),
        (1, "1.1.1.1, not-an-address", "10.9.9.9"),  # garbage where the proxy's entry should be
        (1, "", "10.9.9.9"),
        (1, None, "10.9.9.9"),
    ],
)
def test_the_client_address_is_the_entry_the_outermost_proxy_wrote(settings, rf, proxies, forwarded, expected):
    from mlops_site.client_ip import client_ip

    settings.MLOPS_PROXY_COUNT = proxies
    headers = {"REMOTE_ADDR": "10.9.9.9"} | ({"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {})

    assert client_ip(rf.get("/", **headers)) == expected
