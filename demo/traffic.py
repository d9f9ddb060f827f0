"""What `simulate_traffic` (model events) and `simulate_llm_traffic` (prompt events) share: when events happen,
the API client, the progress line, the common options and the loop that posts the batches to `/api/v1/events`
(and the outcomes of the units an experiment serves to `/api/v1/outcomes`: streams.py builds the batches)."""

from __future__ import annotations

import math
import re
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode

import numpy as np
import requests
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from demo.streams import MAX_BATCH, Batch, Experiments, Label, NotRunning, Routes
from mlops_site.exceptions import DomainError
from mlops_site.roles import user_set_role
from registry.selectors import api_token_list
from registry.services.tokens import api_token_create, api_token_revoke

DEFAULT_USER = "traffic-bot"
TOKEN_NAME = "demo traffic"
# A run's token is used on every batch (and its last use recorded to the minute): one unused this long belongs to a run
# that ended, and is revoked when the next run starts, so the demo's tokens do not pile up.
STALE_TOKEN = timedelta(minutes=10)
REALTIME_LEAD_S = 1.0  # real time starts this long after the run begins: its first units are assigned before their requests
RETRIES = 3  # per request, on connection problems and 5xx (event ids make a re-sent batch harmless)


# --- when events happen --------------------------------------------------------------------------------


class Backfill:
    """Event i of n at the (i + jitter) / n quantile of a day-shaped traffic curve over [begin, end] (epoch seconds)."""

    def __init__(self, begin: float, end: float, total: int):
        self.total = total
        self.grid = np.linspace(begin, end, 4097)
        hour = (self.grid % 86400) / 3600
        intensity = 1 + 0.6 * np.cos(2 * np.pi * (hour - 15) / 24)  # busiest mid-afternoon UTC, quietest at night
        cdf = np.concatenate([[0.0], np.cumsum((intensity[1:] + intensity[:-1]) / 2)])
        self.cdf = cdf / cdf[-1]

    @property
    def bounds(self) -> tuple[float, float]:
        return float(self.grid[0]), float(self.grid[-1])

    def times(self, index: np.ndarray, jitter: np.ndarray) -> np.ndarray:
        return np.interp((index + jitter) / self.total, self.cdf, self.grid)


class RealTime:
    """Event i at start + (i + jitter) / rate: sent once that moment has come."""

    def __init__(self, start: float, rate: float, total: int):
        self.start, self.rate, self.total = start, rate, total

    def restart(self, start: float) -> None:
        self.start = start

    @property
    def bounds(self) -> tuple[float, float]:
        return self.start, self.start + self.total / self.rate

    def times(self, index: np.ndarray, jitter: np.ndarray) -> np.ndarray:
        return self.start + (index + jitter) / self.rate


# --- talking to the server -------------------------------------------------------------------------


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message.rstrip('.')}")
        self.status, self.message = status, message


class Unreachable(Exception):
    pass


class Api:
    def __init__(self, url: str, token: str, *, timeout: float = 120.0, sleep: Callable[[float], None] = time.sleep):
        self.url, self.timeout, self.sleep = url, timeout, sleep
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Token {token}", "Accept": "application/json", "User-Agent": "mlops-simulate-traffic"})
        self.retries = 0

    def request(self, method: str, path: str, *, payload=None, retry: bool = False) -> dict:
        """The JSON answer; Refused on a 4xx (or a 5xx after the retries), Unreachable when the server does not answer."""
        attempt = 0
        while True:
            try:
                response = self.session.request(method, self.url + path, json=payload, timeout=(5, self.timeout))
            except requests.RequestException as exc:
                problem: Exception = Unreachable(_reason(exc, self.timeout))
            else:
                if response.status_code < 400:
                    return response.json()
                problem = Refused(response.status_code, _message(response))
                if response.status_code < 500:
                    raise problem
            if not retry or attempt >= RETRIES:
                raise problem
            attempt += 1
            self.retries += 1
            self.sleep(2 ** (attempt - 1))

    def get(self, path: str) -> dict:
        return self.request("GET", path)

    def post(self, path: str, payload: dict) -> dict:
        return self.request("POST", path, payload=payload, retry=True)

    def post_events(self, events: list[dict]) -> dict:
        return self.post("/api/v1/events", {"events": events})

    def post_outcomes(self, outcomes: list[dict]) -> dict:
        return self.post("/api/v1/outcomes", {"outcomes": outcomes})

    def post_labels(self, labels: list[Label]) -> int:
        """`POST /api/v1/labels` in requests of at most MAX_BATCH; how many stored events got their label."""
        return sum(int(self.post("/api/v1/labels", {"labels": [x.payload() for x in labels[i:i + MAX_BATCH]]}).get("updated", 0))
                   for i in range(0, len(labels), MAX_BATCH))

    def assign(self, key: str, unit_ids: list[str]) -> list[dict]:
        """The variant of each unit (its exposure on the first call); NotRunning when the experiment stopped or is gone."""
        try:
            return self.post(f"/api/v1/experiments/{quote(key, safe='')}/assign", {"unit_ids": unit_ids})["assignments"]
        except Refused as exc:
            if exc.status in (404, 409):
                raise NotRunning(exc.message.rstrip(".")) from None
            raise

    def route(self, kind: str, name: str, unit_ids: list[str]) -> list[dict]:
        """`GET /api/v1/route` for each unit: which version serves it now (retried like a batch: a live run asks for days)."""
        return [self.request("GET", f"/api/v1/route?{urlencode({kind: name, 'unit_id': unit})}", retry=True) for unit in unit_ids]

    def running_experiments(self, kind: str, name: str) -> list[dict]:
        """Every page of `GET /api/v1/experiments?status=running&<kind>=<name>`, retried like a batch (a live run reads it
        every half minute for days: a restarting server must not end it)."""
        found, page = [], 1
        while True:
            answer = self.request("GET", f"/api/v1/experiments?{urlencode({'status': 'running', kind: name, 'page': page})}", retry=True)
            found += answer.get("results", [])
            if not answer.get("next"):
                return found
            page += 1


