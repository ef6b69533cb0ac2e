"""The monitoring table: one figure per (application month, model version, metric).

It lives in the same database as the inference log (the same SQLAlchemy URL:
SQLite by default, PostgreSQL by URL) and is the history that dashboards,
estimates and the retraining trigger read.

Table ``monitoring``:

=============  ================================================================
month          String(7) ``YYYY-MM``: the application month (primary key)
model_version  Integer: the version that scored the month's rows (primary key)
metric         String(80): ``volume``, ``psi:Income``, ``roc_auc``, ... (primary key)
kind           String(16): one of :data:`KINDS`
value          Float or NULL: NULL when the figure cannot be computed (``detail`` says why)
lower, upper   Float or NULL: an interval around ``value`` where the figure has one
rows           Integer or NULL: how many rows the figure was computed from
detail         Text: why ``value`` is absent ("12 rows < min 100"), or JSON extras
computed_at    timezone-aware UTC timestamp of the run that wrote the row
=============  ================================================================

Writes are upserts in one transaction: re-running over the same months updates
their rows and never duplicates them, and a run that fails writes nothing.

A *month provider* (:data:`Provider`) is a pure function that turns one
(month, version)'s log rows and a :class:`MonthContext` into rows of this table;
:mod:`creditops.monitoring.vintage` runs every provider for every (month, version).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from creditops.errors import StoreError
from creditops.secrets import redact_text, redact_url

KINDS = (
    "volume",
    "drift",
    "realised",
    "estimated",
    "backtest",
    "fairness",
    "vintage",
    "shadow",
    # a retraining trigger decision (retraining/), marked on the dashboard's time axes
    "trigger",
)
TABLE_COLUMNS = (
    "month",
    "model_version",
    "metric",
    "kind",
    "value",
    "lower",
    "upper",
    "rows",
    "detail",
    "computed_at",
)
_KEY = ("month", "model_version", "metric")

metadata = sa.MetaData()

monitoring = sa.Table(
    "monitoring",
    metadata,
    sa.Column("month", sa.String(7), primary_key=True),
    sa.Column("model_version", sa.Integer, primary_key=True),
    sa.Column("metric", sa.String(80), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("lower", sa.Float, nullable=True),
    sa.Column("upper", sa.Float, nullable=True),
    sa.Column("rows", sa.Integer, nullable=True),
    sa.Column("detail", sa.Text, nullable=False, default=""),
    sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class MonitoringRow:
    """One figure of one (month, model version).

    Attributes:
        month: the application month, ``YYYY-MM``.
        model_version: the model version that scored the month's rows.
        metric: the figure's name (``volume``, ``psi:Income``, ``vintage:mob3``, ...).
        kind: one of :data:`KINDS`.
        value: the figure, or None when it cannot be computed (never NaN).
        lower: the lower end of its interval, where it has one.
        upper: the upper end of its interval, where it has one.
        rows: how many rows it was computed from.
        detail: why ``value`` is None ("12 rows < min 100"), or JSON extras.
    """

    month: str
    model_version: int
    metric: str
    kind: str
    value: float | None
    lower: float | None = None
    upper: float | None = None
    rows: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class MonthContext:
    """What a month provider knows besides the month's own log rows.

    Attributes:
        month: the application month, ``YYYY-MM``.
        model_version: the version that scored the month's rows.
        as_of: the "now" of the run (timezone-aware): outcomes posted later are unseen.
        threshold: the version's decision threshold (decline when PD >= it).
        reference: the champion's training rows (feature columns, and ``Status``).
        reference_scores: the champion's PDs on *unseen* reference rows, its test
            split, as the window monitor takes them (PDs of the training rows
            themselves are more extreme than any new traffic); None if unknown.
        performance_months: months on book after which a loan's outcome is final.
        min_rows: the fewest matured outcomes a realised figure is computed from.
        reference_labels: 1 = bad, 0 = good for the rows ``reference_scores``
            scored (aligned with it); None if unknown.
        psi_bins: ``[monitor] psi_bins``.
        min_drift_rows: the fewest rows a month's drift figures are computed
            from (``[monitor] min_rows``).
        calibrated: whether the version's probabilities are calibrated PDs
            (its registered model carries a calibrator).
    """

    month: str
    model_version: int
    as_of: datetime
    threshold: float
    reference: pd.DataFrame
    reference_scores: np.ndarray | None
    performance_months: int
    min_rows: int
    reference_labels: np.ndarray | None = None
    psi_bins: int = 10
    min_drift_rows: int = 100
    calibrated: bool = True


Provider = Callable[[pd.DataFrame, MonthContext], list[MonitoringRow]]


def _check(row: MonitoringRow) -> None:
    """Refuse a row the table must never hold (a NaN, an unknown kind, a bad month)."""
    if row.kind not in KINDS:
        raise StoreError(f"monitoring row {row.metric!r}: kind {row.kind!r} is not one of {KINDS}")
    if len(row.month) != 7 or row.month[4] != "-" or not row.month.replace("-", "").isdigit():
        raise StoreError(f"monitoring row {row.metric!r}: month {row.month!r} is not YYYY-MM")
    if not row.metric or len(row.metric) > 80:
        raise StoreError(f"monitoring row metric {row.metric!r}: 1 to 80 characters")
    for name in ("value", "lower", "upper"):
        number = getattr(row, name)
        if number is not None and not np.isfinite(number):
            raise StoreError(
                f"monitoring row {row.month} {row.metric!r}: {name} {number!r} is not finite "
                "(an absent figure is None with a detail saying why)"
            )


def _engine(url: str) -> Engine:
    """An engine on ``url`` with the table created if absent."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise StoreError(
            f"monitoring store URL {redact_url(url)!r} is malformed: {redact_text(str(exc))}"
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        if parsed.get_backend_name() == "sqlite":
            # the service may be writing the inference log in the same file
            sa.event.listen(engine, "connect", _sqlite_busy_timeout)
        metadata.create_all(engine)
    except (SQLAlchemyError, ImportError) as exc:
        raise StoreError(
            f"monitoring table in {redact_url(url)} cannot be opened: {redact_text(str(exc))}"
        ) from exc
    return engine


