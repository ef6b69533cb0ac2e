"""Acknowledged durability: a decision is answered only once its log row is durable.

``[serve] durability = "acknowledged"``. A request hands :class:`GroupCommitWriter`
a function that builds its log rows and awaits a future; a daemon thread takes
every request waiting (gathering concurrent ones for ``window`` seconds), builds
their rows, writes them in one transaction (a synced commit: group commit) and
resolves the futures on their event loop. The loop never builds rows, never
waits on the database.

While the store fails, each batch is synced to the process's journal instead
(durable too; ``creditops store replay`` loads it later), and the store is
tried again after a growing pause. A batch that can be neither committed nor
journaled fails its requests: they answer 503 with the cause, so no decision
is given that is not on record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from creditops.errors import StoreError
from creditops.serving.journal import Journal, LogEvents
from creditops.serving.store import InferenceStore

log = logging.getLogger(__name__)

RowsBuilder = Callable[[], list[dict[str, Any]]]


@dataclass(frozen=True)
class _Ticket:
    """One request waiting for its rows to be durable."""

    build: RowsBuilder
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the request was cancelled (client gone) meanwhile
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class GroupCommitWriter:
    """Writes the rows of concurrent requests in one synced commit, then answers them.

    Args:
        store: where the rows go (open it with ``durable=True`` for SQLite).
        journal: where a batch goes while the store fails.
        window: seconds the writer waits, after a first request, for others to share its commit.
        max_rows: the most rows in one commit.
        max_backoff: the longest pause before the store is tried again after a failure.
        events: what the writer reports (rows written, failed, journaled).
    """

    # the writer interface the feedback route reads: nothing is ever pending after an answer
    max_delay = 0.0

    def __init__(
        self,
        store: InferenceStore,
        journal: Journal,
        *,
        window: float = 0.002,
        max_rows: int = 2_000,
        max_backoff: float = 5.0,
        events: LogEvents | None = None,
    ) -> None:
        self.store = store
        self.journal = journal
        self.window = window
        self.max_rows = max_rows
        self.max_backoff = max_backoff
        self.events = events or LogEvents()
        self._tickets: deque[_Ticket] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._closing = False
        self._backoff = 0.0
        self._store_down_until = 0.0
        self.written_rows = 0
        self.failed_writes = 0
        self.spilled_rows = 0
        self.commits = 0
        self._journal_logged: Path | None = None
        self._thread = threading.Thread(target=self._run, name="inference-log-commit", daemon=True)

    def start(self) -> None:
        """Start the commit thread."""
        self._thread.start()

    @property
    def pending(self) -> int:
        """Requests waiting for their commit."""
        return len(self._tickets)

    def is_pending(self, request_id: str) -> bool:
        """Always False: a request id is answered only once its row is durable."""
        return False

    def wait_written(self, request_id: str, timeout: float) -> bool:
        """Always True (see :meth:`is_pending`)."""
        return True

    async def record(self, build: RowsBuilder) -> None:
        """Wait until the rows ``build`` returns are committed (or journaled).

        Raises:
            StoreError: they could be neither committed nor journaled, or the service stops.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._closing:
                raise StoreError("the service is stopping: the inference log takes no more rows")
            self._tickets.append(_Ticket(build, future, loop))
            self._wake.notify()
        await future

    def close(self) -> None:
        """Commit what waits, then stop the thread; closes the journal file."""
        with self._lock:
            self._closing = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join()
        self.journal.close()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._tickets and not self._closing:
                    self._wake.wait()
                if not self._tickets:
                    return
            if self.window > 0 and not self._closing:
                time.sleep(self.window)  # let concurrent requests join this commit
            with self._lock:
                tickets = [
                    self._tickets.popleft() for _ in range(min(len(self._tickets), self.max_rows))
                ]
            self._commit(tickets)

    def _commit(self, tickets: list[_Ticket]) -> None:
        rows: list[dict[str, Any]] = []
        owners: list[_Ticket] = []
        for ticket in tickets:
            try:
                rows.extend(ticket.build())
                owners.append(ticket)
            except Exception as exc:  # a bug in one request's rows must not fail the others
                log.exception("inference log: building a request's rows failed")
                self._answer([ticket], StoreError(f"its log rows could not be built: {exc}"))
        if not rows:
            self._answer(owners, None)
            return
        error = None if self._write_store(rows) else self._write_journal(rows)
        self._answer(owners, error)

    def _write_store(self, rows: list[dict[str, Any]]) -> bool:
        """Commit ``rows``; False if the store failed (or is resting after a failure)."""
        if time.monotonic() < self._store_down_until:
            return False
        try:
            self.store.write_rows(rows)
        except Exception as exc:  # a DB error or a bug: either way, the journal takes the rows
            self.failed_writes += 1
            self.events.failed(len(rows))
            self._backoff = min(max(self._backoff * 2, 0.1), self.max_backoff)
            self._store_down_until = time.monotonic() + self._backoff
            log.error(
                "inference log: committing %d row(s) to %r failed (journaling them; "
                "next try in %.1f s): %s",
                len(rows),
                self.store,
                self._backoff,
                (str(exc).splitlines() or [repr(exc)])[0][:300],
            )
            return False
        self._backoff = 0.0
        self.commits += 1
        self.written_rows += len(rows)
        self.events.written(len(rows))
        closed = self.journal.close() if self.spilled_rows else None
        if closed is not None:
            log.warning(
                "inference log: the store takes rows again; %s holds journaled rows: "
                "run `creditops store replay` to load them",
                closed,
            )
        return True

    def _write_journal(self, rows: list[dict[str, Any]]) -> StoreError | None:
        """Sync ``rows`` to the journal; the error that fails their requests, else None."""
        try:
            path = self.journal.append(rows)
        except StoreError as exc:
            log.error(
                "inference log: %d row(s) can be neither committed nor journaled: "
                "their requests are refused (503): %s",
                len(rows),
                exc,
            )
            return StoreError(f"the inference log is unavailable and {exc}")
        if path != self._journal_logged:  # once per file: once per outage
            self._journal_logged = path
            log.error(
                "inference log: the store is unavailable: rows are journaled to %s; "
                "load them with `creditops store replay` once %r is back",
                path,
                self.store,
            )
        self.spilled_rows += len(rows)
        self.events.spilled(len(rows))
        return None

    def _answer(self, tickets: list[_Ticket], error: StoreError | None) -> None:
        for ticket in tickets:
            own = None if error is None else StoreError(str(error))  # one per awaiting task
            # a closed loop (RuntimeError) has nobody waiting any more
            with contextlib.suppress(RuntimeError):
                ticket.loop.call_soon_threadsafe(_settle, ticket.future, own)