def _reason(exc: requests.RequestException, timeout: float) -> str:
    """A short reason instead of urllib3's nested repr."""
    if isinstance(exc, requests.ConnectTimeout):
        return "no connection within 5 s"
    if isinstance(exc, requests.ReadTimeout):
        return f"no answer within {timeout:g} s"
    found = re.findall(r"\[Errno -?[0-9]+\] ([^'\")\]]+)", str(exc))
    return found[-1].strip().rstrip(".").lower() if found else f"{type(exc).__name__}: {str(exc)[:200]}"


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return str(body)[:300]


@contextmanager
def server_errors(url: str) -> Iterator[None]:
    """Refused and Unreachable as a CommandError that says what to do."""
    try:
        yield
    except Refused as exc:
        raise CommandError(f"The server at {url} refused with {exc}.") from None
    except Unreachable as exc:
        raise CommandError(f"Cannot reach the server at {url}: {exc}. Start it with `make run`, or pass --url.") from None


# --- the console -----------------------------------------------------------------------------------


class Progress:
    """One line redrawn with \\r: a bar, events sent, rate, duplicates, served errors, whether the change is on, retries."""

    def __init__(self, out, total: int, *, flag: str = "drift", width: int = 24, every: float = 0.2, enabled: bool = True):
        self.out, self.total, self.flag, self.width, self.every, self.enabled = out, total, flag, width, every, enabled
        self.started = time.monotonic()
        self.last_draw = -math.inf
        self.last_len = 0

    def draw(self, *, sent: int, duplicates: int, errors: int, retries: int, changed: bool, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.last_draw < self.every):
            return
        self.last_draw = now
        elapsed = max(now - self.started, 1e-9)
        rate = sent / elapsed
        done = sent / self.total
        filled = int(done * self.width)
        eta = (self.total - sent) / rate if rate > 0 else math.inf
        line = (
            f"[{'#' * filled}{'.' * (self.width - filled)}] {done:4.0%} {sent:,}/{self.total:,} events"
            f" | {rate:,.0f} ev/s | dup {duplicates:,} | err {errors:,} ({errors / max(sent, 1):.1%})"
            f" | {self.flag} {'ON' if changed else 'off'}" + (f" | retries {retries}" if retries else "")
            + (f" | eta {duration(eta)}" if sent < self.total and math.isfinite(eta) else f" | {duration(elapsed)}")
        )
        self.out.write("\r" + line + " " * max(0, self.last_len - len(line)), ending="")
        self.out.flush()
        self.last_len = len(line)

    def end(self) -> None:
        if self.last_len:
            self.out.write("")
            self.last_len = 0


def plural(n: int, one: str, many: str = "") -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_time(text: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"{option}: {text!r} is not an ISO 8601 date and time (e.g. 2026-05-01T14:00:00+00:00).") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # as the API reads a time without a zone


