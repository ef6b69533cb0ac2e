"""Shadow scoring: the ``challenger`` alias scores every applicant the champion answered.

``[serve] shadow = true``. The champion's answer never waits for, and never
depends on, the challenger: a request hands its rows to :meth:`ShadowScorer.submit`
(a non-blocking put on a bounded queue) and returns. The challenger scores them
in a process of its own (:mod:`creditops.serving.shadow_worker`), which writes
them to the shadow log (:mod:`creditops.serving.shadow_log`), linked to the
champion's rows by request id: it shares the cores with the service, not the
service's interpreter lock. A challenger that cannot be loaded or raises while
scoring is logged at ERROR and counted in ``/metrics``
(``creditops_shadow_errors``); serving goes on. So does it when the shadow
process itself dies (counted, logged, restarted at the next alias poll).

The alias is looked up at every champion poll: when it moves, the new
version is shadowed from then on; when it is deleted, shadow scoring stops.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from creditops.inference.scorer import LoadedModel
from creditops.serving import shadow_worker
from creditops.serving.metrics import ServiceMetrics
from creditops.serving.shadow_log import shadow_engine

log = logging.getLogger(__name__)

Matrix = np.ndarray
# Loads the challenger: None when the alias is not set (raises when it cannot be loaded).
# the rows the requests hand over are sent to the shadow process this often, as one message
GATHER_SECONDS = 0.05
ChallengerLoader = Callable[[int | None], "tuple[int, LoadedModel | None] | None"]


class ShadowScorer:
    """The shadowed challenger: its process, the queue to it and the thread reading it back.

    Args:
        store_url: the inference log's database (the shadow log lives beside it).
        metrics: the service's metrics (the shadow figures are added there).
        max_rows: applicants held at most in the queue (beyond: dropped, counted).
    """

    def __init__(self, store_url: str, metrics: ServiceMetrics, *, max_rows: int = 100_000) -> None:
        self.metrics = metrics
        self.model: LoadedModel | None = None
        self.status = "no challenger loaded yet"
        self.rows = 0
        self.agreements = 0
        self.written = self.failed = self.dropped = 0
        shadow_engine(store_url).dispose()  # a bad URL fails the service's start, here
        self._store_url, self._max_rows = store_url, max_rows
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._closed = False
        self._held: list[tuple[Matrix, Sequence[str], Matrix]] = []
        self._held_rows = 0
        self._holding = threading.Lock()
        self._start_process()
        self._stop_forwarding = threading.Event()
        self._forwarder = threading.Thread(target=self._forward, name="shadow-forward", daemon=True)
        self._forwarder.start()
        metrics.shadow_agreement.set_function(self._agreement)

    def _start_process(self) -> None:
        self._inbox: Any = self._context.Queue(maxsize=64)
        self._outbox: Any = self._context.Queue()
        self._process = self._context.Process(
            target=shadow_worker.run,
            args=(self._store_url, self._inbox, self._outbox, self._max_rows),
            name="creditops-shadow",
            daemon=True,
        )
        self._process.start()
        self._reader = threading.Thread(target=self._read, name="shadow-reader", daemon=True)
        self._reader.start()

    def _agreement(self) -> float:
        return self.agreements / self.rows if self.rows else 0.0

    def refresh(self, load: ChallengerLoader) -> str:
        """Follow the ``challenger`` alias: load a new version, or stop when it is gone.

        Never raises: a challenger that fails to load is logged loudly and counted.
        """
        with self._lock:
            if self._closed:
                return self.status
            if not self._process.is_alive():
                self._restart()
        current = self.model.ref.version if self.model is not None else None
        try:
            found = load(current)
            payload = None
            if found is not None and found[1] is not None:
                payload = pickle.dumps((found[1].ref, found[1].registered))
        except Exception as exc:  # any failure of the challenger must leave serving alone
            self._load_failed(f"challenger cannot be loaded: {exc}")
            return self.status
        if found is None:
            if self.model is not None:
                log.warning("shadow: the challenger alias is gone; shadow scoring stops")
                self._send(("none",))
            self.model = None
            self.metrics.shadow_version.set(0)
            self.status = "no challenger alias: nothing shadowed"
            return self.status
        version, loaded = found
        if loaded is not None:
            self.model = loaded
            self._send(("model", version, payload))
            self.metrics.shadow_version.set(version)
            log.info("shadow: challenger version %d scored alongside the champion", version)
        self.status = f"shadowing challenger version {version}"
        return self.status

    def _load_failed(self, status: str) -> None:
        self.metrics.shadow_errors.labels("load").inc()
        if self.model is not None:
            self._send(("none",))
        self.model = None
        self.metrics.shadow_version.set(0)
        self.status = status
        log.error("shadow: %s; champion answers are unaffected", status)

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self._inbox.put(message, timeout=5)
        except (queue.Full, ValueError, OSError) as exc:
            log.error("shadow: cannot reach the shadow process (%s)", exc)

    def submit(self, raw: Matrix, request_ids: Sequence[str], champion_approved: Matrix) -> None:
        """Hold rows for the challenger; returns at once (beyond ``max_rows`` held: dropped).

        A list append, no pickling: the forwarder thread sends what is held to
        the shadow process every ``GATHER_SECONDS``, as one message.
        """
        if self.model is None or len(request_ids) == 0:
            return
        with self._holding:
            if self._held_rows + len(request_ids) <= self._max_rows:
                self._held.append((raw, request_ids, champion_approved))
                self._held_rows += len(request_ids)
                return
        self.metrics.shadow_dropped.inc(len(request_ids))

    def _forward(self) -> None:
        """Every ``GATHER_SECONDS``: the rows held, concatenated, to the shadow process."""
        while not self._stop_forwarding.wait(GATHER_SECONDS):
            self._flush()

    def _flush(self) -> None:
        with self._holding:
            held, self._held, self._held_rows = self._held, [], 0
        if not held:
            return
        raw = np.concatenate([h[0] for h in held])
        ids = [i for h in held for i in h[1]]
        approved = np.concatenate([np.asarray(h[2], dtype=bool) for h in held])
        try:
            self._inbox.put(("job", raw, ids, approved), timeout=1.0)
        except (queue.Full, ValueError, OSError):  # full, or the process' queue is closed
            self.metrics.shadow_dropped.inc(len(ids))

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, write it, stop the process."""
        self._stop_forwarding.set()
        self._forwarder.join(timeout)
        with self._lock:
            self._closed = True
            self._flush()
            self._send_close(timeout)

    def _send_close(self, timeout: float) -> None:
        if self._process.is_alive():
            self._send_none()
            self._process.join(timeout)
        if self._process.is_alive():
            log.error("shadow: the shadow process did not stop in %.0f s; terminated", timeout)
            self._process.terminate()
            self._process.join(1.0)
        self._reader.join(timeout)
        self._abandon_queue()

    def _abandon_queue(self) -> None:
        """Messages nobody will read are not waited for (at exit, the queue's thread would)."""
        self._inbox.cancel_join_thread()
        self._inbox.close()

    def _send_none(self) -> None:
        try:
            self._inbox.put(None, timeout=5)
        except (queue.Full, ValueError, OSError) as exc:
            log.error("shadow: cannot stop the shadow process cleanly (%s)", exc)

    def _restart(self) -> None:
        """A shadow process that died (killed, out of memory): counted, logged, started again."""
        code = self._process.exitcode
        self.metrics.shadow_errors.labels("process").inc()
        log.error("shadow: the shadow process died (exit code %s); starting a new one", code)
        self._reader.join(1.0)
        self._abandon_queue()
        self.model = None  # the new process has no model: the next refresh sends it
        self._start_process()

    def _read(self) -> None:
        """The process's reports, into the metrics and the log (until it closes or dies)."""
        while True:
            try:
                message = self._outbox.get(timeout=0.5)
            except queue.Empty:
                if not self._process.is_alive() and self._outbox.empty():
                    return
                continue
            except (EOFError, OSError, ValueError):
                return
            kind = message[0]
            if kind == "scored":
                _, _version, rows, agreed = message
                self.rows += rows
                self.agreements += agreed
                self.metrics.shadow_rows.inc(rows)
                self.metrics.shadow_agreements.inc(agreed)
            elif kind == "error":
                _, stage, version, rows, text = message
                self.metrics.shadow_errors.labels(stage).inc(max(rows, 1) if stage == "log" else 1)
                if stage == "load":
                    self.model = None
                    self.metrics.shadow_version.set(0)
                    self.status = f"challenger version {version} cannot be prepared: {text}"
                log.error(
                    "shadow: challenger version %s, %s failed%s: %s; champion answers are "
                    "unaffected",
                    version,
                    stage,
                    f" for {rows} row(s)" if rows else "",
                    text,
                )
            elif kind == "loaded":
                log.info("shadow: challenger version %d ready in the shadow process", message[1])
            elif kind == "closed":
                _, self.written, self.failed, self.dropped = message
                return
