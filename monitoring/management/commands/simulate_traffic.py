"""`manage.py simulate_traffic`: demo traffic sent through the real ingestion API, with a drift from a chosen point.

    python manage.py simulate_traffic --model fraud-detector --events 20000 --backfill-hours 24 --drift-at 50% --set-reference
    python manage.py simulate_traffic --model fraud-detector --stage production --rate 200 --drift-at 2026-05-01T14:00

Events go out as `POST {url}/api/v1/events` in batches, exactly as a serving
fleet would send them: nothing is written to the database for events. The
only ORM use is getting a token for `--user` (when no `--token` is given) and
`--set-reference`, which stores the pre-drift distribution as the version's
reference.

Every random number of event i comes from a block seeded by (seed, i // 10,000),
so a seed gives the same events whatever the batch size or rate; the drift
only transforms those numbers. Event ids carry the seed and a run id, so a
second run sends new events (`--run-id` of an earlier run re-sends its events,
which the server counts as duplicates).
"""

from __future__ import annotations

import math
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import numpy as np
import requests
from django.core.management.base import BaseCommand, CommandError

from monitoring.simulation import FRAUD, PROFILES, Categorical, Draws, Profile, profile_for, simulate  # noqa: F401 (FRAUD: tests)

REFERENCE_ROWS = 20_000
MAX_BATCH = 10_000  # the API's limit per request
DEFAULT_USER = "traffic-bot"
RETRIES = 3  # per batch, on connection problems and 5xx (event ids make a re-sent batch harmless)


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

    def times(self, index: np.ndarray, jitter: np.ndarray) -> np.ndarray:
        return np.interp((index + jitter) / self.total, self.cdf, self.grid)


class RealTime:
    """Event i at start + (i + jitter) / rate: sent once that moment has come."""

    def __init__(self, start: float, rate: float):
        self.start, self.rate = start, rate

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

    def post_events(self, events: list[dict]) -> dict:
        return self.request("POST", "/api/v1/events", payload={"events": events}, retry=True)


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


# --- the console -----------------------------------------------------------------------------------


class Progress:
    """One line redrawn with \\r: a bar, events sent, rate, duplicates, served errors, retries."""

    def __init__(self, out, total: int, *, width: int = 24, every: float = 0.2, enabled: bool = True):
        self.out, self.total, self.width, self.every, self.enabled = out, total, width, every, enabled
        self.started = time.monotonic()
        self.last_draw = -math.inf
        self.last_len = 0

    def draw(self, *, sent: int, duplicates: int, errors: int, retries: int, drifting: bool, force: bool = False) -> None:
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
            f" | drift {'ON' if drifting else 'off'}" + (f" | retries {retries}" if retries else "")
            + (f" | eta {_duration(eta)}" if sent < self.total and math.isfinite(eta) else f" | {_duration(elapsed)}")
        )
        self.out.write("\r" + line + " " * max(0, self.last_len - len(line)), ending="")
        self.out.flush()
        self.last_len = len(line)

    def end(self) -> None:
        if self.last_len:
            self.out.write("")
            self.last_len = 0


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _parse_time(text: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CommandError(f"{option}: {text!r} is not an ISO 8601 date and time (e.g. 2026-05-01T14:00:00+00:00).") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)  # as the API reads a time without a zone


# --- the command -----------------------------------------------------------------------------------


@dataclass
class Totals:
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    errors: int = 0
    labelled: int = 0
    drifted: int = 0
    requests: int = 0