def change_point(text: str | None, total: int, option: str) -> tuple[int | None, float | None]:
    """(first changed event index, None) for a share, (None, epoch seconds) for a time, (None, None) for no change."""
    text = (text or "").strip()
    if text.lower() in ("", "none", "off", "no"):
        return None, None
    share = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*%", text)
    if share:
        percent = float(share.group(1))
        if percent > 100:
            raise CommandError(f"{option}: a share must be from 0% to 100%.")
        return math.ceil(total * percent / 100), None
    return None, parse_time(text, option).timestamp()


# --- the commands' common part ------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    total: int
    batch: int
    rate: float
    seed: int
    run_id: str
    schedule: Backfill | RealTime
    url: str


@dataclass
class Totals:
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    errors: int = 0
    changed: int = 0
    requests: int = 0
    outcomes: int = 0  # accepted by /api/v1/outcomes
    counts: Counter = field(default_factory=Counter)  # the command's own counts (labelled, judged...)
    held: list[Label] = field(default_factory=list)  # labels not sent yet (a backfill sends none: its command says when they arrived)


class TrafficCommand(BaseCommand):
    """A management command that sends generated events through the API; subclasses build the events."""

    flag = "drift"  # the progress line's name for "after the change point"
    default_events = 20_000
    default_rate = 200.0
    progress: Progress | None = None  # the bar of the run being sent

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version is the model or prompt version here, as in the API client; Django's own --version (its release) gives way.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_traffic_arguments(self, parser) -> None:
        parser.add_argument("--events", type=int, default=self.default_events, help=f"how many events to send (default {self.default_events})")
        parser.add_argument("--rate", type=float, default=self.default_rate,
                            help=f"events per second in real time (default {self.default_rate:g}; ignored with a backfill)")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the site (default http://127.0.0.1:8000)")
        who = parser.add_mutually_exclusive_group()
        who.add_argument("--token", help="API token of an editor (default: a token of --user)")
        who.add_argument("--user", help=f"send as this user; created with the editor role if missing (default {DEFAULT_USER})")
        parser.add_argument("--batch", type=int, default=500, help=f"events per request, 1 to {MAX_BATCH} (default 500)")
        timing = parser.add_mutually_exclusive_group()
        timing.add_argument("--start", help="backfill: spread the events from this ISO time until now, as fast as possible")
        timing.add_argument("--backfill-hours", type=float, help="backfill: spread the events over the last H hours, as fast as possible")
        parser.add_argument("--seed", type=int, help="random seed; the same seed gives the same events (default: random, printed)")
        parser.add_argument("--run-id", help="part of every event id (default: random); an earlier run's id re-sends its events")
        ab = parser.add_argument_group("A/B tests", "Real-time runs serve the running experiments of their subject: each batch's units "
                                       "are assigned (POST /api/v1/experiments/KEY/assign), each event comes from its unit's variant, and "
                                       "each unit's outcomes go to POST /api/v1/outcomes once, the newest version converting better.")
        ab.add_argument("--ab-lift", type=float, metavar="X",
                        help="the newest version's true effect: X points on a proportion metric, x(1 + X) on a mean metric and on the "
                             "judge score (default 0.05 points, +10 %%; negative: the newest is worse)")
        ab.add_argument("--ab-refresh", type=float, default=30.0, metavar="S",
                        help="read the running experiments again every S seconds, so one started during the run is served (default 30)")
        ab.add_argument("--no-ab", action="store_true", help="serve every event from the chosen version, whatever experiments run")
        canary = parser.add_argument_group(
            "Canary rollouts", "A real-time run of the version in production asks GET /api/v1/route which version serves each unit "
            "(each answer kept 5 s) and sends each event from it; in a shadow stage it also mirrors the request to the candidate, "
            "logged with shadow: true. The switches below change the candidate's events only, never the baseline's.")
        canary.add_argument("--candidate-error-rate", type=float, default=0.0, metavar="RATE",
                            help="this share (0 to 1) of the candidate's requests fail, on top of the simulated errors (default 0)")
        canary.add_argument("--candidate-cost-factor", type=float, default=1.0, metavar="X",
                            help="the candidate's requests use X times the tokens, so the server prices them X times dearer "
                                 "(prompts; default 1)")
        canary.add_argument("--no-route", action="store_true", help="do not ask the route: every event from the chosen version")

    def traffic_options(self, o: dict) -> Run:
        """The common options checked, with the schedule of the events; nothing is sent yet."""
        total, batch = o["events"], o["batch"]
        if total < 1:
            raise CommandError("--events must be at least 1.")
        if not 1 <= batch <= MAX_BATCH:
            raise CommandError(f"--batch must be from 1 to {MAX_BATCH}.")
        if not o["rate"] > 0 or not math.isfinite(o["rate"]):
            raise CommandError("--rate must be a positive number of events per second.")
        seed = o["seed"] if o["seed"] is not None else secrets.randbelow(1_000_000)
        if seed < 0:
            raise CommandError("--seed must be >= 0.")
        run_id = o["run_id"] or uuid.uuid4().hex[:8]
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", run_id):
            raise CommandError("--run-id: 1 to 40 letters, digits, '.', '_' or '-'.")
        now = time.time()
        schedule: Backfill | RealTime = RealTime(now, o["rate"], total)
        if o["start"]:
            begin = parse_time(o["start"], "--start").timestamp()
            if begin >= now:
                raise CommandError("--start must be in the past: the backfill runs from --start until now.")
            schedule = Backfill(begin, now, total)
        elif o["backfill_hours"] is not None:
            if not 0 < o["backfill_hours"] <= 24 * 365:
                raise CommandError("--backfill-hours must be more than 0 and at most a year.")
            schedule = Backfill(now - o["backfill_hours"] * 3600, now, total)
        url = o["url"].rstrip("/")
        if not re.match(r"https?://", url):
            raise CommandError(f"--url must start with http:// or https://, got {url!r}.")
        if o["ab_lift"] is not None and not math.isfinite(o["ab_lift"]):
            raise CommandError("--ab-lift must be a number.")
        if not o["ab_refresh"] > 0 or not math.isfinite(o["ab_refresh"]):
            raise CommandError("--ab-refresh must be a positive number of seconds.")
        if not 0 <= o["candidate_error_rate"] <= 1:
            raise CommandError("--candidate-error-rate must be a share from 0 to 1.")
        if not o["candidate_cost_factor"] > 0 or not math.isfinite(o["candidate_cost_factor"]):
            raise CommandError("--candidate-cost-factor must be a positive number (1 for none).")
        injecting = o["candidate_error_rate"] > 0 or o["candidate_cost_factor"] != 1
        if injecting and (o["no_route"] or not isinstance(schedule, RealTime)):
            raise CommandError("--candidate-error-rate and --candidate-cost-factor act on the events the route sends to a canary's "
                               "candidate: they need a real-time run (no --start, --backfill-hours or --no-route).")
        return Run(total=total, batch=batch, rate=o["rate"], seed=seed, run_id=run_id, schedule=schedule, url=url)

    def api_for(self, run: Run, o: dict):
        """(Api, token, the local user when the token was taken from this site's database, else None)."""
        token, local_user = (o["token"], None) if o["token"] else self.token_for(o["user"] or DEFAULT_USER)
        return Api(run.url, token), token, local_user

    def token_for(self, username: str):
        """A fresh token of the user for this run (the site keeps no key to reuse), after revoking the user's demo
        tokens that no run has used lately; a missing user is created with the editor role."""
        user = get_user_model().objects.filter(username=username).first()
        try:
            if user is None:
                user = user_set_role(username=username, role="editor")
                self.stdout.write(f"Created user {username} with the editor role.")
        except DomainError as exc:
            raise CommandError(exc.message) from None
        stale_before = timezone.now() - STALE_TOKEN
        for token in api_token_list(user=user).filter(name=TOKEN_NAME, revoked_at__isnull=True):
            if (token.last_used_at or token.created_at) < stale_before:
                api_token_revoke(actor=user, token_id=token.pk)
        return api_token_create(user=user, name=TOKEN_NAME).key, user

    def experiments_for(self, api: Api, run: Run, o: dict, *, kind: str, name: str, version: int, unit_prefix: str,
                        say: Callable[[str], None]) -> Experiments | None:
        """The experiments a real-time run serves (None: --no-ab, or a backfill, which says why it serves none)."""
        if o["no_ab"]:
            return None
        if isinstance(run.schedule, Backfill):
            running = api.running_experiments(kind, name)
            if running:
                say(f"Running experiments of {kind} {name} ({', '.join(e['key'] for e in running)}) are not served by a backfill: the "
                    "server exposes a unit when it is assigned, now, and a backfill's events happened before. A real-time run serves them.")
            return None

        def note(line: str) -> None:
            # A test started or stopped mid-run: its line goes below the progress bar, which redraws under it.
            if self.progress is not None:
                self.progress.end()
            say(line)

        return Experiments(api, kind=kind, name=name, version=version, unit_prefix=unit_prefix, seed=run.seed, lift=o["ab_lift"],
                           refresh_every=o["ab_refresh"], say=note)

    def routes_for(self, api: Api, run: Run, o: dict, *, kind: str, name: str, version: int, say: Callable[[str], None]) -> Routes | None:
        """The routing of a real-time run of the version in production (None: --no-route, a backfill, or another version,
        each said when a rollout is running)."""
        if o["no_route"]:
            return None
        try:
            [probe] = api.route(kind, name, [f"probe-{run.run_id}"])
        except Refused as exc:
            if exc.status == 404:
                say(f"Not routed: {exc.message.rstrip('.')}.")
                return None
            raise
        rollout = probe.get("rollout")
        production = rollout["baseline"] if rollout else probe["version"]
        if rollout is None:
            described = "no canary rolling out now"
        else:
            described = (f"canary of v{rollout['candidate']} against v{rollout['baseline']}, stage {rollout['stage']} "
                         f"({rollout['traffic_percent']:g} %, {rollout['status']})")
        if isinstance(run.schedule, Backfill):
            if rollout is not None:
                say(f"Not routed ({described}): a backfill's events happened before the rollout's current stage; a real-time run routes them.")
            return None
        if production != version:
            say(f"Not routed: v{version} is not the version in production (v{production}); every event from v{version}.")
            if o["candidate_error_rate"] > 0 or o["candidate_cost_factor"] != 1:
                raise CommandError("--candidate-* switches need a run of the version in production (--stage production), which the route splits.")
            return None
        faults = [f"{o['candidate_error_rate']:.0%} of its requests fail" if o["candidate_error_rate"] > 0 else "",
                  f"its tokens x{o['candidate_cost_factor']:g}" if o["candidate_cost_factor"] != 1 else ""]
        faults = [f for f in faults if f]
        say(f"Routing each unit through GET /api/v1/route ({described})" + (f"; the candidate's events only: {', '.join(faults)}." if faults else "."))

        def note(line: str) -> None:
            if self.progress is not None:  # below the progress bar, which redraws under it
                self.progress.end()
            say(line)

        routes = Routes(api, kind=kind, name=name, version=version, seed=run.seed, error_rate=o["candidate_error_rate"],
                        cost_factor=o["candidate_cost_factor"], say=note)
        routes.rollout = None if rollout is None else (rollout["id"], rollout["stage"], rollout["traffic_percent"], rollout["status"])
        return routes

    @staticmethod
    def routes_text(routes: Routes | None) -> str:
        """', N served by a canary's candidate (...)' for the summary line; '' when not routed."""
        if routes is None:
            return ""
        t = routes.tally
        return (f", {t.candidate:,} served by a canary's candidate, {t.shadow:,} mirrored to it as shadow events, "
                f"{t.injected_errors:,} errors injected into them ({t.lookups:,} route answers)")

    @staticmethod
    def experiments_text(experiments: Experiments | None, totals: Totals) -> str:
        """', N served by experiments (...)' for the summary line; '' when none served anything."""
        if experiments is None or not experiments.tally:
            return ""
        return (f", {totals.counts['in_experiments']:,} served by A/B tests ({experiments.summary()}; "
                f"{totals.outcomes:,} outcomes accepted)")

    @staticmethod
    def mode(run: Run) -> str:
        if isinstance(run.schedule, Backfill):
            begin, end = run.schedule.bounds
            return f"backfill {when(begin)} .. {when(end)} as fast as possible, in batches of {run.batch:,}"
        return f"real time at {run.rate:,.0f} events/s (~{duration(run.total / run.rate)}), a request about every second"

    @staticmethod
    def point_when(run: Run, index: int | None, ts: float | None, what: str) -> str:
        """Where the change starts, in words: a time, or an event and about when it happens."""
        if ts is not None:
            return f"from {when(ts)}"
        if index is None:
            return ""
        at = float(run.schedule.times(np.array([index]), np.array([0.0]))[0]) if index < run.total else None
        return f"from event {index:,}" + (f" (~{when(at)})" if at is not None else f" (after the last one: no {what})")

    def send(self, api: Api, run: Run, build: Callable[[int, int], Batch], *, show_progress: bool = True) -> tuple[Totals, float]:
        """Build and post the events in batches (real time: each batch once its last event's time has come), then the
        outcomes of the batch's units. The batches' labels are held: real time posts each once it has arrived (its
        event's time plus its delay), after the events, and what is still pending when the run ends or is interrupted;
        a backfill leaves them all in `totals.held` for its command.

        Building a batch assigns its units (streams.Experiments), so a batch is built one ahead: while the previous one
        waits for its time, before any of its own requests happen, as serving code assigns a unit before serving it.
        Real time starts REALTIME_LEAD_S after this call for the same reason: the first batch's units are assigned first.
        """
        realtime = isinstance(run.schedule, RealTime)
        chunk = max(1, min(run.batch, math.ceil(run.rate))) if realtime else run.batch  # real time: about one request a second
        totals = Totals()
        progress = self.progress = Progress(self.stdout, run.total, flag=self.flag, enabled=show_progress)
        started = time.monotonic()
        if realtime:
            run.schedule.restart(time.time() + REALTIME_LEAD_S)

        def refused(exc: Refused | Unreachable, what: str) -> CommandError:
            progress.end()
            stored = f"{totals.accepted:,} events of this run were stored before it." if totals.accepted else "Nothing of this run was stored."
            reason = f"The server refused {what} with {exc}" if isinstance(exc, Refused) else f"Cannot reach the server at {api.url}: {exc}"
            return CommandError(f"{reason}. {stored}")

        def built(start: int) -> tuple[int, int, Batch] | None:
            if start >= run.total:
                return None
            stop = min(run.total, start + chunk)
            try:
                return start, stop, build(start, stop)
            except (Refused, Unreachable) as exc:
                raise refused(exc, f"the assignment of the units of events {start:,} to {stop - 1:,}") from None

        def post_labels(labels: list[Label]) -> None:
            try:
                totals.counts["labelled"] += api.post_labels(labels)
            except (Refused, Unreachable) as exc:
                raise refused(exc, f"{plural(len(labels), 'label')}") from None

        def arrived(until: float) -> list[Label]:
            """The held labels that have arrived by `until`, taken out of `totals.held`."""
            due = [x for x in totals.held if x.arrives <= until]
            if due:
                totals.held = [x for x in totals.held if x.arrives > until]
            return due

        try:
            upcoming = built(0)
            while upcoming is not None:
                start, stop, batch = upcoming
                upcoming = built(stop)
                if realtime:
                    wait = batch.last_ts - time.time()
                    if wait > 0:
                        time.sleep(wait)
                what = f"events {start:,} to {stop - 1:,}"
                try:
                    answer = api.post_events(batch.events)
                    totals.accepted += int(answer.get("accepted", 0))
                    totals.duplicates += int(answer.get("duplicates", 0))
                    if batch.outcomes:
                        what = f"the outcomes of events {start:,} to {stop - 1:,}"
                        totals.outcomes += int(api.post_outcomes(batch.outcomes).get("accepted", 0))
                except (Refused, Unreachable) as exc:
                    raise refused(exc, what) from None
                totals.held += batch.labels
                if realtime and (due := arrived(time.time())):
                    post_labels(due)
                totals.requests += 1
                totals.sent = stop
                totals.errors += batch.errors
                totals.changed += int(batch.changed.sum())
                totals.counts.update(batch.counts)
                progress.draw(sent=totals.sent, duplicates=totals.duplicates, errors=totals.errors, retries=api.retries,
                              changed=bool(batch.changed[-1]), force=totals.requests == 1 or stop == run.total)
            if realtime and totals.held:  # the last ones go with the run's end, rather than never
                post_labels(arrived(math.inf))
        except KeyboardInterrupt:
            progress.end()
            if realtime and totals.held:  # what is on its way goes now, rather than never
                post_labels(arrived(math.inf))
            raise CommandError(f"Interrupted after {totals.sent:,} events ({totals.accepted:,} accepted, "
                               f"{totals.counts['labelled']:,} labelled).", returncode=130) from None
        progress.end()
        return totals, started

    def done_line(self, api: Api, totals: Totals, started: float, subject: str, extra: str) -> str:
        """The summary: what was sent, how fast, what the server said; `extra` lists the run's own counts."""
        elapsed = time.monotonic() - started
        return (
            f"Done: {totals.sent:,} events for {subject} in {duration(elapsed)} ({totals.sent / max(elapsed, 1e-9):,.0f} ev/s): "
            f"{totals.accepted:,} accepted, {totals.duplicates:,} duplicates, {totals.errors:,} served errors "
            f"({totals.errors / max(totals.sent, 1):.1%}), {extra}, "
            f"{plural(totals.requests, 'request')}" + (f", {plural(api.retries, 'retry', 'retries')}" if api.retries else "") + "."
        )