def _sqlite_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _upsert(engine: Engine) -> Any:
    """``INSERT ... ON CONFLICT (month, model_version, metric) DO UPDATE`` for this dialect."""
    dialect = engine.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        statement: Any = pg_insert(monitoring)
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        statement = sqlite_insert(monitoring)
    else:
        raise StoreError(f"the monitoring table supports SQLite and PostgreSQL, not {dialect}")
    updated = {name: statement.excluded[name] for name in TABLE_COLUMNS if name not in _KEY}
    return statement.on_conflict_do_update(index_elements=list(_KEY), set_=updated)


def write_rows(url: str, rows: Sequence[MonitoringRow]) -> int:
    """Upsert ``rows`` into the monitoring table of ``url`` in one transaction.

    Args:
        url: the SQLAlchemy URL of the inference log's database.
        rows: the rows to write; a (month, version, metric) already stored is updated.

    Returns:
        How many rows were written (inserted or updated).

    Raises:
        StoreError: a row is malformed (nothing is written), or the database fails.
    """
    for row in rows:
        _check(row)
    counts = Counter((row.month, row.model_version, row.metric) for row in rows)
    twice = [key for key, count in counts.items() if count > 1]
    if twice:
        raise StoreError(f"monitoring rows name {twice[0]} twice in one run; nothing written")
    if not rows:
        return 0
    now = datetime.now(UTC)
    values = [
        {name: getattr(row, name) for name in TABLE_COLUMNS if name != "computed_at"}
        | {"computed_at": now}
        for row in rows
    ]
    engine = _engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(_upsert(engine), values)
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot write {len(values)} monitoring rows to {redact_url(url)}: "
            f"{redact_text(str(exc))}"
        ) from exc
    finally:
        engine.dispose()
    return len(values)


def read_table(url: str) -> pd.DataFrame:
    """Every row of the monitoring table of ``url``.

    Returns:
        Columns :data:`TABLE_COLUMNS`, sorted by month, model version and metric;
        absent values as None (not NaN) in ``value``/``lower``/``upper``/``rows``;
        ``computed_at`` as UTC timestamps. An empty frame when nothing is stored.

    Raises:
        StoreError: the database cannot be read.
    """
    engine = _engine(url)
    query = sa.select(*(monitoring.c[name] for name in TABLE_COLUMNS)).order_by(
        *(monitoring.c[name] for name in _KEY)
    )
    try:
        with engine.connect() as connection:
            records = connection.execute(query).all()
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot read the monitoring table of {redact_url(url)}: {redact_text(str(exc))}"
        ) from exc
    finally:
        engine.dispose()
    frame = pd.DataFrame([tuple(record) for record in records], columns=list(TABLE_COLUMNS))
    for name in ("value", "lower", "upper", "rows"):
        column = frame[name].astype(object)
        frame[name] = column.where(column.notna(), None)
    computed = pd.to_datetime(frame["computed_at"])
    frame["computed_at"] = (
        computed.dt.tz_localize(UTC) if computed.dt.tz is None else computed.dt.tz_convert(UTC)
    )
    return frame
