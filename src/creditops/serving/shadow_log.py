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

import contextlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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


def lower_priority() -> None:
    """Lower the calling thread's CPU priority (on Linux a thread id is a process id here).

    The shadow threads then take the cores the champion's requests leave idle.
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


@dataclass(frozen=True)
class ShadowRow:
    """The challenger's score of one applicant."""

    request_id: str
    model_name: str
    model_version: int
    probability: float
    decision: str
    threshold: float


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
    if not rows:
        return 0
    now = datetime.now(UTC)
    values = [{**row.__dict__, "created_at": now} for row in rows]
    dialect = engine.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(shadow_inferences).on_conflict_do_nothing()
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(shadow_inferences).on_conflict_do_nothing()
    with engine.begin() as connection:
        connection.execute(statement, values)
    return len(values)


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
        self._queue: queue.Queue[ShadowRow | None] = queue.Queue(maxsize=max_rows)
        self._flush_seconds = flush_seconds
        self.written = 0
        self.dropped = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="shadow-writer", daemon=True)
        self._thread.start()

    def submit(self, rows: Sequence[ShadowRow]) -> None:
        """Queue ``rows``; never blocks (a full queue drops and counts them)."""
        for row in rows:
            try:
                self._queue.put_nowait(row)
            except queue.Full:
                self.dropped += 1

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        self._engine.dispose()

    def _run(self) -> None:
        lower_priority()
        stopping = False
        while not stopping:
            batch: list[ShadowRow] = []
            try:
                first = self._queue.get(timeout=self._flush_seconds)
            except queue.Empty:
                continue
            if first is None:
                stopping = True
            else:
                batch.append(first)
                # let rows gather: one insert of many rows costs little more than of one
                time.sleep(self._flush_seconds)
            while len(batch) < 20_000:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._write(batch)

    def _write(self, batch: list[ShadowRow]) -> None:
        try:
            self.written += write_shadow_rows(self._engine, batch)
        except SQLAlchemyError as exc:
            self.failed += len(batch)
            if self._on_failure is not None:
                self._on_failure(len(batch))
            log.error(
                "shadow log: %d challenger rows could not be written (%s); the champion's "
                "answers and log are unaffected",
                len(batch),
                redact_text(str(exc)),
            )
