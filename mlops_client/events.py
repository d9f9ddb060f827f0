"""`Client.log_events` underneath: a bounded queue and one background thread that batches, sends and retries.

Serving code must never wait for the control plane, nor fall over when it is away:

- `log()` only appends to an in-memory queue and returns. The queue holds at most `max_queue`
  events; when it is full the **oldest** events are dropped (counted in `dropped`), so memory stays
  bounded and the newest traffic, the most useful for monitoring, is kept.
- The thread sends a batch when `batch_size` events are waiting (at most 10,000, the server's cap),
  when the oldest waiting event is `flush_interval` seconds old, on `flush()` and on `close()`.
- A batch that meets no connection, a 5xx or a 429 is retried with exponential backoff (0.5 s,
  1 s, 2 s, ... at most 30 s, or the server's `Retry-After`), up to `max_retries` times, then
  counted in `failed`. Events carry an `event_id` (one is added when missing), so a batch that
  reached the server before its answer was lost is stored once (the retry counts `duplicates`).
- A `400` names the bad events (`extra.errors[].index`): those are counted in `rejected` and the
  rest of the batch is sent again. Any other 4xx (a revoked token, an unknown model...) rejects the
  batch; `last_error` says why.
"""

from __future__ import annotations

import atexit
import collections
import threading
import time
import uuid
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime

from .client import ApiClient, ApiError, CliError, ConnectionFailed, UsageError

EVENTS_MAX = 10_000  # the server's batch cap of POST /api/v1/events
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
COUNTERS = ("sent", "duplicates", "rejected", "failed", "dropped")


