"""The Python SDK: `Client` calls the control plane from training scripts, pipelines and serving code.

Every method sends one documented API call (`docs/api.md`) and answers the server's JSON as a dict;
a non-2xx answer raises `ApiError` (`status`, `message`, `code`, `extra`), no connection raises
`ConnectionFailed`, bad arguments `UsageError`: all three are `mlops_client.CliError`. `log_events`
is the exception: it queues events for a background thread that batches and retries them
(`mlops_client.events.EventSender`), so serving code never waits for the control plane.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .client import UNFINISHED, ApiClient, UsageError, segment, version_number
from .events import EventSender

OUTCOMES_MAX = 10_000  # the server's batch cap of POST /api/v1/outcomes


class Client:
    """`Client(url=..., token=...)`; without them it reads `MLOPS_URL` and `MLOPS_TOKEN`, as the CLI does.

    `timeout` is seconds per request. `batch_size`, `flush_interval`, `max_queue`, `max_retries` and
    `close_timeout` configure `log_events` (see `EventSender`). Use it as a context manager, or call
    `close()`, so queued events are sent before the process ends (an `atexit` hook does it otherwise).
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        batch_size: int = 1_000,
        flush_interval: float = 5.0,
        max_queue: int = 100_000,
        max_retries: int = 8,
        close_timeout: float = 10.0,
    ):
        url = url if url is not None else os.environ.get("MLOPS_URL", "")
        token = token if token is not None else os.environ.get("MLOPS_TOKEN", "")
        if not url.strip():
            raise UsageError("no server address: pass url= or set MLOPS_URL, e.g. https://mlops.example.com.")
        if not token.strip():
            raise UsageError("no API token: pass token= or set MLOPS_TOKEN.")
        self.api = ApiClient(url=url, token=token.strip(), timeout=timeout)
        self._sender_options = {
            "batch_size": batch_size, "flush_interval": flush_interval, "max_queue": max_queue,
            "max_retries": max_retries, "close_timeout": close_timeout,
        }
        self._events: EventSender | None = None
        self._events_lock = threading.Lock()

    @classmethod
    def over(cls, api: ApiClient) -> Client:
        """A Client on an ApiClient already made (the CLI's), sharing its session."""
        return cls(url=api.base, token=api.token, timeout=api.timeout)._with_api(api)

    def _with_api(self, api: ApiClient) -> Client:
        self.api = api
        return self

    # --- registry ---------------------------------------------------------------------------

    def register(
        self,
        model: str,
        *,
        params: dict | None = None,
        metrics: dict | None = None,
        tags: dict | None = None,
        artifact: str | Path | None = None,
        artifact_uri: str | None = None,
        code_commit: str | None = None,
        data_version: str | None = None,
        image_tag: str | None = None,
        description: str | None = None,
    ) -> dict:
        """Register the next version of `model` (created on first use): `POST models/{model}/versions`.

        `artifact` is a local file, streamed from disk and stored with its sha256; `artifact_uri` records
        where it lives instead. `code_commit` defaults to `$GITHUB_SHA` when set. Answers the version.
        """
        if artifact is not None and artifact_uri is not None:
            raise UsageError("register: give artifact or artifact_uri, not both.")
        if code_commit is None:
            code_commit = os.environ.get("GITHUB_SHA")
        texts = {
            "code_commit": code_commit, "data_version": data_version, "image_tag": image_tag,
            "description": description, "artifact_uri": artifact_uri,
        }
        meta: dict[str, Any] = {k: v for k, v in (("params", params), ("metrics", metrics), ("tags", tags)) if v is not None}
        meta.update({k: v for k, v in texts.items() if v is not None})
        path = f"models/{segment(model)}/versions"
        if artifact is None:
            return self.api.post(path, meta)
        file = Path(artifact)
        if not file.is_file():
            raise UsageError(f"register: no such file: {artifact}")
        return self.api.post_file(path, fields={"meta": _json(meta)}, file_field="artifact", file_path=file)

    def version_number(self, model: str, version: int | str) -> int:
        """`version` as a number: an int as it is, `"latest"` the model's newest version."""
        return version_number(self.api, "models", model, version)

    def promote(
        self, model: str, version: int | str, *, to: str, reason: str, canary: bool = False, policy: str | None = None
    ) -> dict:
        """Ask for `version` (a number or `"latest"`) to move into `to` (`staging` or `production`).

        `canary=True` asks for a canary rollout into production under the rollout policy `policy` (the
        default one when None). Answers the pending promotion request; an approver approves it.
        """
        if policy is not None and not canary:
            raise UsageError("promote: policy goes with canary=True.")
        fields = {"strategy": "canary", "policy": policy or ""} if canary else {}
        number = self.version_number(model, version)
        return self.api.post(f"models/{segment(model)}/versions/{number}/promotions", {"to": to, "reason": reason, **fields})

    def approve(self, promotion_id: int, *, comment: str | None = None) -> dict:
        """Approve a pending promotion request (not one's own; needs the approver role). Answers the request."""
        return self.api.post(f"promotions/{int(promotion_id)}/approve", {"comment": comment} if comment is not None else {})

    def reject(self, promotion_id: int, *, comment: str) -> dict:
        """Reject a pending promotion request, saying why. Answers the request."""
        return self.api.post(f"promotions/{int(promotion_id)}/reject", {"comment": comment})

    def rollback(self, model: str, *, stage: str, reason: str) -> dict:
        """Put the previous version back into `stage`. Answers the version now in that stage."""
        return self.api.post(f"models/{segment(model)}/rollback", {"stage": stage, "reason": reason})

    # --- quality gates ------------------------------------------------------------------------

    def evaluate(
        self,
        model: str,
        version: int | str,
        file: str | Path,
        *,
        kind: str = "model",
        wait: bool = False,
        max_wait: float = 600.0,
        interval: float = 2.0,
        **options: Any,
    ) -> dict:
        """Upload predictions and labels (`kind="model"`) or data to validate (`kind="data"`) of a version.

        `file` is CSV, JSON lines or Parquet; `options` are `label_column`, `prediction_column`,
        `score_column`, `group_column`, `positive_label`, `data_version`. Answers the evaluation (queued:
        `status` pending); with `wait=True` polls it until it is done or failed, or `max_wait` seconds passed.
        """
        path = Path(file)
        if not path.is_file():
            raise UsageError(f"evaluate: no such file: {file}")
        number = self.version_number(model, version)
        evaluation = self.api.post_file(
            f"models/{segment(model)}/versions/{number}/evaluations",
            fields={"kind": kind, "options": _json(options)}, file_field="file", file_path=path,
        )
        if wait:
            deadline = time.monotonic() + max_wait
            while evaluation.get("status") in UNFINISHED and time.monotonic() < deadline:
                time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
                evaluation = self.api.get(f"evaluations/{evaluation['id']}")
        return evaluation

    def gate(
        self,
        version: int | str,
        *,
        model: str | None = None,
        prompt: str | None = None,
        max_wait: float = 600.0,
        interval: float = 2.0,
    ) -> dict:
        """The gate card of a model's (or prompt's) version, once none of its evaluations is pending or running.

        Answers `{"policy", "enforced", "passed", "checks": [...]}`: `passed` is true when every check passed,
        false when one failed or never ran, null without a policy. Waits at most `max_wait` seconds for
        unfinished evaluations, then answers the card as it is.
        """
        if (model is None) == (prompt is None):
            raise UsageError("gate: give either model or prompt.")
        collection, name = ("models", model) if model is not None else ("prompts", prompt)
        number = self.version_number(name, version) if collection == "models" else self._prompt_version(name, version)
        base = f"{collection}/{segment(name)}/versions/{number}"
        card = self.api.get(f"{base}/gates")
        if not card.get("policy"):
            return card
        deadline = time.monotonic() + max_wait
        while time.monotonic() < deadline:
            recent = self.api.get(f"{base}/evaluations", {"page_size": 100}).get("results", [])
            if not any(e.get("status") in UNFINISHED for e in recent):
                break
            time.sleep(max(0.0, min(interval, deadline - time.monotonic())))
        return self.api.get(f"{base}/gates")

    def _prompt_version(self, prompt: str, version: int | str) -> int:
        return version_number(self.api, "prompts", prompt, version)

    # --- serving ------------------------------------------------------------------------------

    def route(self, unit_id: str, *, model: str | None = None, prompt: str | None = None) -> dict:
        """Which version serves `unit_id` now, canaries included: `{"version", "stage", "rollout", "shadow", "bucket"}`.

        Serve the request with `version`; when `shadow` is set, also send it to `shadow["version"]`, never
        answer with that, and log its event with `"shadow": True`.
        """
        return self.api.route(unit_id=unit_id, model=model, prompt=prompt)

    def assign(self, experiment: str, unit_id: str | None = None, *, unit_ids: Iterable[str] | None = None) -> dict:
        """The variant of a running A/B test that serves a unit: `{"unit_id", "variant", "version", "bucket"}`.

        With `unit_ids` (up to 10,000) answers `{"assignments": [...]}`. The first assignment of a unit is its
        exposure; asking again changes nothing.
        """
        if (unit_id is None) == (unit_ids is None):
            raise UsageError("assign: give either unit_id or unit_ids.")
        body = {"unit_id": unit_id} if unit_id is not None else {"unit_ids": list(unit_ids)}
        return self.api.post(f"experiments/{segment(experiment)}/assign", body)

    def log_outcomes(self, outcomes: Iterable[dict]) -> dict:
        """Send outcomes (`{"outcome_id", "unit_id", "metric", "value", "timestamp"}`) now, 10,000 a request.

        Answers `{"accepted", "duplicates", "unexposed"}` summed over the requests; a bad outcome raises
        ApiError 400 with `extra["errors"]` and its request stores nothing.
        """
        items = list(outcomes)
        total = {"accepted": 0, "duplicates": 0, "unexposed": 0}
        for start in range(0, len(items), OUTCOMES_MAX):
            answer = self.api.post("outcomes", {"outcomes": items[start : start + OUTCOMES_MAX]})
            for key in total:
                total[key] += int(answer.get(key) or 0)
        return total

    def log_events(self, events: Iterable[dict]) -> int:
        """Queue served requests' events (fields: docs/monitoring.md) and return at once; answers how many were queued.

        A background thread sends them in batches and retries; each event gets an `event_id` (so a retried
        batch is stored once) and a `timestamp` (now, UTC) when it has none. `events_stats()` counts what
        happened to them; `flush()` waits until they are sent.
        """
        with self._events_lock:  # two threads' first events make one sender
            if self._events is None:
                self._events = EventSender(url=self.api.base, token=self.api.token, timeout=self.api.timeout, **self._sender_options)
        return self._events.log(events)

    def events_stats(self) -> dict:
        """`{"queued", "sent", "duplicates", "rejected", "failed", "dropped", "last_error"}` of `log_events`."""
        return self._events.stats() if self._events is not None else EventSender.empty_stats()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued so far was sent (or given up on); False when `timeout` ran out first."""
        return self._events.flush(timeout) if self._events is not None else True

    def close(self, timeout: float | None = None) -> bool:
        """Send what is queued (up to `timeout`, default `close_timeout`), stop the sender. False if events were left."""
        done = self._events.close(timeout) if self._events is not None else True
        self.api.session.close()
        return done

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _json(value: dict) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        raise UsageError("numbers must be finite: NaN and Infinity are not JSON.") from None
