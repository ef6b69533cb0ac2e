"""The inference log: every scored row, its model version, and later its outcome.

SQLAlchemy 2 Core over SQLite (the default, a local file) or PostgreSQL (by
URL). Monitoring and retraining read it through :meth:`InferenceStore.read_frame`.

Table ``inferences`` (one row per scored applicant):

=================  ==================================================================
request_id         String(32), primary key: hex, issue time first; what ``POST /feedback`` takes
batch_id           String(32): one per HTTP request
created_at         timezone-aware UTC timestamp (indexed): when the row was scored
application_at     the application's own timestamp (request field ``application_at``;
                   absent = ``created_at``), indexed: monitoring groups by its month
model_name         the registered model's name
model_version      its version (integer)
<13 features>      named as in ``schema.FEATURES``: Float (numeric), String (categorical)
probability        predicted probability of default (bad)
decision           ``approve`` | ``decline``: a loan is granted iff ``approve``
explored           true when the model declined and the loan was granted anyway
                   (``[serve] explore_share``); such a row's decision is ``approve``
threshold          the decision threshold in force (decline when probability >= it)
latency_ms         time spent scoring the request that held this row
outcome            ``good`` | ``bad`` | NULL until feedback arrives
outcome_at         when the outcome was recorded
observed_at        the outcome's own date (``POST /feedback`` ``observed_at``; absent =
                   when it was posted); never before ``application_at``
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
from creditops.serving.log_table import add_later_columns, metadata
from creditops.serving.log_table import inferences as inferences  # re-exported: the table

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
    "threshold",
    "explored",
    "application_at",
    "outcome",
    "observed_at",
)


class OutcomeResult(enum.Enum):
    """What :meth:`InferenceStore.record_outcome` did."""

    RECORDED = "recorded"  # the outcome is now stored
    UNCHANGED = "unchanged"  # the same outcome was already stored (idempotent repeat)
    CONFLICT = "conflict"  # a different outcome was already stored; nothing changed
    UNKNOWN = "unknown"  # no inference has this request id
    DECLINED = "declined"  # the applicant was declined (not explored): no loan, no outcome
    BEFORE_APPLICATION = "before_application"  # observed_at is before application_at


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
            add_later_columns(self.engine)
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
        self,
        request_id: str,
        outcome: str,
        *,
        source: str | None = None,
        observed_at: datetime | None = None,
    ) -> OutcomeResult:
        """Attach the observed outcome (``good``/``bad``) to one inference.

        Only a granted loan (``decision = approve``, explored ones included) has an
        outcome, and not before its application.

        Args:
            request_id: the inference's id.
            outcome: ``good`` or ``bad``.
            source: stored as ``outcome_source``: who posted it (the key id).
            observed_at: the outcome's own date (stored as ``observed_at``); default now.

        Raises:
            StoreError: ``outcome`` is not good/bad, or the database fails.
        """
        if outcome not in OUTCOMES:
            raise StoreError(f"outcome {outcome!r} is not one of good, bad")
        now = datetime.now(UTC)
        observed = now if observed_at is None else _utc(observed_at)
        table = inferences
        # Under READ COMMITTED another worker's writer may commit the row between
        # the UPDATE (no row yet) and the SELECT (the row, outcome still NULL):
        # that is not a conflict, so the update is tried again.
        for _ in range(3):
            try:
                with self.engine.begin() as connection:
                    updated = connection.execute(
                        _outcome_update(request_id, outcome, source, observed, now)
                    ).rowcount
                    if updated:
                        return OutcomeResult.RECORDED
                    current = connection.execute(
                        sa.select(table.c.outcome, table.c.decision, table.c.application_at).where(
                            table.c.request_id == request_id
                        )
                    ).first()
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot record the outcome of {request_id}: {exc}") from exc
            refused = _not_recorded(current, outcome, observed)
            if refused is not None:
                return refused
        raise StoreError(f"cannot record the outcome of {request_id}: its row kept changing")

    def application_time(self, request_id: str) -> datetime | None:
        """The ``application_at`` of one inference (UTC), ``None`` if unknown.

        Raises:
            StoreError: the database fails.
        """
        query = sa.select(inferences.c.application_at).where(inferences.c.request_id == request_id)
        try:
            with self.engine.connect() as connection:
                row = connection.execute(query).first()
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot read inference {request_id}: {exc}") from exc
        return None if row is None or row[0] is None else _utc(row[0])

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


def _outcome_update(
    request_id: str, outcome: str, source: str | None, observed: datetime, now: datetime
) -> sa.Update:
    """Store the outcome if the row has none, is a granted loan, and applied by ``observed``."""
    table = inferences
    return (
        table.update()
        .where(
            table.c.request_id == request_id,
            table.c.outcome.is_(None),
            table.c.decision == "approve",
            sa.or_(table.c.application_at.is_(None), table.c.application_at <= observed),
        )
        .values(outcome=outcome, outcome_at=now, outcome_source=source, observed_at=observed)
    )


def _not_recorded(
    current: Sequence[Any] | None, outcome: str, observed: datetime
) -> OutcomeResult | None:
    """Why an outcome was not stored, from the row's (outcome, decision, application_at).

    ``None``: no reason found (the row changed meanwhile: try again).
    """
    if current is None:
        return OutcomeResult.UNKNOWN
    if current[1] != "approve":
        return OutcomeResult.DECLINED
    if current[2] is not None and _utc(current[2]) > observed:
        return OutcomeResult.BEFORE_APPLICATION
    if current[0] is not None:
        return OutcomeResult.UNCHANGED if current[0] == outcome else OutcomeResult.CONFLICT
    return None


def _complete(row: dict[str, Any]) -> dict[str, Any]:
    out = {name: row.get(name) for name in schema.FEATURES}
    out.update(row)
    # every row has an application time: the request's, else when it was scored
    applied = out.get("application_at")
    out["application_at"] = out["created_at"] if applied is None else _utc(applied)
    out["explored"] = bool(out.get("explored", False))
    for name in schema.NUMERIC:
        value = out[name]
        if isinstance(value, float) and value != value:  # NaN is NULL in SQL
            out[name] = None
    return out


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    # SQLite hands back naive datetimes: they were written as UTC.
    for name in ("created_at", "application_at", "observed_at"):
        moments = pd.to_datetime(frame[name])
        frame[name] = (
            moments.dt.tz_localize(UTC) if moments.dt.tz is None else moments.dt.tz_convert(UTC)
        )
    frame["model_version"] = frame["model_version"].astype("int64")
    frame["threshold"] = frame["threshold"].astype("float64")
    frame["explored"] = frame["explored"].astype("bool")
    features = schema.coerce_features(frame)
    for name in schema.FEATURES:
        frame[name] = features[name]
    frame["probability"] = frame["probability"].astype("float64")
    for name in ("decision", "outcome"):
        frame[name] = frame[name].astype("object").where(frame[name].notna(), np.nan)
    return frame
