"""Scoring the requests the scoring thread took together: one vectorised call, split after.

:func:`score_jobs` is the scoring thread's handler (:mod:`creditops.serving.batcher`):
each request's body is validated on its own (a bad one is refused alone), the
valid requests' rows are scored in one call per served model, and their
declined rows' contributions in one more; the results are split back into one
:class:`Scored` per request, and each request's answer is serialised there too.
None of it runs on the event loop. A row's probability and contributions do
not depend on the rows scored with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from creditops import schema
from creditops.inference.raw import Matrix, raw_matrix
from creditops.inference.reasons import REASON_METHOD
from creditops.inference.scorer import LoadedModel
from creditops.serving.bodies import applicant_rows
from creditops.serving.credit_time import explored_mask
from creditops.serving.request_ids import new_batch_id, new_request_ids
from creditops.serving.service import ScoringService

# Log rows of requests this small are built in the scoring thread, before the answer
# (a few microseconds); bigger ones in another thread hop, after it.
PREBUILT_ROWS = 16


class Scored:
    """One request's results, ready to answer and to log.

    ``contributions`` are those of the declined rows only (``reason_rows``, in
    order), and only when the request asked for reasons.
    """

    def __init__(
        self, model: LoadedModel, rows: list[dict[str, Any]], raw: Matrix, started: float
    ) -> None:
        self.model = model
        self.rows = rows
        self.raw = raw
        self.started = started
        self.batch_id = new_batch_id()
        self.request_ids = new_request_ids(len(rows))
        self.probability = np.zeros(0)
        self.decline = np.zeros(0, dtype=bool)
        self.explored = np.zeros(0, dtype=bool)  # declined by the model, granted anyway
        self.reason_rows = np.zeros(0, dtype=np.int64)
        self.contributions: Matrix | None = None
        self.latency_ms = 0.0
        self.prebuilt_rows: list[dict[str, Any]] | None = None

    def log_rows(self) -> list[dict[str, Any]]:
        """One inference-log row per scored applicant."""
        ref = self.model.ref
        created = datetime.now(UTC)
        common = {
            "batch_id": self.batch_id,
            "created_at": created,
            "model_name": ref.name,
            "model_version": ref.version,
            "threshold": ref.threshold,
            "latency_ms": self.latency_ms,
        }
        out = []
        for i, row in enumerate(self.rows):
            record = {name: row[name] for name in schema.FEATURES}
            record.update(common)
            record["request_id"] = self.request_ids[i]
            record["probability"] = float(self.probability[i])
            record["decision"] = "decline" if self.decline[i] else "approve"
            record["explored"] = bool(self.explored[i])
            record["application_at"] = row.get("application_at") or created
            out.append(record)
        return out


Answer = Callable[[ScoringService, Scored], bytes]


@dataclass(frozen=True)
class ScoreJob:
    """One request for the scoring thread: its body, its model, the answer to build."""

    service: ScoringService
    model: LoadedModel  # the request's model, whatever a reload does meanwhile
    body: bytes
    started: float
    answer: Answer
    reasons: bool
    mlflow: bool


JobResult = tuple[Scored, bytes] | BaseException


def score_jobs(jobs: Sequence[ScoreJob]) -> list[JobResult]:
    """Validate, score and answer ``jobs`` (the scoring thread's handler).

    Returns:
        Per job, in order: its :class:`Scored` and answer, or the exception
        to raise (``ApiError`` for a refused body).
    """
    results: list[JobResult | None] = [None] * len(jobs)
    parsed: dict[int, list[tuple[int, Scored]]] = {}
    for i, job in enumerate(jobs):
        try:
            rows = applicant_rows(job.service, job.body, mlflow=job.mlflow)
        except Exception as exc:  # ApiError, or anything else: this request's alone
            results[i] = exc
            continue
        scored = Scored(job.model, rows, raw_matrix(rows), job.started)
        parsed.setdefault(id(job.model), []).append((i, scored))
    for group in parsed.values():
        try:
            _score_together([jobs[i] for i, _ in group], [s for _, s in group])
        except Exception as exc:
            for i, _ in group:
                results[i] = exc
            continue
        for i, scored in group:
            results[i] = _answered(jobs[i], scored)
    return [r if r is not None else RuntimeError("request not scored") for r in results]


def _answered(job: ScoreJob, scored: Scored) -> JobResult:
    try:
        out = job.answer(job.service, scored)
    except Exception as exc:
        return exc
    scored.latency_ms = (time.perf_counter() - job.started) * 1000.0
    if len(scored.rows) <= PREBUILT_ROWS and not job.service.acknowledged:
        scored.prebuilt_rows = scored.log_rows()  # cheaper here than a second thread hop
    return scored, out


def _score_together(jobs: list[ScoreJob], scoreds: list[Scored]) -> None:
    """Score the requests of one model in one call, and their declines' contributions in one."""
    model = jobs[0].model
    raw = scoreds[0].raw if len(scoreds) == 1 else np.concatenate([s.raw for s in scoreds])
    scores = model.score(raw, reasons=False)
    offsets = np.cumsum([0, *(len(s.rows) for s in scoreds)])
    wanted: list[Scored] = []
    at: list[Matrix] = []  # the wanted rows' positions in ``raw``
    for job, scored, start, stop in zip(jobs, scoreds, offsets[:-1], offsets[1:], strict=True):
        _decide(job.service, scored, scores.probability[start:stop])
        if job.reasons and job.service.config.reasons_top_k > 0 and scored.decline.any():
            scored.reason_rows = np.flatnonzero(scored.decline)
            wanted.append(scored)
            at.append(start + scored.reason_rows)
    if not wanted:
        return
    rows = np.concatenate(at)
    transformed = None if scores.transformed is None else scores.transformed[rows]
    contributions = model.contributions(raw[rows], REASON_METHOD, transformed=transformed)
    if contributions is None:
        return
    start = 0
    for scored in wanted:
        stop = start + len(scored.reason_rows)
        scored.contributions = contributions[start:stop]
        start = stop


def _decide(service: ScoringService, scored: Scored, probability: Matrix) -> None:
    """Decisions at the model's threshold (explored declines granted), and their counts."""
    scored.probability = probability
    scored.decline = probability >= scored.model.ref.threshold
    share = service.config.explore_share
    scored.explored = explored_mask(scored.request_ids, scored.decline, share)
    scored.decline &= ~scored.explored  # an explored applicant is granted: decision approve
    declines = int(scored.decline.sum())
    metrics = service.metrics.decisions
    if declines:
        metrics.labels("decline").inc(declines)
    if len(scored.rows) - declines:
        metrics.labels("approve").inc(len(scored.rows) - declines)
