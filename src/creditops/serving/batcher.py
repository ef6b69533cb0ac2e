"""One scoring thread that takes the requests queued meanwhile together (micro-batching).

The event loop never scores. Instead of a hop to a pool of worker threads per
request (whose threads then contend for the GIL with the loop and with each
other), a request puts a job and its handler on :class:`MicroBatcher`'s queue
and awaits a future. One daemon thread takes the first job waiting and every
other job queued by then (up to ``max_jobs``), hands those of one handler to
it in one call, which scores their rows in one vectorised call and splits the
results, and resolves all their futures with one wake-up of the loop. Under load, the requests that
arrive while one batch is scored make up the next: the per-call costs (the
compiled transform, the booster's entry point, the contributions) are paid
once per batch, not once per request.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

Job = TypeVar("Job")
Result = TypeVar("Result")
# handle(jobs) -> one result, or the exception to raise, per job (in order)
Handler = Callable[[Sequence[Job]], Sequence[Result | BaseException]]


@dataclass(frozen=True)
class _Ticket(Generic[Job, Result]):
    handle: Handler[Job, Result]
    job: Job
    future: asyncio.Future[Result]
    loop: asyncio.AbstractEventLoop


def _settle(tickets: list[_Ticket[Job, Result]], results: Sequence[Result | BaseException]) -> None:
    """Resolve each ticket's future (on its loop) with its result or exception."""
    for ticket, result in zip(tickets, results, strict=True):
        if ticket.future.done():  # the request was cancelled (client gone) meanwhile
            continue
        if isinstance(result, BaseException):
            ticket.future.set_exception(result)
        else:
            ticket.future.set_result(result)


class MicroBatcher:
    """A queue of jobs and the one thread that handles them in batches.

    Args:
        name: the thread's name.
        max_jobs: the most jobs taken from the queue at once.
    """

    def __init__(self, *, name: str, max_jobs: int = 64) -> None:
        self._name = name
        self._max_jobs = max_jobs
        self._queue: queue.SimpleQueue[_Ticket[Any, Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.jobs = 0

    def start(self) -> None:
        """Start the thread (idempotent; :meth:`submit` starts it too)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Handle what is queued, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    async def submit(self, handle: Handler[Job, Result], job: Job) -> Result:
        """Queue ``job`` and wait for its result (its exception is raised here).

        Args:
            handle: scores a batch of jobs of its kind; returns a result or an
                exception per job, in order. Jobs queued together with the
                same handler are handed to it in one call.
            job: this request's job.
        """
        if self._thread is None:
            self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._queue.put(_Ticket(handle, job, future, loop))
        return await future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            tickets = [first]
            stop = False
            while len(tickets) < self._max_jobs:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                tickets.append(more)
            by_handler: dict[Handler[Any, Any], list[_Ticket[Any, Any]]] = {}
            for ticket in tickets:
                by_handler.setdefault(ticket.handle, []).append(ticket)
            for group in by_handler.values():
                self._handle_batch(group)
            if stop:
                return

    def _handle_batch(self, tickets: list[_Ticket[Any, Any]]) -> None:
        try:
            results: Sequence[Any] = tickets[0].handle([t.job for t in tickets])
            if len(results) != len(tickets):
                raise RuntimeError(f"{len(results)} result(s) for {len(tickets)} job(s)")
        except Exception as exc:  # the thread must outlive any one batch
            log.exception("scoring a batch of %d request(s) failed", len(tickets))
            results = [exc] * len(tickets)
        self.batches += 1
        self.jobs += len(tickets)
        by_loop: dict[asyncio.AbstractEventLoop, list[int]] = {}
        for i, ticket in enumerate(tickets):
            by_loop.setdefault(ticket.loop, []).append(i)
        for loop, picked in by_loop.items():
            try:  # one wake-up of each loop for the whole batch
                loop.call_soon_threadsafe(
                    _settle, [tickets[i] for i in picked], [results[i] for i in picked]
                )
            except RuntimeError:  # that loop is closed: nobody waits for these any more
                log.warning("%d scored request(s) for a closed event loop", len(picked))
