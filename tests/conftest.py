"""Shared fixtures: users per role, API clients with tokens, settings for fast tests."""

import os
import shutil

import pytest
from rest_framework.test import APIClient

from mlops_site.roles import user_set_role, user_token_refresh
from registry.services.tokens import api_token_authenticate

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    # Tasks run inline only where a test asks for `celery_eager`; real workers are in tests/integration/.
    # Anything else a unit test enqueues lands in an in-memory broker nobody consumes (never a developer's
    # Redis), so a test that forgot `celery_eager` sees its work not done, and `.get()` raises (no result backend).
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = "memory://"
    settings.CELERY_RESULT_BACKEND = None
    # A cache of its own per test (never a developer's Redis, nor the other database's suite running beside this
    # one); tests of the shared Redis cache set CACHES to their private Redis themselves.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": str(tmp_path)}}


@pytest.fixture
def celery_eager(settings):
    """Unit tests that run Celery tasks inline in the test's own process and transaction say so
    by asking for this fixture; everything else reaches a real worker (tests/integration/)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return settings


# Long and uncommon enough for the password validators (AUTH_PASSWORD_VALIDATORS), like every password a user sets.
PASSWORD = "pw-" + "long-enough-secret"


def make_user(username: str, role: str | None, password: str = PASSWORD):
    if role is None:
        from django.contrib.auth import get_user_model

        user = get_user_model().objects.create_user(username=username, password=password)
        return user
    return user_set_role(username=username, role=role, password=password)


@pytest.fixture
def viewer(db):
    return make_user("vera", "viewer")


@pytest.fixture
def editor(db):
    return make_user("alice", "editor")


@pytest.fixture
def approver(db):
    return make_user("bob", "approver")


@pytest.fixture
def approver2(db):
    return make_user("carol", "approver")


@pytest.fixture
def admin_user(db):
    return make_user("root", "admin")


def api_client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        key = user_token_refresh(user=user)
        # Used once, as a token in service is: the query counts of a test's first request then leave out the write of
        # the token's last use (made once a minute, tested in tests/registry/test_tokens.py).
        api_token_authenticate(key)
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def api_as():
    """`api_as(user)` -> an APIClient authenticated with that user's fresh token."""
    return api_client_for


# --- browser ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is not installed; CI must not skip browser tests")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


def pytest_collection_modifyitems(config, items):
    # Playwright's sync API keeps an asyncio loop in the main thread; ORM calls in
    # browser tests' bodies would otherwise raise SynchronousOnlyOperation.
    if any("page" in getattr(item, "fixturenames", ()) for item in items):
        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
