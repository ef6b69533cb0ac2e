"""Shadow scoring: the ``challenger`` alias scores every applicant the champion answered.

``[serve] shadow = true``. The champion's answer never waits for, and never
depends on, the challenger: a request hands its rows to :meth:`ShadowScorer.submit`
(a non-blocking put on a bounded queue) and returns; one background thread
scores the queued rows with the challenger and writes them to the shadow log
(:mod:`creditops.serving.shadow_log`), linked to the champion's rows by request
id. A challenger that cannot be loaded or raises while scoring is logged at
ERROR and counted in ``/metrics`` (``creditops_shadow_errors``); serving goes on.

The alias is looked up at every champion poll: when it moves, the new
version is shadowed from then on; when it is deleted, shadow scoring stops.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from creditops.inference.scorer import LoadedModel
from creditops.serving.metrics import ServiceMetrics
from creditops.serving.shadow_log import ShadowBatch, ShadowWriter

log = logging.getLogger(__name__)

Matrix = np.ndarray
# the scoring thread gathers rows for this long after the first, then scores them at once
GATHER_SECONDS = 0.05
BATCH_ROWS = 8_192
# Loads the challenger: None when the alias is not set (raises when it cannot be loaded).
ChallengerLoader = Callable[[int | None], "tuple[int, LoadedModel | None] | None"]


@dataclass(frozen=True)
class ShadowJob:
    """Rows the champion answered: their raw features, ids and the champion's decisions."""

    raw: Matrix
    request_ids: Sequence[str]
    champion_approved: Matrix


class ShadowScorer:
    """The shadowed challenger, its queue, its scoring thread and its log.

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
        self._writer = ShadowWriter(
            store_url,
            max_rows=max_rows,
            on_failure=lambda rows: metrics.shadow_errors.labels("log").inc(rows),
        )
        self._queue: queue.Queue[ShadowJob | None] = queue.Queue(maxsize=max(max_rows // 8, 1))
        self._thread = threading.Thread(target=self._run, name="shadow-scorer", daemon=True)
        metrics.shadow_agreement.set_function(self._agreement)
        self._thread.start()

    def _agreement(self) -> float:
        return self.agreements / self.rows if self.rows else 0.0

    def refresh(self, load: ChallengerLoader) -> str:
        """Follow the ``challenger`` alias: load a new version, or stop when it is gone.

        Never raises: a challenger that fails to load is logged loudly and counted.
        """
        current = self.model.ref.version if self.model is not None else None
        try:
            found = load(current)
        except Exception as exc:  # any failure of the challenger must leave serving alone
            self.metrics.shadow_errors.labels("load").inc()
            self.model = None
            self.metrics.shadow_version.set(0)
            self.status = f"challenger cannot be loaded: {exc}"
            log.error("shadow: %s; champion answers are unaffected", self.status)
            return self.status
        if found is None:
            if self.model is not None:
                log.warning("shadow: the challenger alias is gone; shadow scoring stops")
            self.model = None
            self.metrics.shadow_version.set(0)
            self.status = "no challenger alias: nothing shadowed"
            return self.status
        version, loaded = found
        if loaded is not None:
            self.model = loaded
            self.metrics.shadow_version.set(version)
            log.info("shadow: challenger version %d scored alongside the champion", version)
        self.status = f"shadowing challenger version {version}"
        return self.status

    def submit(self, raw: Matrix, request_ids: Sequence[str], champion_approved: Matrix) -> None:
        """Queue rows for the challenger; returns at once (a full queue drops and counts)."""
        if self.model is None or len(request_ids) == 0:
            return
        try:
            self._queue.put_nowait(ShadowJob(raw, request_ids, champion_approved))
        except queue.Full:
            self.metrics.shadow_dropped.inc(len(request_ids))

    def close(self, timeout: float = 10.0) -> None:
        """Score what is queued, write it, stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        self._writer.close(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            jobs, stopping = self._gather()
            model = self.model  # one read: a swap mid-batch scores the batch with one version
            if model is None or not jobs:
                continue
            job = ShadowJob(
                np.concatenate([j.raw for j in jobs]),
                [i for j in jobs for i in j.request_ids],
                np.concatenate([j.champion_approved for j in jobs]),
            )
            try:
                rows = self._score(model, job)
            except Exception:  # a broken challenger never reaches a champion answer
                self.metrics.shadow_errors.labels("score").inc()
                log.exception(
                    "shadow: challenger version %d failed to score %d row(s); champion answers "
                    "are unaffected",
                    model.ref.version,
                    len(job.request_ids),
                )
                continue
            self._writer.submit(rows)

    def _gather(self) -> tuple[list[ShadowJob], bool]:
        """The queued jobs to score together, and whether the scorer is closing.

        Waits for one job, lets the next requests' rows gather for
        ``GATHER_SECONDS``, then takes what is queued (up to ``BATCH_ROWS``):
        one scoring call for many applicants costs about what one costs, which
        keeps the challenger's share of the cores small.
        """
        first = self._queue.get()
        if first is None:
            return [], True
        jobs, rows = [first], len(first.request_ids)
        time.sleep(GATHER_SECONDS)
        while rows < BATCH_ROWS:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            rows += len(job.request_ids)
        return jobs, False

    def _score(self, model: LoadedModel, job: ShadowJob) -> ShadowBatch:
        probability = np.asarray(model.score(job.raw, reasons=False).probability, dtype=float)
        threshold = float(model.ref.threshold)
        agreed = int(np.sum((probability < threshold) == job.champion_approved))
        self.rows += len(probability)
        self.agreements += agreed
        self.metrics.shadow_rows.inc(len(probability))
        self.metrics.shadow_agreements.inc(agreed)
        return ShadowBatch(
            job.request_ids, model.ref.name, model.ref.version, probability, threshold
        )
