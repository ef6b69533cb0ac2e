"""The inference log's table, ``inferences``, and the columns older tables gain on open.

The columns are described in :mod:`creditops.serving.store`. A table created by
an earlier release gains the columns added since by ``ALTER TABLE ... ADD
COLUMN`` (:func:`add_later_columns`), so an existing log keeps its rows.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from creditops import schema

log = logging.getLogger(__name__)

# Columns added after the first release: (name, DDL type by dialect), added on open.
_LATER_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("outcome_source", "VARCHAR(16)", "VARCHAR(16)"),
    ("application_at", "DATETIME", "TIMESTAMP WITH TIME ZONE"),
    ("explored", "BOOLEAN NOT NULL DEFAULT 0", "BOOLEAN NOT NULL DEFAULT false"),
    ("observed_at", "DATETIME", "TIMESTAMP WITH TIME ZONE"),
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
    # nullable in the DDL only because older tables gain it by ADD COLUMN (filled from
    # created_at); every row written has one (see _complete)
    sa.Column("application_at", sa.DateTime(timezone=True), nullable=True, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.Integer, nullable=False),
    *(_feature_column(name) for name in schema.FEATURES),
    sa.Column("probability", sa.Float, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("explored", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("outcome", sa.String(8), nullable=True),
    sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("outcome_source", sa.String(16), nullable=True),
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=True),
)


def add_later_columns(engine: Engine) -> None:
    """Give a table created by an earlier release the columns added since (old rows: defaults).

    ``application_at`` of old rows is their ``created_at``: until the field
    existed, a row was scored when it was applied for.
    """
    present = {c["name"] for c in sa.inspect(engine).get_columns("inferences")}
    postgres = engine.dialect.name == "postgresql"
    if_absent = " IF NOT EXISTS" if postgres else ""
    for name, sqlite_type, postgres_type in _LATER_COLUMNS:
        if name in present:
            continue
        kind = postgres_type if postgres else sqlite_type
        try:
            with engine.begin() as connection:
                connection.execute(
                    sa.text(f"ALTER TABLE inferences ADD COLUMN{if_absent} {name} {kind}")
                )
                if name == "application_at":
                    connection.execute(sa.text("UPDATE inferences SET application_at = created_at"))
                    connection.execute(
                        sa.text(
                            "CREATE INDEX IF NOT EXISTS ix_inferences_application_at "
                            "ON inferences (application_at)"
                        )
                    )
        except SQLAlchemyError:
            # several workers start at once: another one may have added it first
            columns = sa.inspect(engine).get_columns("inferences")
            if name not in {c["name"] for c in columns}:
                raise
        log.info("inference log: column %s added to the existing table", name)
