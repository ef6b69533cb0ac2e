"""The inference log's background writer: batches scored rows off the request path.

:class:`InferenceLogWriter` takes rows from the request handlers, writes them
to an :class:`~creditops.serving.store.InferenceStore` in batches from a daemon
thread, retries on database errors (loudly), moves what its bounded queue
cannot hold to the process's :class:`~creditops.serving.journal.Journal`, and
drains its queue on shutdown. This is ``[serve] durability = "async"``: the
answer is sent before its row is written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from creditops.errors import StoreError
from creditops.serving.journal import Journal, LogEvents
from creditops.serving.store import InferenceStore

log = logging.getLogger(__name__)
# The shortest pause between two "rows LOST" error lines of one outage.
LOST_LOG_SECONDS = 60.0
# A write in progress this long counts as a store that is down (the queue may spill).
STALLED_WRITE_SECONDS = 1.0


class InferenceLogWriter:
    """Batches rows off the request path into an :class:`InferenceStore`.

    ``submit`` only appends to an in-memory queue. A daemon thread writes the
    queue every ``flush_interval`` seconds, or as soon as ``flush_max_rows``
    rows wait. A failed write keeps its rows at the head of the queue and is
    retried with a growing pause (up to ``max_backoff`` seconds), each failure
    logged as an error with the number of rows waiting. The queue holds at most
    ``max_queue_rows`` rows while the store is down (its last write failed, or
    the current one has hung for a second): beyond, a second thread moves the
    newest rows to ``journal`` (synced to disk, loaded later by ``creditops
    store replay``), so that a store down for long costs disk, not memory. ``close`` drains
    the queue; rows that still cannot be written within ``drain_timeout``
    seconds are journaled too. Rows that can be neither stored nor journaled
    are counted as lost and said so in the log, never dropped silently.

    Args:
        store: where the rows go.
        flush_interval: seconds between two writes of a non-full queue.
        flush_max_rows: rows per write; a queue this long is written at once.
        journal: where rows go that the store cannot take (None: they are lost, loudly).
        max_queue_rows: rows held in memory (at least ``flush_max_rows``); None: no bound.
        drain_timeout: how long ``close`` keeps retrying a failing database.
        max_backoff: the longest pause between two retries.
        busy: tells whether the server is scoring right now; writes then wait
            (at most ``max_delay`` seconds) for a quiet moment.
        max_delay: the longest a row waits because the server is busy.
        events: what the writer reports (rows written, failed, journaled, lost).
    """

    def __init__(
        self,
        store: InferenceStore,
        *,
        flush_interval: float = 0.2,
        flush_max_rows: int = 2_000,
        journal: Journal | None = None,
        max_queue_rows: int | None = None,
        drain_timeout: float = 10.0,
        max_backoff: float = 5.0,
        busy: Callable[[], bool] | None = None,
        max_delay: float = 2.0,
        events: LogEvents | None = None,
    ) -> None:
        self.store = store
        self.flush_interval = flush_interval
        self.flush_max_rows = flush_max_rows
        self.journal = journal
        # the writer's batch is copied from the queue's head: the spiller, which takes
        # from the tail, must leave at least one batch in place
        self.max_queue_rows = (
            None if max_queue_rows is None else max(max_queue_rows, flush_max_rows)
        )
        self.drain_timeout = drain_timeout
        self.max_backoff = max_backoff
        self.events = events or LogEvents()
        self._queue: deque[dict[str, Any]] = deque()
        self._pending_ids: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._written = threading.Condition(self._lock)
        self._overflow = threading.Condition(self._lock)
        self._closing = False
        self._flush_requested = False
        self.written_rows = 0
        self.failed_writes = 0
        self.spilled_rows = 0
        self.lost_rows = 0
        self._lost_logged_at = -LOST_LOG_SECONDS
        self._failing = False  # the last write failed
        self._writing_since: float | None = None  # when the write in progress began
        self._journal_logged: Path | None = None
        self.max_delay = max_delay
        self.busy = busy
        self._oldest_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="inference-log-writer", daemon=True)
        self._spiller = threading.Thread(
            target=self._run_spiller, name="inference-log-spiller", daemon=True
        )

    def start(self) -> None:
        """Start the writer thread (and the spiller, if the queue is bounded)."""
        self._thread.start()
        if self.max_queue_rows is not None:
            self._spiller.start()

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
            if self.max_queue_rows is not None and len(self._queue) > self.max_queue_rows:
                self._overflow.notify()

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
            self._overflow.notify()
        if self._spiller.is_alive():
            self._spiller.join()
        if self._thread.is_alive():
            self._thread.join()
        else:  # never started: drain here
            self._drain()
        if self.journal is not None:
            self.journal.close()

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
        self._writing_since = time.monotonic()
        try:
            self.store.write_rows(batch)
        except Exception as exc:  # anything but a DB error is a bug: keep the rows, retry
            self._writing_since = None
            self._failing = True
            if not isinstance(exc, SQLAlchemyError):
                log.exception("inference log: unexpected error writing %d row(s)", len(batch))
            self.failed_writes += 1
            self.events.failed(len(batch))
            log.error(
                "inference log: writing %d row(s) to %r failed (%d waiting, will retry): %s",
                len(batch),
                self.store,
                len(self._queue),
                (str(exc).splitlines() or [repr(exc)])[0][:300],
            )
            return False
        self._writing_since = None
        self._failing = False
        with self._lock:
            for _ in batch:
                row = self._queue.popleft()
                self._pending_ids.discard(row["request_id"])
            self._written.notify_all()
        self.written_rows += len(batch)
        self.events.written(len(batch))
        if self.journal is not None and self.spilled_rows:
            closed = self.journal.close()  # the store is back: a replay may take the file now
            if closed is not None:
                log.warning(
                    "inference log: the store takes rows again; %s holds journaled rows: "
                    "run `creditops store replay` to load them",
                    closed,
                )
        return True

    def _drain(self) -> None:
        deadline = time.monotonic() + self.drain_timeout
        pause = 0.1
        while self._queue:
            if self._write_batch():
                continue
            if time.monotonic() >= deadline:
                with self._lock:
                    rows = list(self._queue)
                    self._queue.clear()
                    self._pending_ids.clear()
                    self._written.notify_all()
                self._journal_rows(rows, "could not be written before shutdown")
                return
            time.sleep(pause)
            pause = min(pause * 2, self.max_backoff)

    def _run_spiller(self) -> None:
        """Keep the queue within ``max_queue_rows``: the newest rows beyond go to the journal."""
        bound = self.max_queue_rows
        assert bound is not None  # started only for a bounded queue
        while True:
            with self._lock:
                while not self._closing and not (len(self._queue) > bound and self._store_down()):
                    # woken by submit past the bound; a stalled write is noticed within a second
                    self._overflow.wait(STALLED_WRITE_SECONDS / 2)
                if self._closing:  # the drain journals what it cannot write
                    return
                overflow = [self._queue.pop() for _ in range(len(self._queue) - bound)]
                overflow.reverse()
                self._pending_ids.difference_update(row["request_id"] for row in overflow)
            self._journal_rows(overflow, f"do not fit the queue ({bound} rows, store unavailable)")

    def _store_down(self) -> bool:
        """The last write failed, or the current one has hung for a while (a dead connection).

        A healthy store that merely lags keeps its rows queued past the bound for
        a moment: spilling them would only make work for a replay.
        """
        since = self._writing_since
        return self._failing or (
            since is not None and time.monotonic() - since > STALLED_WRITE_SECONDS
        )

    def _journal_rows(self, rows: list[dict[str, Any]], why: str) -> None:
        """Sync ``rows`` to the journal; if that fails too, count and report them as lost."""
        if not rows:
            return
        if self.journal is None:
            self._lost(rows, why, "no journal is configured")
            return
        try:
            path = self.journal.append(rows)
        except StoreError as exc:
            self._lost(rows, why, str(exc))
            return
        self.spilled_rows += len(rows)
        self.events.spilled(len(rows))
        if path != self._journal_logged or self._closing:  # once per file: once per outage
            self._journal_logged = path
            log.error(
                "inference log: %d row(s) %s: journaled to %s (%d so far); "
                "load them with `creditops store replay` once %r is back",
                len(rows),
                why,
                path,
                self.spilled_rows,
                self.store,
            )

    def _lost(self, rows: list[dict[str, Any]], why: str, cause: str) -> None:
        self.lost_rows += len(rows)
        self.events.lost(len(rows))
        now = time.monotonic()
        if now - self._lost_logged_at >= LOST_LOG_SECONDS or self._closing:
            self._lost_logged_at = now
            log.error(
                "inference log: %d row(s) %s and cannot be journaled (%s): they are LOST "
                "(%d lost so far)",
                len(rows),
                why,
                cause,
                self.lost_rows,
            )
