"""The inference log: every scored row, its model version, and later its outcome.

SQLAlchemy 2 Core over SQLite (the default, a local file) or PostgreSQL (by
URL). Monitoring and retraining read it through :meth:`InferenceStore.read_frame`.

Table ``inferences`` (one row per scored applicant):

=================  ==================================================================
request_id         String(32), primary key: uuid4 hex, what ``POST /feedback`` takes
batch_id           String(32): one per HTTP request
created_at         timezone-aware UTC timestamp (indexed)
model_name         the registered model's name
model_version      its version (integer)
<13 features>      named as in ``schema.FEATURES``: Float (numeric), String (categorical)
probability        predicted probability of default (bad)
decision           ``approve`` | ``decline``
threshold          the decision threshold in force (decline when probability >= it)
latency_ms         time spent scoring the request that held this row
outcome            ``good`` | ``bad`` | NULL until feedback arrives
outcome_at         when the outcome was recorded
=================  ==================================================================

Writes come off the request path through :class:`InferenceLogWriter`, a
background thread that batches rows, retries on database errors (loudly) and
drains its queue on shutdown.
"""

from __future__ import annotations

import enum
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

# Imported whole, here, before any thread runs: the service's registry warm-up imports
# MLflow (and so sqlalchemy.orm) in a thread while the log writer may be opening its
# first connection, whose ping then met sqlalchemy.orm's half-registered inspection
# hooks ("partially initialized module 'sqlalchemy.orm.exc'") and killed the writer.
import sqlalchemy.orm
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from creditops import schema
from creditops.errors import StoreError

log = logging.getLogger(__name__)

OUTCOMES = (schema.NEGATIVE_LABEL, schema.POSITIVE_LABEL)
DECISIONS = ("approve", "decline")
FRAME_COLUMNS = (
    "request_id",
    "created_at",
    "model_version",
    *schema.FEATURES,
    "probability",
    "decision",
    "outcome",
)

metadata = sa.MetaData()


def _feature_column(name: str) -> sa.Column[Any]:
    kind: Any = sa.String(32) if name in schema.CATEGORICAL else sa.Float()
    return sa.Column(name, kind, nullable=True)