class Command(BaseCommand):
    help = (
        "Send realistic demo traffic for a model version through the real ingestion API (POST /api/v1/events), "
        "with a drift of chosen features from a chosen point. Progress on the console."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version is the model version here, as in the API client; Django's own --version (its release) gives way.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="registered model name, e.g. fraud-detector")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--version", type=int, help="version number (default: the production version, else the latest)")
        which.add_argument("--stage", help="the version now in this stage (staging or production)")
        parser.add_argument("--events", type=int, default=20_000, help="how many events to send (default 20000)")
        parser.add_argument("--rate", type=float, default=200.0, help="events per second in real time (default 200; ignored with a backfill)")
        parser.add_argument("--drift-at", default="50%",
                            help="where the drift starts: a share of the events (50%%), an ISO time (no zone: UTC), or none (default 50%%)")
        parser.add_argument("--drift-features", help="comma-separated features that drift (default per profile; fraud: amount,merchant_category)")
        parser.add_argument("--drift-size", type=float, default=1.0, help="strength of the drift, 0 for none (default 1.0)")
        parser.add_argument("--profile", choices=sorted(PROFILES), help="kind of traffic (default: from the model name; fraud otherwise)")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="the site (default http://127.0.0.1:8000)")
        who = parser.add_mutually_exclusive_group()
        who.add_argument("--token", help="API token of an editor (default: a token of --user)")
        who.add_argument("--user", help=f"send as this user; created with the editor role if missing (default {DEFAULT_USER})")
        parser.add_argument("--batch", type=int, default=500, help=f"events per request, 1 to {MAX_BATCH} (default 500)")
        when = parser.add_mutually_exclusive_group()
        when.add_argument("--start", help="backfill: spread the events from this ISO time until now, as fast as possible")
        when.add_argument("--backfill-hours", type=float, help="backfill: spread the events over the last H hours, as fast as possible")
        parser.add_argument("--seed", type=int, help="random seed; the same seed gives the same events (default: random, printed)")
        parser.add_argument("--run-id", help="part of every event id (default: random); an earlier run's id re-sends its events")
        parser.add_argument("--set-reference", action="store_true",
                            help=f"also set the version's reference to the pre-drift distribution ({REFERENCE_ROWS:,} rows)")

    def handle(self, *args, **o):
        total, batch = o["events"], o["batch"]
        if total < 1:
            raise CommandError("--events must be at least 1.")
        if not 1 <= batch <= MAX_BATCH:
            raise CommandError(f"--batch must be from 1 to {MAX_BATCH}.")
        if not o["rate"] > 0 or not math.isfinite(o["rate"]):
            raise CommandError("--rate must be a positive number of events per second.")
        if not o["drift_size"] >= 0 or not math.isfinite(o["drift_size"]):
            raise CommandError("--drift-size must be a number >= 0.")
        profile = PROFILES[o["profile"] or profile_for(o["model"])]
        drift_features = self._drift_features(profile, o["drift_features"])
        seed = o["seed"] if o["seed"] is not None else secrets.randbelow(1_000_000)
        if seed < 0:
            raise CommandError("--seed must be >= 0.")
        run_id = o["run_id"] or uuid.uuid4().hex[:8]
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", run_id):
            raise CommandError("--run-id: 1 to 40 letters, digits, '.', '_' or '-'.")
        now = time.time()
        if o["backfill_hours"] is not None or o["start"]:
            if o["start"]:
                begin = _parse_time(o["start"], "--start").timestamp()
                if begin >= now:
                    raise CommandError("--start must be in the past: the backfill runs from --start until now.")
            else:
                if not 0 < o["backfill_hours"] <= 24 * 365:
                    raise CommandError("--backfill-hours must be more than 0 and at most a year.")
                begin = now - o["backfill_hours"] * 3600
            schedule: Backfill | RealTime = Backfill(begin, now, total)
        else:
            schedule = RealTime(now, o["rate"])
        drift_index, drift_ts = self._drift_point(o["drift_at"], total)
        if not drift_features or o["drift_size"] == 0:
            drift_index, drift_ts = None, None

        url = o["url"].rstrip("/")
        if not re.match(r"https?://", url):
            raise CommandError(f"--url must start with http:// or https://, got {url!r}.")
        token, local_user = (o["token"], None) if o["token"] else self._token_for(o["user"] or DEFAULT_USER)
        api = Api(url, token)
        try:
            me = api.get("/api/v1/me")
            version = self._resolve_version(api, o["model"], o["version"], o["stage"])
        except Refused as exc:
            raise CommandError(f"The server at {url} refused with {exc}.") from None
        except Unreachable as exc:
            raise CommandError(f"Cannot reach the server at {url}: {exc}. Start it with `make run`, or pass --url.") from None

        model = o["model"]
        drift_when = ""
        if drift_ts is not None:
            drift_when = f"from {_when(drift_ts)}"
        elif drift_index is not None:
            at = float(schedule.times(np.array([drift_index]), np.array([0.0]))[0]) if drift_index < total else None
            drift_when = f"from event {drift_index:,}" + (f" (~{_when(at)})" if at is not None else " (after the last one: no drift)")
        if isinstance(schedule, Backfill):
            mode = f"backfill {_when(schedule.grid[0])} .. {_when(schedule.grid[-1])} as fast as possible, in batches of {batch:,}"
        else:
            mode = f"real time at {o['rate']:,.0f} events/s (~{_duration(total / o['rate'])}), a request about every second"
        say = self.stdout.write if o["verbosity"] > 0 else (lambda *a, **k: None)  # -v 0: the summary line only
        say(
            f"Sending {total:,} {profile.name} events for {model} v{version} to {url} as {me.get('username')} ({me.get('role') or 'no role'}): "
            f"{mode}; seed {seed}, run {run_id}."
        )
        say(
            f"Drift of {', '.join(sorted(drift_features))} (size {o['drift_size']:g}) {drift_when}."
            if drift_index is not None or drift_ts is not None else "No drift."
        )
        if o["set_reference"]:
            rows = self._set_reference(profile, seed, model, version, token, local_user)
            say(f"Reference of {model} v{version} set: {rows:,} rows of the pre-drift distribution.")

        totals, started = self._send(api, profile, schedule, seed, run_id, model, version, total, batch, drift_index, drift_ts,
                                     drift_features, o["drift_size"], show_progress=o["verbosity"] > 0)
        elapsed = time.monotonic() - started
        self.stdout.write(
            f"Done: {totals.sent:,} events for {model} v{version} in {_duration(elapsed)} ({totals.sent / max(elapsed, 1e-9):,.0f} ev/s): "
            f"{totals.accepted:,} accepted, {totals.duplicates:,} duplicates, {totals.errors:,} served errors "
            f"({totals.errors / max(totals.sent, 1):.1%}), {totals.labelled:,} labelled, {totals.drifted:,} drifted, "
            f"{_count(totals.requests, 'request')}" + (f", {_count(api.retries, 'retry', 'retries')}" if api.retries else "") + ". "
            f"Monitoring: {url}/monitoring/models/{quote(model, safe='')}/versions/{version}/"
        )

    # -- options ---------------------------------------------------------------------------------

    def _drift_features(self, profile: Profile, text: str | None) -> set[str]:
        names = [n.strip() for n in text.split(",") if n.strip()] if text is not None else list(profile.default_drift)
        known = [spec.name for spec in profile.features]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise CommandError(f"--drift-features: no feature {', '.join(unknown)} in the {profile.name} profile; it has {', '.join(known)}.")
        return set(names)

    def _drift_point(self, text: str, total: int) -> tuple[int | None, float | None]:
        """(first drifted event index, None) for a share, (None, epoch seconds) for a time, (None, None) for no drift."""
        text = (text or "").strip()
        if text.lower() in ("", "none", "off", "no"):
            return None, None
        share = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*%", text)
        if share:
            percent = float(share.group(1))
            if percent > 100:
                raise CommandError("--drift-at: a share must be from 0% to 100%.")
            return math.ceil(total * percent / 100), None
        return None, _parse_time(text, "--drift-at").timestamp()

    def _token_for(self, username: str):
        """An existing token of the user, else a new one; a missing user is created with the editor role."""
        from django.contrib.auth import get_user_model
        from rest_framework.authtoken.models import Token

        from mlops_site.exceptions import DomainError
        from registry.roles_admin import user_set_role, user_token_refresh

        user = get_user_model().objects.filter(username=username).first()
        try:
            if user is None:
                user = user_set_role(username=username, role="editor")
                self.stdout.write(f"Created user {username} with the editor role.")
        except DomainError as exc:
            raise CommandError(exc.message) from None
        key = Token.objects.filter(user=user).values_list("key", flat=True).first()
        return key or user_token_refresh(user=user), user

    def _resolve_version(self, api: Api, model: str, number: int | None, stage: str | None) -> int:
        name = quote(model, safe="")
        if number is not None:
            return int(api.get(f"/api/v1/models/{name}/versions/{number}")["version"])
        if stage:
            return int(api.get(f"/api/v1/models/{name}/stages/{quote(stage, safe='')}")["version"])
        found = api.get(f"/api/v1/models/{name}?versions=1")
        chosen = found.get("production_version") or found.get("latest_version")
        if not chosen:
            raise CommandError(f"Model {model} has no versions yet; register one first.")
        return int(chosen)

    # -- the reference ---------------------------------------------------------------------------------

    def _set_reference(self, profile: Profile, seed: int, model: str, version: int, token: str, user) -> int:
        """The pre-drift distribution (an independent sample, same generator) as the version's reference, through the service."""
        from rest_framework.authtoken.models import Token

        from mlops_site.exceptions import DomainError
        from monitoring import columnar, services
        from monitoring.models import ReferenceSource
        from registry.models import ModelVersion

        if user is None:
            found = Token.objects.select_related("user").filter(key=token).first()
            user = found.user if found else None
            if user is None:
                raise CommandError("--set-reference writes to this site's database, and the token's user is not in it.")
        mv = ModelVersion.objects.filter(model__name=model, version=version).first()
        if mv is None:
            raise CommandError(f"--set-reference: {model} v{version} is not in this site's database (is --url another site?).")
        rows = simulate(profile, Draws(profile, seed, stream=1).rows(0, REFERENCE_ROWS), np.zeros(REFERENCE_ROWS, bool), 0.0, set())
        columns: dict[str, np.ndarray] = {}
        for spec in profile.features:
            values = rows["features"][spec.name]
            columns[spec.name] = values.astype(str) if isinstance(spec, Categorical) else values.astype(np.float64)
        columns[columnar.PREDICTION] = np.where(rows["error"], np.nan, rows["prediction"])
        try:
            reference = services.reference_set_from_columns(
                model_version=mv, columns=columns, source=ReferenceSource.UPLOAD, description="simulate_traffic baseline", actor=user
            )
        except DomainError as exc:
            raise CommandError(f"--set-reference: {exc.message}") from None
        return reference.rows

    # -- sending -----------------------------------------------------------------------------------

    def _send(self, api, profile, schedule, seed, run_id, model, version, total, batch, drift_index, drift_ts, drift_features, size, *,
              show_progress=True):
        draws = Draws(profile, seed, stream=0)
        realtime = isinstance(schedule, RealTime)
        chunk = max(1, min(batch, math.ceil(schedule.rate))) if realtime else batch  # real time: about one request a second
        totals = Totals()
        progress = Progress(self.stdout, total, enabled=show_progress)
        started = time.monotonic()
        try:
            for start in range(0, total, chunk):
                stop = min(total, start + chunk)
                d = draws.rows(start, stop)
                index = np.arange(start, stop)
                ts = schedule.times(index, d["jitter"])
                if realtime:
                    wait = float(ts[-1]) - time.time()
                    if wait > 0:
                        time.sleep(wait)
                if drift_index is not None:
                    drifted = index >= drift_index
                elif drift_ts is not None:
                    drifted = ts >= drift_ts
                else:
                    drifted = np.zeros(len(index), bool)
                rows = simulate(profile, d, drifted, size, drift_features)
                events = self._events(rows, ts, f"sim-{seed}-{run_id}-", start, model, version, profile)
                try:
                    answer = api.post_events(events)
                except (Refused, Unreachable) as exc:
                    progress.end()
                    stored = f"{totals.accepted:,} events of this run were stored before it." if totals.accepted else "Nothing of this run was stored."
                    reason = (f"The server refused events {start:,} to {stop - 1:,} with {exc}" if isinstance(exc, Refused)
                              else f"Cannot reach the server at {api.url}: {exc}")
                    raise CommandError(f"{reason}. {stored}") from None
                totals.requests += 1
                totals.sent = stop
                totals.accepted += int(answer.get("accepted", 0))
                totals.duplicates += int(answer.get("duplicates", 0))
                totals.errors += int(rows["error"].sum())
                totals.labelled += int(rows["labelled"].sum())
                totals.drifted += int(drifted.sum())
                progress.draw(sent=totals.sent, duplicates=totals.duplicates, errors=totals.errors, retries=api.retries,
                              drifting=bool(drifted[-1]), force=totals.requests == 1 or stop == total)
        except KeyboardInterrupt:
            progress.end()
            raise CommandError(f"Interrupted after {totals.sent:,} events ({totals.accepted:,} accepted).", returncode=130) from None
        progress.end()
        return totals, started

    @staticmethod
    def _events(rows: dict, ts: np.ndarray, prefix: str, start: int, model: str, version: int, profile: Profile) -> list[dict]:
        features = {name: values.tolist() for name, values in rows["features"].items()}
        names = list(features)
        prediction, label = rows["prediction"].tolist(), rows["label"].tolist()
        labelled, error = rows["labelled"].tolist(), rows["error"].tolist()
        latency, unit = rows["latency_ms"].tolist(), rows["unit"].tolist()
        events = []
        for j in range(len(ts)):
            event = {
                "event_id": f"{prefix}{start + j}",
                "model": model,
                "version": version,
                "timestamp": _iso(float(ts[j])),
                "latency_ms": latency[j],
                "error": error[j],
                "unit_id": f"{profile.unit_prefix}{unit[j]:06d}",
                "features": {name: features[name][j] for name in names},
            }
            if not error[j]:
                event["prediction"] = prediction[j]
            if labelled[j]:
                event["label"] = label[j]
            events.append(event)
        return events

