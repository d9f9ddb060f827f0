"""`manage.py simulate_traffic`: demo traffic sent through the real ingestion API, with a drift from a chosen point.

    python manage.py simulate_traffic --model fraud-detector --events 20000 --backfill-hours 24 --drift-at 50% --set-reference
    python manage.py simulate_traffic --model fraud-detector --stage production --rate 200 --drift-at 2026-05-01T14:00
    python manage.py simulate_traffic --model fraud-detector --backfill-hours 24 --latency-growth 3  # 3x slower by the end

Events go out as `POST {url}/api/v1/events` in batches, exactly as a serving
fleet would send them: nothing is written to the database for events. The
only ORM use is getting a token for `--user` (when no `--token` is given),
`--set-reference`, which stores the pre-drift distribution as the version's
reference, and a backfill's late labels (below).

Events carry no ground truth: about 30 % of the successful requests get their
label later, `--label-delay` S to 6 S after the event. Real time posts each to
`POST {url}/api/v1/labels` once it is due (what is pending when the run ends
goes then). A backfill's labels were due in the past: against this site they are
stored through the labels service at the time each came due, and the backfilled
day's hourly performance windows computed as they stood then; against another
site they go through the API at the end. Labels not due yet are not sent.

A real-time run serves the model's running A/B tests as serving code would:
each batch's units are assigned first (`POST {url}/api/v1/experiments/KEY/assign`),
each event comes from its unit's variant, and each unit's outcomes (the
experiment's outcome metrics, the newest version converting better by
--ab-lift) go to `POST {url}/api/v1/outcomes`; a test started during the run
is served from the next read of the running tests (--ab-refresh).

Every random number of event i comes from a block seeded by (seed, i // 10,000),
so a seed gives the same events whatever the batch size or rate; the drift
and the latency growth only transform those numbers. Event ids carry the seed and a run id, so a
second run sends new events (`--run-id` of an earlier run re-sends its events,
which the server counts as duplicates).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime
from urllib.parse import quote

import numpy as np
from django.core.management.base import CommandError

from demo.simulation import LABEL_DELAY_SPREAD, LABEL_SHARE, PROFILES, Categorical, Draws, Profile, profile_for, simulate
from demo.streams import LABEL_JOB_S, ModelStream, label_jobs
from demo.traffic import Api, RealTime, Totals, TrafficCommand, change_point, server_errors
from mlops_site.exceptions import DomainError
from monitoring import columnar, services
from monitoring.models import Event, ReferenceSource
from monitoring.services.labels import labels_attach
from monitoring.services.performance import WINDOW, performance_compute
from registry.models import ModelVersion
from registry.services.tokens import TokenRefused, api_token_authenticate

REFERENCE_ROWS = 20_000
BACKFILL_LABEL_DELAY_S = 3600.0  # a backfill's labels come 1 to 6 hours after their events (chargebacks, reviews)
LIVE_LABEL_DELAY_S = 60.0  # the live demo's: 1 to 6 minutes, so they show while someone watches


class Command(TrafficCommand):
    help = (
        "Send realistic demo traffic for a model version through the real ingestion API (POST /api/v1/events), "
        "with a drift of chosen features from a chosen point and optionally a latency that climbs. Progress on the console."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="registered model name, e.g. fraud-detector")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--version", type=int, help="version number (default: the production version, else the latest)")
        which.add_argument("--stage", help="the version now in this stage (staging or production)")
        parser.add_argument("--drift-at", default="50%",
                            help="where the drift starts: a share of the events (50%%), an ISO time (no zone: UTC), or none (default 50%%)")
        parser.add_argument("--drift-features", help="comma-separated features that drift (default per profile; fraud: amount,merchant_category)")
        parser.add_argument("--drift-size", type=float, default=1.0, help="strength of the drift, 0 for none (default 1.0)")
        parser.add_argument("--latency-growth", type=float, default=1.0, metavar="X",
                            help="the model gets slower: its latency is multiplied by a factor growing linearly in time from 1 at the "
                                 "start of the run to X at its end (the backfill's span, or --events / --rate in real time), "
                                 "whatever the drift; failed requests keep their latency (default 1.0: none)")
        parser.add_argument("--latency-start", type=float, default=1.0, metavar="S",
                            help="the latency factor at the start of the run instead of 1 (S = X: a constant factor, e.g. a live "
                                 "stream that carries on where a backfill with --latency-growth X ended)")
        parser.add_argument("--profile", choices=sorted(PROFILES), help="kind of traffic (default: from the model name; fraud otherwise)")
        parser.add_argument("--label-delay", type=float, metavar="S",
                            help=f"ground truth comes late: about {LABEL_SHARE:.0%} of the successful requests get a label through "
                                 f"POST /api/v1/labels, each S to {LABEL_DELAY_SPREAD:g} x S seconds after its event (default: "
                                 f"{BACKFILL_LABEL_DELAY_S:.0f} s, 1 to 6 hours, for a backfill; {LIVE_LABEL_DELAY_S:.0f} s in real time, "
                                 "the demo's clock)")
        self.add_traffic_arguments(parser)
        parser.add_argument("--set-reference", action="store_true",
                            help=f"also set the version's reference to the pre-drift distribution ({REFERENCE_ROWS:,} rows)")

    def handle(self, *args, **o):
        run = self.traffic_options(o)
        realtime = isinstance(run.schedule, RealTime)
        label_delay = o["label_delay"] if o["label_delay"] is not None else LIVE_LABEL_DELAY_S if realtime else BACKFILL_LABEL_DELAY_S
        if not label_delay > 0 or not math.isfinite(label_delay):
            raise CommandError("--label-delay must be a positive number of seconds.")
        if not o["drift_size"] >= 0 or not math.isfinite(o["drift_size"]):
            raise CommandError("--drift-size must be a number >= 0.")
        for option in ("latency_growth", "latency_start"):
            if not o[option] > 0 or not math.isfinite(o[option]):
                raise CommandError(f"--{option.replace('_', '-')} must be a positive number (1 for none).")
        profile = PROFILES[o["profile"] or profile_for(o["model"])]
        drift_features = self._drift_features(profile, o["drift_features"])
        drift_index, drift_ts = change_point(o["drift_at"], run.total, "--drift-at")
        if not drift_features or o["drift_size"] == 0:
            drift_index, drift_ts = None, None

        api, token, local_user = self.api_for(run, o)
        with server_errors(run.url):
            me = api.get("/api/v1/me")
            version = self._resolve_version(api, o["model"], o["version"], o["stage"])

        model = o["model"]
        say = self.stdout.write if o["verbosity"] > 0 else (lambda *a, **k: None)  # -v 0: the summary line only
        say(
            f"Sending {run.total:,} {profile.name} events for {model} v{version} to {run.url} as {me.get('username')} "
            f"({me.get('role') or 'no role'}): {self.mode(run)}; seed {run.seed}, run {run.run_id}."
        )
        say(
            f"Drift of {', '.join(sorted(drift_features))} (size {o['drift_size']:g}) {self.point_when(run, drift_index, drift_ts, 'drift')}."
            if drift_index is not None or drift_ts is not None else "No drift."
        )
        if (o["latency_start"], o["latency_growth"]) != (1.0, 1.0):
            say(f"Latency x{o['latency_start']:g} at the start of the run, x{o['latency_growth']:g} at its end, linearly in between.")
        if o["set_reference"]:
            rows = self._set_reference(profile, run.seed, model, version, token, local_user)
            say(f"Reference of {model} v{version} set: {rows:,} rows of the pre-drift distribution.")
        if o["candidate_cost_factor"] != 1:
            raise CommandError("--candidate-cost-factor: a model's events carry no tokens to price; use it with simulate_llm_traffic.")
        with server_errors(run.url):
            experiments = self.experiments_for(api, run, o, kind="model", name=model, version=version, unit_prefix=profile.unit_prefix, say=say)
            routes = self.routes_for(api, run, o, kind="model", name=model, version=version, say=say)

        stream = ModelStream(
            profile=profile, seed=run.seed, run_id=run.run_id, schedule=run.schedule, model=model, version=version, experiments=experiments,
            drift_index=drift_index, drift_ts=drift_ts, drift_size=o["drift_size"], drift_features=drift_features,
            latency_growth=o["latency_growth"], latency_start=o["latency_start"], routes=routes, label_delay=label_delay,
        )
        say(f"Labels through POST /api/v1/labels, each {label_delay:g} to {LABEL_DELAY_SPREAD * label_delay:g} s after its event.")
        totals, started = self.send(api, run, stream.build, show_progress=o["verbosity"] > 0)
        if totals.held:
            with server_errors(run.url):
                say(self._backfill_labels(api, totals, token, local_user, model, version))
        extra = (f"{totals.counts['labelled']:,} labelled, {totals.changed:,} drifted" + self.experiments_text(experiments, totals)
                 + self.routes_text(routes))
        self.stdout.write(
            self.done_line(api, totals, started, f"{model} v{version}", extra)
            + f" Monitoring: {run.url}/monitoring/models/{quote(model, safe='')}/versions/{version}/"
        )

    # -- options ---------------------------------------------------------------------------------

    def _drift_features(self, profile: Profile, text: str | None) -> set[str]:
        names = [n.strip() for n in text.split(",") if n.strip()] if text is not None else list(profile.default_drift)
        known = [spec.name for spec in profile.features]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise CommandError(f"--drift-features: no feature {', '.join(unknown)} in the {profile.name} profile; it has {', '.join(known)}.")
        return set(names)

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

    # -- a backfill's late labels ---------------------------------------------------------------------------

    def _backfill_labels(self, api: Api, totals: Totals, token: str, local_user, model: str, version: int) -> str:
        """The labels of a backfill's events that have arrived by now, each when it arrived, then the hourly performance
        windows of those hours as they stood then; a line saying what was done.

        A label's arrival time is in the past, and the API stores a label when it receives it. So when this site's
        database holds the events, the labels go through the labels service in this process on the demo clock: every
        LABEL_JOB_S, what arrived since, and before each whole hour the 24-hour window ending then is computed (what the
        hourly task would have stored), so the performance page has the day's history at once. Elsewhere they go
        through the API now. Labels still on their way at the end of the run are not sent.
        """
        now = time.time()
        jobs = label_jobs(totals.held, every=LABEL_JOB_S, until=now)
        arrived = [label for _, labels in jobs for label in labels]
        later = len(totals.held) - len(arrived)
        totals.held = []
        note = f"; {later:,} more would arrive after now, not sent" if later else ""
        if not arrived:
            return f"No label of this backfill has arrived yet{note}."
        user = self._local_user(token, local_user)
        mv = ModelVersion.objects.filter(model__name=model, version=version).first()
        if user is None or mv is None or not Event.objects.filter(model_version=mv, event_id=arrived[0].event_id).exists():
            totals.counts["labelled"] += api.post_labels(arrived)
            return f"{totals.counts['labelled']:,} labels of this backfill sent through the API now (stored as arriving now){note}."
        hour, windows = math.ceil(jobs[0][0] / 3600) * 3600, 0
        for at, labels in [*jobs, (now, [])]:
            while hour < at or (not labels and hour <= at):  # the hourly windows that ended before this job (one at its time sees it)
                end = datetime.fromtimestamp(hour, UTC)
                performance_compute(model_version=mv, start=end - WINDOW, end=end)
                hour, windows = hour + 3600, windows + 1
            if labels:
                payload = {"labels": [x.payload() for x in labels]}
                totals.counts["labelled"] += labels_attach(payload=payload, actor=user, now=datetime.fromtimestamp(at, UTC))["updated"]
        return (f"{totals.counts['labelled']:,} labels of this backfill stored as they arrived (every {LABEL_JOB_S / 60:g} minutes), "
                f"and {windows} hourly performance windows of {model} v{version}{note}.")

    @staticmethod
    def _local_user(token: str, user):
        """The token's user in this site's database, or None."""
        if user is not None:
            return user
        try:
            return api_token_authenticate(token).user
        except TokenRefused:
            return None

    # -- the reference ---------------------------------------------------------------------------------

    def _set_reference(self, profile: Profile, seed: int, model: str, version: int, token: str, user) -> int:
        """The pre-drift distribution (an independent sample, same generator) as the version's reference, through the service."""
        user = self._local_user(token, user)
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