class EventSender:
    """A thread-safe queue of events and the daemon thread that delivers it (see the module docstring)."""

    def __init__(
        self,
        *,
        url: str,
        token: str,
        timeout: float = 30.0,
        batch_size: int = 1_000,
        flush_interval: float = 5.0,
        max_queue: int = 100_000,
        max_retries: int = 8,
        close_timeout: float = 10.0,
    ):
        if not 1 <= batch_size <= EVENTS_MAX:
            raise UsageError(f"batch_size must be 1 to {EVENTS_MAX:,}, got {batch_size}.")
        if max_queue < batch_size:
            raise UsageError(f"max_queue ({max_queue}) must hold at least one batch ({batch_size}).")
        if flush_interval <= 0 or max_retries < 0:
            raise UsageError("flush_interval must be positive and max_retries not negative.")
        # Its own session: requests' Session is not meant to be shared between threads.
        self._api = ApiClient(url=url, token=token, timeout=timeout)
        self.batch_size, self.flush_interval, self.max_queue = batch_size, flush_interval, max_queue
        self.max_retries, self.close_timeout = max_retries, close_timeout
        self._queue: collections.deque[tuple[float, dict]] = collections.deque()
        self._cond = threading.Condition()
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._logged = 0  # events ever accepted by log()
        self._in_flight = 0  # taken from the queue, not yet settled
        self._flushing = 0  # flush() calls waiting: send what is queued now
        self._closing = False
        self._last_error: str | None = None
        self._thread: threading.Thread | None = None
        atexit.register(_close_at_exit, weakref.ref(self))

    @staticmethod
    def empty_stats() -> dict:
        return {"queued": 0, **dict.fromkeys(COUNTERS, 0), "last_error": None}

    def log(self, events: Iterable[dict]) -> int:
        """Queue copies of `events` (an `event_id` and a `timestamp` added when missing); never blocks on the network."""
        now = time.monotonic()
        stamp = datetime.now(UTC).isoformat()
        items = []
        for event in events:
            if not isinstance(event, dict):
                raise UsageError(f"log_events: each event is a dict, got {type(event).__name__}.")
            items.append((now, {"event_id": uuid.uuid4().hex, "timestamp": stamp, **event}))
        with self._cond:
            if self._closing:
                raise UsageError("log_events after close().")
            self._queue.extend(items)
            self._logged += len(items)
            overflow = len(self._queue) - self.max_queue
            for _ in range(max(0, overflow)):
                self._queue.popleft()
            if overflow > 0:
                self._counts["dropped"] += overflow
                self._last_error = f"the queue was full ({self.max_queue:,} events): dropped the oldest"
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mlops-events", daemon=True)
                self._thread.start()
            self._cond.notify_all()
        return len(items)

    def stats(self) -> dict:
        with self._cond:
            return {"queued": len(self._queue) + self._in_flight, **self._counts, "last_error": self._last_error}

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event logged before this call is settled (sent, rejected, failed or dropped)."""
        with self._cond:
            target = self._logged
            self._flushing += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._settled() >= target, timeout)
            finally:
                self._flushing -= 1

    def close(self, timeout: float | None = None) -> bool:
        """Send what is queued, waiting at most `timeout` seconds (default `close_timeout`), then stop the thread."""
        done = self.flush(self.close_timeout if timeout is None else timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        return done

    # --- the thread -------------------------------------------------------------------------

    def _settled(self) -> int:
        return sum(self._counts[k] for k in ("sent", "rejected", "failed", "dropped"))

    def _due(self) -> bool:
        if not self._queue:
            return False
        if len(self._queue) >= self.batch_size or self._flushing or self._closing:
            return True
        return time.monotonic() - self._queue[0][0] >= self.flush_interval

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._due():
                    if self._closing and not self._queue:
                        return
                    wait = self.flush_interval - (time.monotonic() - self._queue[0][0]) if self._queue else None
                    self._cond.wait(wait)
                batch = [self._queue.popleft()[1] for _ in range(min(self.batch_size, len(self._queue)))]
                self._in_flight = len(batch)
            try:
                self._deliver(batch)
            except Exception as exc:  # the thread must outlive any surprise; the batch is lost, and counted
                self._settle(failed=len(batch), error=f"{type(exc).__name__}: {exc}")

    def _deliver(self, batch: list[dict]) -> None:
        attempt = 0
        while batch:
            try:
                answer = self._api.post("events", {"events": batch})
            except (ConnectionFailed, ApiError) as exc:
                status = getattr(exc, "status", None)
                if status is not None and status < 500 and status != 429:
                    batch = self._reject(batch, exc)
                    continue
                if attempt >= self.max_retries or self._given_up():
                    self._settle(failed=len(batch), error=f"gave up after {attempt + 1} attempt(s): {exc}")
                    return
                delay = getattr(exc, "retry_after", None)
                self._backoff(min(BACKOFF_MAX, delay if delay is not None else BACKOFF_FIRST * 2**attempt))
                attempt += 1
                continue
            except CliError as exc:  # not JSON, a redirect: the URL is wrong; retrying will not help
                self._settle(failed=len(batch), error=str(exc))
                return
            self._settle(sent=len(batch), duplicates=int(answer.get("duplicates") or 0))
            return

    def _reject(self, batch: list[dict], exc: ApiError) -> list[dict]:
        """After a 4xx: the events the server named as bad are rejected; the rest is sent again. Else all are."""
        errors = exc.extra.get("errors") if exc.status == 400 else None
        bad = {e.get("index") for e in errors if isinstance(e, dict)} if isinstance(errors, list) else set()
        bad &= set(range(len(batch)))
        if not bad:
            self._settle(rejected=len(batch), error=str(exc))
            return []
        self._settle(rejected=len(bad), error=str(exc), in_flight=len(batch) - len(bad))
        return [event for i, event in enumerate(batch) if i not in bad]

    def _given_up(self) -> bool:
        """Closing and nobody waits any more (close()'s timeout ran out): stop retrying."""
        with self._cond:
            return self._closing and not self._flushing

    def _backoff(self, seconds: float) -> None:
        """Sleep before a retry; close() cuts it short once its flush gave up."""
        deadline = time.monotonic() + seconds
        with self._cond:
            self._cond.wait_for(lambda: time.monotonic() >= deadline or (self._closing and not self._flushing), seconds)

    def _settle(self, *, sent: int = 0, duplicates: int = 0, rejected: int = 0, failed: int = 0, error: str | None = None,
                in_flight: int = 0) -> None:
        with self._cond:
            self._counts["sent"] += sent
            self._counts["duplicates"] += duplicates
            self._counts["rejected"] += rejected
            self._counts["failed"] += failed
            if error is not None:
                self._last_error = error
            self._in_flight = in_flight
            self._cond.notify_all()


def _close_at_exit(ref: weakref.ref) -> None:
    sender = ref()
    if sender is not None and not sender._closing:
        sender.close()
