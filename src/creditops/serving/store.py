"""The inference log: every scored row, its model version, and later its outcome.

SQLAlchemy 2 Core over SQLite (the default, a local file) or PostgreSQL (by
URL). Monitoring and retraining read it through :meth:`InferenceStore.read_frame`.

Table ``inferences`` (one row per scored applicant):

=================  ==================================================================
request_id         String(32), primary key: hex, issue time first; what ``POST /feedback`` takes
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
outcome_source     the feedback key that posted it: the first 8 hex digits of its SHA-256
=================  ==================================================================

Writes come off the request path through
:class:`~creditops.serving.log_writer.InferenceLogWriter`, a background thread
that batches rows, retries on database errors (loudly), journals what its
bounded queue cannot hold (:mod:`~creditops.serving.journal`) and drains its
queue on shutdown; in acknowledged mode through
:class:`~creditops.serving.group_commit.GroupCommitWriter`.
"""

from __future__ import annotations

import enum
import logging
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
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from creditops import schema
from creditops.errors import StoreError
from creditops.secrets import redact_text, redact_url

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
    kind: sa.types.TypeEngine[Any] = sa.String(32) if name in schema.CATEGORICAL else sa.Float()
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
    sa.Column("outcome_source", sa.String(16), nullable=True),
)


class OutcomeResult(enum.Enum):
    """What :meth:`InferenceStore.record_outcome` did."""

    RECORDED = "recorded"  # the outcome is now stored
    UNCHANGED = "unchanged"  # the same outcome was already stored (idempotent repeat)
    CONFLICT = "conflict"  # a different outcome was already stored; nothing changed
    UNKNOWN = "unknown"  # no inference has this request id


def _sqlite_pragmas(durable: bool) -> Callable[[DBAPIConnection, ConnectionPoolEntry], None]:
    # WAL lets several server workers write while monitoring reads; busy_timeout
    # makes a writer wait for a lock instead of failing at once. NORMAL syncs the
    # WAL at checkpoints only (a commit survives a crash of the process, not of the
    # machine); FULL syncs it at every commit, as acknowledged durability promises.
    synchronous = "FULL" if durable else "NORMAL"

    def set_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    return set_pragmas


class InferenceStore:
    """The ``inferences`` table behind a SQLAlchemy URL.

    Args:
        url: ``sqlite:///path.db`` (parent folders are created) or ``postgresql://...``.
        durable: every SQLite commit is synced to disk (PostgreSQL's commits are by default).

    Raises:
        StoreError: the URL is malformed or names an unknown dialect.
    """

    def __init__(self, url: str, *, durable: bool = False) -> None:
        self.url = url
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise StoreError(
                f"inference store URL {redact_url(url)!r} is malformed: {redact_text(str(exc))}"
            ) from exc
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database or ""
            if database and database != ":memory:" and not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            self.engine: Engine = sa.create_engine(url, pool_pre_ping=True)
        except (SQLAlchemyError, ImportError) as exc:
            raise StoreError(
                f"inference store {redact_url(url)!r} cannot be opened: {redact_text(str(exc))}"
            ) from exc
        if parsed.get_backend_name() == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas(durable))

    def __repr__(self) -> str:
        return f"InferenceStore({redact_url(self.url)!r})"

    def create(self) -> None:
        """Create the table and its index if absent."""
        try:
            metadata.create_all(self.engine)
            _add_outcome_source(self.engine)
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

    def existing_ids(self, request_ids: Sequence[str]) -> set[str]:
        """Which of ``request_ids`` are stored; raises ``SQLAlchemyError`` as is."""
        if not request_ids:
            return set()
        query = sa.select(inferences.c.request_id).where(
            inferences.c.request_id.in_(list(request_ids))
        )
        with self.engine.connect() as connection:
            return {row[0] for row in connection.execute(query)}

    def _insert_new(self) -> sa.Insert:
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

    def record_outcome(
        self, request_id: str, outcome: str, *, source: str | None = None
    ) -> OutcomeResult:
        """Attach the observed outcome (``good``/``bad``) to one inference.

        ``source`` (stored as ``outcome_source``) names who posted it: the key id.

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
                        .values(
                            outcome=outcome, outcome_at=datetime.now(UTC), outcome_source=source
                        )
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


def _add_outcome_source(engine: Engine) -> None:
    """Give a table created before ``outcome_source`` existed the column (old rows: NULL)."""
    if "outcome_source" in {c["name"] for c in sa.inspect(engine).get_columns("inferences")}:
        return
    if_absent = " IF NOT EXISTS" if engine.dialect.name == "postgresql" else ""
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text(f"ALTER TABLE inferences ADD COLUMN{if_absent} outcome_source VARCHAR(16)")
            )
    except SQLAlchemyError:
        # several workers start at once: another one may have added it first
        columns = sa.inspect(engine).get_columns("inferences")
        if "outcome_source" not in {c["name"] for c in columns}:
            raise
    log.info("inference log: column outcome_source added to the existing table")


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
