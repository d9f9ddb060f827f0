"""`manage.py simulate_llm_traffic`: demo requests of a prompt version sent through the real ingestion API, with a change of answer length.

    python manage.py simulate_llm_traffic --prompt summarize --environment prod --events 4000 --backfill-hours 24 \\
        --change-at 50% --output-growth 2 --budget-usd auto
    python manage.py simulate_llm_traffic --prompt summarize --version 3 --rate 5 --dry-run

Each event is one served LLM request (prompt, version, tokens, latency, time to
first token, guardrail, feedback, judge score, faithfulness) sent as
`POST {url}/api/v1/events` in batches. No cost is sent: the server prices each
event with its price table (`manage.py import_prices --defaults`). This command
reads the same table (`GET /api/v1/prices`) to say beforehand what the run will
cost, and `--budget-usd` sets a daily budget of the prompt (`POST /api/v1/budgets`);
`auto` sizes it so that this run's spend in the current UTC day is about 88 % of
it: the 80 % alert fires, the 100 % one does not. `--dry-run` prints all that and sends nothing.

A real-time run serves the prompt's running A/B tests as `simulate_traffic` does
for a model: units assigned first, each request from its unit's variant (the
newest version's answers judged better by --ab-lift: judge score and thumbs up
come with the events), outcome metrics sent to `/api/v1/outcomes`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import quote

import numpy as np
from django.core.management.base import CommandError

from demo.simulation import after_point
from demo.simulation_llm import LLM_PROFILES, LlmDraws, LlmProfile, llm_profile_for, simulate_llm, token_cost
from demo.streams import LlmStream
from demo.traffic import Api, Refused, Run, TrafficCommand, change_point, plural, server_errors
from monitoring import pricing

ENVIRONMENTS = ("prod", "staging", "dev")
AUTO_BUDGET_SHARE = 0.88  # auto: today's spend of the run is this share of the budget (2 significant figures move it by at most 5 %)
THRESHOLDS = [0.8, 1.0]
ESTIMATE_CHUNK = 100_000


@dataclass
class Phase:
    """Sums over the requests before (or after) the change, for their means."""

    requests: int = 0
    ok: int = 0
    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    latency_ms: float = 0.0
    judged: int = 0
    judge: float = 0.0
    priced: int = 0
    cost: float = 0.0

    def add(self, rows: dict, mask: np.ndarray, cost: np.ndarray) -> None:
        ok = mask & ~rows["error"]
        judged, priced = ok & ~np.isnan(rows["judge_score"]), ok & ~np.isnan(cost)
        self.requests += int(mask.sum())
        self.ok += int(ok.sum())
        for key in ("input_tokens", "cached_tokens", "output_tokens", "latency_ms"):
            setattr(self, key, getattr(self, key) + rows[key][ok].sum())
        self.judged += int(judged.sum())
        self.judge += float(rows["judge_score"][judged].sum())
        self.priced += int(priced.sum())
        self.cost += float(cost[priced].sum())

    @property
    def per_request(self) -> float:
        return self.cost / max(self.priced, 1)

    def line(self, label: str) -> str:
        ok = max(self.ok, 1)
        return (
            f"  {label}: {self.requests:,} requests, tokens in {self.input_tokens / ok:,.0f} (cached {self.cached_tokens / ok:,.0f}) "
            f"out {self.output_tokens / ok:,.0f}, latency {self.latency_ms / ok / 1000:.1f} s, judge {self.judge / max(self.judged, 1):.2f}, "
            + (f"{self.per_request:.4f} USD a request" if self.priced else "not priced")
        )


class Command(TrafficCommand):
    help = (
        "Send realistic demo requests of a prompt version through the real ingestion API (POST /api/v1/events): tokens, latency, "
        "feedback and judge scores, answers getting longer from a chosen point, and optionally a daily budget of the prompt."
    )
    flag = "change"
    default_events = 5_000
    default_rate = 5.0

    def add_arguments(self, parser):
        parser.add_argument("--prompt", required=True, help="registered prompt name, e.g. summarize")
        which = parser.add_mutually_exclusive_group()
        which.add_argument("--version", type=int, help="prompt version (default: the one in prod, else the latest)")
        which.add_argument("--environment", choices=ENVIRONMENTS, help="the version this environment runs")
        parser.add_argument("--llm-model", help="the LLM the events name (default: the prompt version's model)")
        parser.add_argument("--change-at", default="none",
                            help="from where answers get longer (--output-growth) and judge scores a little lower: a share of the "
                                 "events (50%%), an ISO time (no zone: UTC), or none (default none)")
        parser.add_argument("--output-growth", type=float, default=2.0,
                            help="after --change-at, output tokens are multiplied by this (default 2.0; the cost per request grows a "
                                 "little less, input tokens cost too)")
        parser.add_argument("--profile", choices=sorted(LLM_PROFILES), help="kind of traffic (default: from the prompt name; summarize otherwise)")
        self.add_traffic_arguments(parser)
        parser.add_argument("--budget-usd",
                            help="create or update a daily budget of the prompt (alerts at 80%% and 100%%) of this many USD, or auto: "
                                 f"sized so that this run's spend in the current UTC day is ~{AUTO_BUDGET_SHARE * 100:.0f}%% of it")
        parser.add_argument("--budget-name", help="the budget's name (default: '<prompt> daily')")
        parser.add_argument("--dry-run", action="store_true", help="print what would be sent and what it would cost; send nothing")

    def handle(self, *args, **o):
        run = self.traffic_options(o)
        growth = o["output_growth"]
        if not growth > 0 or not math.isfinite(growth):
            raise CommandError("--output-growth must be a positive number.")
        budget = self._budget_option(o["budget_usd"])
        profile = LLM_PROFILES[o["profile"] or llm_profile_for(o["prompt"])]
        change_index, change_ts = change_point(o["change_at"], run.total, "--change-at")

        api, _token, _user = self.api_for(run, o)
        prompt = o["prompt"]
        with server_errors(run.url):
            me = api.get("/api/v1/me")
            version, model = self._resolve_version(api, prompt, o["version"], o["environment"])
            llm_model = o["llm_model"] or model
            book = self._price_book(api)

        say = self.stdout.write if o["verbosity"] > 0 or o["dry_run"] else (lambda *a, **k: None)  # -v 0: the summary line only
        say(
            f"Sending {run.total:,} {profile.name} requests of prompt {prompt} v{version} ({llm_model}) to {run.url} as {me.get('username')} "
            f"({me.get('role') or 'no role'}): {self.mode(run)}; seed {run.seed}, run {run.run_id}."
        )
        if change_index is not None or change_ts is not None:
            say(f"Answers x{growth:g} longer, judge scores and feedback a little lower {self.point_when(run, change_index, change_ts, 'change')}.")
        else:
            say("No change.")

        day_start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        estimate = self._estimate(run, profile, change_index, change_ts, growth, llm_model, book, day_start.timestamp())
        for line in estimate["lines"]:
            say(line)
        if budget is not None:
            budget = self._budget_amount(budget, estimate["today_usd"], llm_model)
        budget_name = o["budget_name"] or f"{prompt} daily"
        if o["dry_run"]:
            if budget is not None:
                say(f"Would set budget {budget_name!r} to {budget:,.2f} USD a day.")
            self.stdout.write("Dry run: nothing sent.")
            return
        if budget is not None:
            with server_errors(run.url):
                api.post("/api/v1/budgets", {"name": budget_name, "amount_usd": budget, "period": "day", "scope": "prompt",
                                             "members": [f"prompt:{prompt}"], "thresholds": THRESHOLDS})
            share = f" (this run spends {estimate['today_usd'] / budget:.0%} of it today)" if estimate["today_usd"] is not None else ""
            say(f"Budget {budget_name!r}: {budget:,.2f} USD a day for prompt {prompt}, alerts at {', '.join(f'{t:.0%}' for t in THRESHOLDS)}{share}.")

        with server_errors(run.url):
            experiments = self.experiments_for(api, run, o, kind="prompt", name=prompt, version=version, unit_prefix=profile.unit_prefix, say=say)
            routes = self.routes_for(api, run, o, kind="prompt", name=prompt, version=version, say=say)
        stream = LlmStream(profile=profile, seed=run.seed, run_id=run.run_id, schedule=run.schedule, prompt=prompt, version=version,
                           llm_model=llm_model, experiments=experiments, change_index=change_index, change_ts=change_ts, output_growth=growth,
                           routes=routes)
        totals, started = self.send(api, run, stream.build, show_progress=o["verbosity"] > 0)
        c = totals.counts
        extra = (f"{totals.changed:,} after the change, {c['feedback']:,} with feedback, {c['judged']:,} judged, "
                 f"{plural(c['guardrail'], 'guardrail trigger')}") + self.experiments_text(experiments, totals) + self.routes_text(routes)
        spend = f" Spend at the server's prices: {estimate['total_usd']:,.2f} USD." if estimate["total_usd"] is not None else ""
        if budget is not None:
            spend += f" Budget {budget_name!r}: {budget:,.2f} USD a day."
        self.stdout.write(
            self.done_line(api, totals, started, f"prompt {prompt} v{version}", extra)
            + f"{spend} Prompt: {run.url}/prompts/{quote(prompt, safe='')}/versions/{version}/"
        )

    # -- options ---------------------------------------------------------------------------------

    @staticmethod
    def _budget_option(text: str | None) -> float | str | None:
        if text is None:
            return None
        if text.strip().lower() == "auto":
            return "auto"
        try:
            amount = float(text)
        except ValueError:
            amount = math.nan
        if not amount > 0 or not math.isfinite(amount):
            raise CommandError(f"--budget-usd: a positive number of USD or auto, got {text!r}.")
        return amount

    @staticmethod
    def _budget_amount(option: float | str, today_usd: float | None, llm_model: str) -> float | None:
        """The budget to set: the amount given, or auto's, rounded to 2 significant figures."""
        if option != "auto":
            return float(option)
        if today_usd is None:
            raise CommandError(f"--budget-usd auto: the server has no price for {llm_model}; load them with "
                               "`manage.py import_prices --defaults`, or pass an amount.")
        if today_usd <= 0:
            raise CommandError("--budget-usd auto: none of this run's requests is priced in the current UTC day; pass an amount.")
        target = today_usd / AUTO_BUDGET_SHARE
        digits = 1 - math.floor(math.log10(target))
        return round(target, digits)

    def _resolve_version(self, api: Api, prompt: str, number: int | None, environment: str | None) -> tuple[int, str]:
        """(version, its LLM model) of the version asked for, the one in prod, else the latest."""
        name = quote(prompt, safe="")
        if number is None and environment is None:
            found = api.get(f"/api/v1/prompts/{name}")
            number = (found.get("environments") or {}).get("prod") or found.get("latest_version")
            if not number:
                raise CommandError(f"Prompt {prompt} has no versions yet; import one first.")
        path = f"/api/v1/prompts/{name}/versions/{number}" if number is not None else f"/api/v1/prompts/{name}/environments/{environment}"
        found = api.get(path)
        return int(found["version"]), str(found.get("model") or "")

    @staticmethod
    def _price_book(api: Api) -> pricing.PriceBook | None:
        """The server's price table (all pages of GET /api/v1/prices); None when the server has no such endpoint."""
        entries, page = [], 1
        while True:
            try:
                found = api.get(f"/api/v1/prices?page_size=500&page={page}")
            except Refused as exc:
                if exc.status == 404 and page == 1:
                    return None
                raise
            for p in found.get("results", []):
                entries.append(pricing.PriceEntry(
                    pattern=p["pattern"], input_per_token=p["input_per_token"], output_per_token=p["output_per_token"],
                    cached_input_per_token=p.get("cached_input_per_token"), reasoning_per_token=p.get("reasoning_per_token"),
                    effective_from=date.fromisoformat(str(p["effective_from"])[:10]),
                ))
            if not found.get("next"):
                return pricing.PriceBook(entries)
            page += 1

    # -- what the run will cost --------------------------------------------------------------------------

    def _estimate(self, run: Run, profile: LlmProfile, change_index, change_ts, growth: float, llm_model: str,
                  book: pricing.PriceBook | None, day_start: float) -> dict:
        """Means before and after the change and the spend at the server's prices (the price in force on each
        event's UTC day, as the server picks it), from the very events the run will send."""
        draws = LlmDraws(run.seed, stream=0)
        phases = {"before": Phase(), "after": Phase()}
        missing, today = 0, 0.0
        for start in range(0, run.total, ESTIMATE_CHUNK):
            stop = min(run.total, start + ESTIMATE_CHUNK)
            d = draws.rows(start, stop)
            index = np.arange(start, stop)
            ts = run.schedule.times(index, d["jitter"])
            changed = after_point(index, ts, change_index, change_ts)
            rows = simulate_llm(profile, d, changed, growth)
            cost = np.full(len(ts), np.nan)  # NaN: no price
            days = np.floor(ts / 86400).astype(np.int64)
            for day in np.unique(days):
                entry = book.match(llm_model, datetime.fromtimestamp(int(day) * 86400, UTC).date()) if book is not None else None
                if entry is not None:
                    here = days == day
                    cost[here] = token_cost({k: v[here] for k, v in rows.items()}, entry.input_per_token, entry.output_per_token,
                                            entry.cached_input_per_token)
            ok = ~rows["error"]
            missing += int((ok & np.isnan(cost)).sum())
            today += float(np.nansum(np.where(ok & (ts >= day_start) & (ts < day_start + 86400), cost, 0.0)))
            phases["before"].add(rows, ~changed, cost)
            phases["after"].add(rows, changed, cost)
        before, after = phases["before"], phases["after"]
        lines = [phase.line(f"{name} the change" if after.requests else "all requests") for name, phase in phases.items() if phase.requests]
        if before.priced and after.priced:
            lines.append(f"  cost per request x{after.per_request / before.per_request:.2f} after the change")
        total = before.cost + after.cost
        if not before.priced and not after.priced:
            lines.append(f"  spend: unknown, the server has no price for {llm_model} (load them: manage.py import_prices --defaults)")
            return {"lines": lines, "today_usd": None, "total_usd": None}
        lines.append(
            f"  spend at the server's prices: {total:,.2f} USD, {today:,.2f} USD of it today "
            f"(from {datetime.fromtimestamp(day_start, UTC):%Y-%m-%d} 00:00 UTC)" + (f"; {missing:,} requests not priced" if missing else "")
        )
        return {"lines": lines, "today_usd": today, "total_usd": total}