inferences = sa.Table(
    "inferences",
    metadata,
    sa.Column("request_id", sa.String(32), primary_key=True),
    sa.Column("batch_id", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    *(_feature_column(name) for name in schema.FEATURES),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("outcome", sa.String(8), nullable=True),
    sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
)


class OutcomeResult(enum.Enum):
    """What :meth:`InferenceStore.record_outcome` did."""

    RECORDED = "recorded"  # the outcome is now stored
    UNCHANGED = "unchanged"  # the same outcome was already stored (idempotent repeat)
    CONFLICT = "conflict"  # a different outcome was already stored; nothing changed
    UNKNOWN = "unknown"  # no inference has this request id


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets several server workers write while monitoring reads; busy_timeout
    # makes a writer wait for a lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


class InferenceStore:
    """The ``inferences`` table behind a SQLAlchemy URL.

    Args:
        url: ``sqlite:///path.db`` (parent folders are created) or ``postgresql://...``.

    Raises:
        StoreError: the URL is malformed or names an unknown dialect.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise StoreError(f"inference store URL {url!r} is malformed: {exc}") from exc
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = sa.create_engine(url, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(f"inference store {url!r} cannot be opened: {exc}") from exc
        if parsed.get_backend_name() == "sqlite":
            sa.event.listen(self.engine, "connect", _set_sqlite_pragmas)

    def __repr__(self) -> str:
        return f"InferenceStore({self.engine.url.render_as_string(hide_password=True)!r})"

    def create(self) -> None:
        """Create the table and its index if absent."""
        try:
            metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot create the inference table in {self!r}: {exc}") from exc

    def write_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert scored rows (dicts keyed by column name) in one transaction.

        Idempotent: a row whose ``request_id`` is already stored is skipped, so
        the writer may retry a batch whose commit reached the database but whose
        acknowledgement was lost. Missing feature keys are stored as NULL. Raises
        ``SQLAlchemyError`` as is, so that the writer can tell a database failure
        from a bug and retry.
        """
        if not rows:
            return
        with self.engine.begin() as connection:
            connection.execute(self._insert_new(), [_complete(row) for row in rows])

    def _insert_new(self) -> Any:
        """``INSERT ... ON CONFLICT (request_id) DO NOTHING`` in this database's dialect."""
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(inferences).on_conflict_do_nothing(index_elements=["request_id"])
        if dialect == "sqlite":
            # ON CONFLICT (request_id) rather than INSERT OR IGNORE: only a duplicate
            # id is skipped; a NULL in a required column still fails loudly
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(inferences).on_conflict_do_nothing(index_elements=["request_id"])
        return inferences.insert()  # other databases: a duplicate still fails

    def record_outcome(self, request_id: str, outcome: str) -> OutcomeResult:
        """Attach the observed outcome (``good``/``bad``) to one inference.

        Raises:
            StoreError: ``outcome`` is not good/bad, or the database fails.
        """
        if outcome not in OUTCOMES:
            raise StoreError(f"outcome {outcome!r} is not one of good, bad")
        table = inferences
        # Under READ COMMITTED another worker's writer may commit the row between
        # the UPDATE (no row yet) and the SELECT (the row, outcome still NULL):
        # that is not a conflict, so the update is tried again.
        for _ in range(3):
            try:
                with self.engine.begin() as connection:
                    updated = connection.execute(
                        table.update()
                        .where(table.c.request_id == request_id, table.c.outcome.is_(None))
                        .values(outcome=outcome, outcome_at=datetime.now(UTC))
                    ).rowcount
                    if updated:
                        return OutcomeResult.RECORDED
                    current = connection.execute(
                        sa.select(table.c.outcome).where(table.c.request_id == request_id)
                    ).first()
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot record the outcome of {request_id}: {exc}") from exc
            if current is None:
                return OutcomeResult.UNKNOWN
            if current[0] is not None:
                return OutcomeResult.UNCHANGED if current[0] == outcome else OutcomeResult.CONFLICT
        raise StoreError(f"cannot record the outcome of {request_id}: its row kept changing")

    def count(self) -> int:
        """How many inferences are stored."""
        try:
            with self.engine.connect() as connection:
                return int(
                    connection.execute(
                        sa.select(sa.func.count()).select_from(inferences)
                    ).scalar_one()
                )
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot count inferences in {self!r}: {exc}") from exc

    def read_frame(
        self,
        last_n: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        labelled_only: bool = False,
    ) -> pd.DataFrame:
        """Stored inferences as a frame, oldest first.

        Args:
            last_n: keep only the newest ``last_n`` rows (after the other filters).
            since: keep rows created at or after this time (naive means UTC).
            until: keep rows created before this time (naive means UTC).
            labelled_only: keep only rows whose outcome is known.

        Returns:
            Columns ``FRAME_COLUMNS``: features in the contract's dtypes (float64 /
            object with NaN for missing), ``created_at`` as UTC timestamps.
        """
        table = inferences
        query = sa.select(*(table.c[name] for name in FRAME_COLUMNS))
        if since is not None:
            query = query.where(table.c.created_at >= _utc(since))
        if until is not None:
            query = query.where(table.c.created_at < _utc(until))
        if labelled_only:
            query = query.where(table.c.outcome.is_not(None))
        # created_at ties (one batch) are broken by insertion order where the
        # database keeps one; request ids are random, so they are not used.
        query = query.order_by(table.c.created_at.desc())
        if last_n is not None:
            query = query.limit(max(int(last_n), 0))
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(query).all()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read inferences from {self!r}: {exc}") from exc
        frame = pd.DataFrame(list(reversed(rows)), columns=list(FRAME_COLUMNS))
        return _typed(frame)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()


def _complete(row: dict[str, Any]) -> dict[str, Any]:
    out = {name: row.get(name) for name in schema.FEATURES}
    out.update(row)
    for name in schema.NUMERIC:
        value = out[name]
        if isinstance(value, float) and value != value:  # NaN is NULL in SQL
            out[name] = None
    return out


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    # SQLite hands back naive datetimes: they were written as UTC.
    created = pd.to_datetime(frame["created_at"])
    frame["created_at"] = (
        created.dt.tz_localize(UTC) if created.dt.tz is None else created.dt.tz_convert(UTC)
    )
    frame["model_version"] = frame["model_version"].astype("int64")
    features = schema.coerce_features(frame)
    for name in schema.FEATURES:
        frame[name] = features[name]
    frame["probability"] = frame["probability"].astype("float64")
    for name in ("decision", "outcome"):
        frame[name] = frame[name].astype("object").where(frame[name].notna(), np.nan)
    return frame


# --- the background writer ------------------------------------------------------


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
