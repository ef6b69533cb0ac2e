"""The inference log's background writer: batches scored rows off the request path.

:class:`InferenceLogWriter` takes rows from the request handlers, writes them
to an :class:`~creditops.serving.store.InferenceStore` in batches from a daemon
thread, retries on database errors (loudly) and drains its queue on shutdown.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from creditops.serving.store import InferenceStore

log = logging.getLogger(__name__)


class InferenceLogWriter:
    """Batches rows off the request path into an :class:`InferenceStore`.

    ``submit`` only appends to an in-memory queue. A daemon thread writes the
    queue every ``flush_interval`` seconds, or as soon as ``flush_max_rows``
    rows wait. A failed write keeps its rows at the head of the queue and is
    retried with a growing pause (up to ``max_backoff`` seconds), each failure
    logged as an error with the number of rows waiting. ``close`` drains the
    queue; rows that still cannot be written within ``drain_timeout`` seconds
    are saved as JSON lines to ``spill_path`` (never dropped silently).

    Args:
        store: where the rows go.
        flush_interval: seconds between two writes of a non-full queue.
        flush_max_rows: rows per write; a queue this long is written at once.
        spill_path: the JSON-lines file for rows left unwritten at shutdown.
        drain_timeout: how long ``close`` keeps retrying a failing database.
        max_backoff: the longest pause between two retries.
        busy: tells whether the server is scoring right now; writes then wait
            (at most ``max_delay`` seconds) for a quiet moment.
        max_delay: the longest a row waits because the server is busy.
    """

    def __init__(
        self,
        store: InferenceStore,
        *,
        flush_interval: float = 0.2,
        flush_max_rows: int = 2_000,
        spill_path: Path | None = None,
        drain_timeout: float = 10.0,
        max_backoff: float = 5.0,
        busy: Callable[[], bool] | None = None,
        max_delay: float = 2.0,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.flush_max_rows = flush_max_rows
        self.spill_path = spill_path
        self.drain_timeout = drain_timeout
        self.max_backoff = max_backoff
        self._queue: deque[dict[str, Any]] = deque()
        self._pending_ids: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._written = threading.Condition(self._lock)
        self._closing = False
        self._flush_requested = False
        self.written_rows = 0
        self.failed_writes = 0
        self.max_delay = max_delay
        self.busy = busy
        self._oldest_at = time.monotonic()
        self.on_write: Callable[[int], None] | None = None
        self.on_failure: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._run, name="inference-log-writer", daemon=True)

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    @property
    def pending(self) -> int:
        """Rows accepted but not yet written."""
        return len(self._queue)

    def submit(self, rows: Sequence[dict[str, Any]]) -> None:
        """Queue scored rows for writing; never blocks on the database."""
        with self._lock:
            if self._closing and not self._thread.is_alive():
                log.error("inference log: %d row(s) submitted after shutdown", len(rows))
            if not self._queue:
                self._oldest_at = time.monotonic()
            self._queue.extend(rows)
            self._pending_ids.update(row["request_id"] for row in rows)
            if len(self._queue) >= self.flush_max_rows:
                self._wake.notify()

    def is_pending(self, request_id: str) -> bool:
        """Whether ``request_id`` was submitted but is not yet in the store."""
        return request_id in self._pending_ids

    def wait_written(self, request_id: str, timeout: float) -> bool:
        """Ask for a flush and wait until ``request_id`` is in the store.

        Returns:
            False if it is still unwritten after ``timeout`` seconds (database down).
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while request_id in self._pending_ids:
                self._flush_requested = True
                self._wake.notify()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._written.wait(remaining)
        return True

    def close(self) -> None:
        """Write everything queued (retrying up to ``drain_timeout``), then stop the thread."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join()
        else:  # never started: drain here
            self._drain()

    def _defer(self) -> bool:
        """Whether to hold the queue a little longer: the server is busy scoring.

        Writing shares the interpreter with scoring; while requests are in
        flight, rows wait up to ``max_delay`` seconds (or ``4 * flush_max_rows``
        rows) so that big requests are not slowed by the previous one's log.
        """
        if self.busy is None or self._flush_requested or not self._queue:
            return False
        if len(self._queue) >= 4 * self.flush_max_rows:
            return False
        return time.monotonic() - self._oldest_at < self.max_delay and self.busy()

    def _run(self) -> None:
        backoff = 0.0
        while True:
            with self._lock:
                if not self._closing:
                    timeout = backoff or self.flush_interval
                    if (
                        backoff
                        or (len(self._queue) < self.flush_max_rows and not self._flush_requested)
                        or self._defer()
                    ):
                        self._wake.wait(timeout)
                closing = self._closing
                deferred = not closing and self._defer()
                self._flush_requested = False
            if closing:
                self._drain()
                return
            if deferred:
                continue
            backoff = 0.0 if self._write_batch() else min(max(backoff * 2, 0.1), self.max_backoff)

    def _write_batch(self) -> bool:
        """Write up to ``flush_max_rows`` queued rows; True on success or nothing to do."""
        with self._lock:
            batch = [self._queue[i] for i in range(min(len(self._queue), self.flush_max_rows))]
        if not batch:
            return True
        try:
            self.store.write_rows(batch)
        except Exception as exc:  # anything but a DB error is a bug: keep the rows, retry
            if not isinstance(exc, SQLAlchemyError):
                log.exception("inference log: unexpected error writing %d row(s)", len(batch))
            self.failed_writes += 1
            if self.on_failure is not None:
                self.on_failure()
            log.error(
                "inference log: writing %d row(s) to %r failed (%d waiting, will retry): %s",
                len(batch),
                self.store,
                len(self._queue),
                (str(exc).splitlines() or [repr(exc)])[0][:300],
            )
            return False
        with self._lock:
            for _ in batch:
                row = self._queue.popleft()
                self._pending_ids.discard(row["request_id"])
            self._written.notify_all()
        self.written_rows += len(batch)
        if self.on_write is not None:
            self.on_write(len(batch))
        return True

    def _drain(self) -> None:
        deadline = time.monotonic() + self.drain_timeout
        pause = 0.1
        while self._queue:
            if self._write_batch():
                continue
            if time.monotonic() >= deadline:
                self._spill()
                return
            time.sleep(pause)
            pause = min(pause * 2, self.max_backoff)

    def _spill(self) -> None:
        with self._lock:
            rows = list(self._queue)
            self._queue.clear()
            self._pending_ids.clear()
            self._written.notify_all()
        if self.spill_path is None:
            log.error(
                "inference log: %d row(s) could not be written to %r before shutdown "
                "and no spill file is configured: they are LOST",
                len(rows),
                self.store,
            )
            return
        self.spill_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spill_path.open("a", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, default=str) + "\n")
        log.error(
            "inference log: %d row(s) could not be written to %r before shutdown; "
            "saved to %s for replay",
            len(rows),
            self.store,
            self.spill_path,
        )
