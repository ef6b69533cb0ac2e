"""The shadow log: the challenger's score of every applicant the champion answered.

Table ``shadow_inferences``, in the inference log's database, one row per
applicant the challenger scored in the shadow, linked to the champion's row of
``inferences`` by ``request_id``:

=================  ==============================================================
request_id         String(32), primary key: the champion's row it shadows
model_name         the registered model's name
model_version      the challenger's version
probability        the challenger's PD of the applicant
decision           ``approve`` | ``decline`` at the challenger's own threshold
threshold          that threshold
created_at         when the shadow score was computed (UTC)
=================  ==============================================================

Rows are written by :class:`ShadowWriter`, a background thread fed after the
champion's answer has been sent, so the champion's latency never waits on it;
a row that cannot be written is counted and logged, never retried forever.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from creditops.errors import StoreError
from creditops.secrets import redact_text, redact_url

log = logging.getLogger(__name__)

COLUMNS = (
    "request_id",
    "model_name",
    "model_version",
    "probability",
    "decision",
    "threshold",
    "created_at",
)

metadata = sa.MetaData()

shadow_inferences = sa.Table(
    "shadow_inferences",
    metadata,
    sa.Column("request_id", sa.String(32), primary_key=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False, index=True),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("decision", sa.String(8), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class ShadowRow:
    """The challenger's score of one applicant."""

    request_id: str
    model_name: str
    model_version: int
    probability: float
    decision: str
    threshold: float


@dataclass(frozen=True)
class ShadowBatch:
    """The challenger's scores of many applicants, by column (no object per applicant)."""

    request_ids: Sequence[str]
    model_name: str
    model_version: int
    probability: np.ndarray
    threshold: float

    def __len__(self) -> int:
        return len(self.request_ids)

    def records(self, created_at: object) -> list[tuple[object, ...]]:
        """One tuple per applicant, in the order of :data:`COLUMNS`."""
        name, version, threshold = self.model_name, self.model_version, self.threshold
        return [
            (
                rid,
                name,
                version,
                p,
                "approve" if p < threshold else "decline",
                threshold,
                created_at,
            )
            for rid, p in zip(self.request_ids, self.probability.tolist(), strict=True)
        ]


def shadow_engine(url: str) -> sa.engine.Engine:
    """An engine on the inference log's database, with the shadow table created if absent."""
    try:
        engine = sa.create_engine(url, pool_pre_ping=True)
        metadata.create_all(engine)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise StoreError(
            f"shadow log in {redact_url(url)} cannot be opened: {redact_text(str(exc))}"
        ) from exc
    return engine


def write_shadow_rows(engine: sa.engine.Engine, rows: Sequence[ShadowRow]) -> int:
    """Insert ``rows`` in one transaction; a request id already stored is left as it was."""
    now = _created_at(engine)
    return _insert(
        engine,
        [
            (
                r.request_id,
                r.model_name,
                r.model_version,
                r.probability,
                r.decision,
                r.threshold,
                now,
            )
            for r in rows
        ],
    )


def write_shadow_batches(engine: sa.engine.Engine, batches: Sequence[ShadowBatch]) -> int:
    """Insert every applicant of ``batches`` in one transaction (ids already stored are kept)."""
    now = _created_at(engine)
    return _insert(engine, [record for batch in batches for record in batch.records(now)])


def _created_at(engine: sa.engine.Engine) -> object:
    """Now (UTC), as the driver takes it for the ``created_at`` column."""
    process = shadow_inferences.c.created_at.type.bind_processor(engine.dialect)
    now = datetime.now(UTC)
    return process(now) if process is not None else now


def _insert(engine: sa.engine.Engine, records: list[tuple[object, ...]]) -> int:
    """The records through the driver's own ``executemany``: a C loop, not a Python one.

    The shadow writer shares the process (and its GIL) with the request path: a
    statement run by the driver holds the interpreter for far less time than
    SQLAlchemy's per-row parameter processing.
    """
    if not records:
        return 0
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(engine.dialect.paramstyle)
    if mark is None:
        raise StoreError(
            f"shadow log: driver parameter style {engine.dialect.paramstyle!r} is not supported"
        )
    statement = (
        f"INSERT INTO {shadow_inferences.name} ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join([mark] * len(COLUMNS))}) ON CONFLICT (request_id) DO NOTHING"
    )
    with engine.begin() as connection:
        connection.exec_driver_sql(statement, records)
    return len(records)


def read_shadow(url: str, model_version: int | None = None) -> pd.DataFrame:
    """Every shadow row (of one challenger version, if given), oldest first."""
    engine = shadow_engine(url)
    query = sa.select(*(shadow_inferences.c[name] for name in COLUMNS))
    if model_version is not None:
        query = query.where(shadow_inferences.c.model_version == model_version)
    try:
        with engine.connect() as connection:
            records = connection.execute(query.order_by(shadow_inferences.c.created_at)).all()
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot read the shadow log of {redact_url(url)}: {redact_text(str(exc))}"
        ) from exc
    finally:
        engine.dispose()
    return pd.DataFrame([tuple(r) for r in records], columns=list(COLUMNS))


class ShadowWriter:
    """A background thread that writes shadow rows in batches, off the request path.

    Args:
        url: the inference log's database URL.
        max_rows: rows held at most; beyond, new rows are dropped and counted
            (a shadow score is evidence, not a decision: it never blocks serving).
        flush_seconds: how long a batch gathers rows after its first (then written at once).
        on_failure: called with the number of rows of a batch that could not be written.
    """

    def __init__(
        self,
        url: str,
        *,
        max_rows: int = 100_000,
        flush_seconds: float = 0.25,
        on_failure: Callable[[int], None] | None = None,
    ) -> None:
        self._engine = shadow_engine(url)
        self._on_failure = on_failure
        self._queue: queue.Queue[ShadowBatch | None] = queue.Queue()
        self._max_rows = max_rows
        self._held = 0  # rows queued, not yet taken by the writer
        self._lock = threading.Lock()
        self._flush_seconds = flush_seconds
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="shadow-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: ShadowBatch) -> None:
        """Queue ``batch``; never blocks (beyond ``max_rows`` held, it is dropped and counted)."""
        with self._lock:
            if self._held + len(batch) > self._max_rows:
                self.dropped += len(batch)
                return
            self._held += len(batch)
        self._queue.put_nowait(batch)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        self._engine.dispose()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self._flush_seconds)
            except queue.Empty:
                continue
            batches: list[ShadowBatch] = []
            if first is None:
                stopping = True
            else:
                batches.append(first)
                # let rows gather: one insert of many rows costs little more than of one
                time.sleep(self._flush_seconds)
            while not stopping:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                else:
                    batches.append(item)
            with self._lock:
                self._held -= sum(len(b) for b in batches)
            self._write(batches)

    def _write(self, batches: list[ShadowBatch]) -> None:
        rows = sum(len(b) for b in batches)
        try:
            self.written += write_shadow_batches(self._engine, batches)
        except (SQLAlchemyError, StoreError) as exc:
            self.failed += rows
            if self._on_failure is not None:
                self._on_failure(rows)
            log.error(
                "shadow log: %d challenger rows could not be written (%s); the champion's "
                "answers and log are unaffected",
                rows,
                redact_text(str(exc)),
            )
