"""Database checks every stage may make: one connection, one line when it fails.

:func:`check_database` opens a SQLAlchemy URL once and turns any failure into
one line naming the URL (password hidden) and the cause: the service, the
tracking server and the search workers call it before they start, so a
PostgreSQL that is down is a one-line error, not a stack trace. It imports
only ``creditops.errors`` (and SQLAlchemy when called), so it sits with the
foundations and any stage may use it.
"""

from __future__ import annotations

from pathlib import Path

from creditops.errors import CreditOpsError, StoreError, first_line
from creditops.secrets import redact_url


def safe_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (:func:`creditops.secrets.redact_url`)."""
    return redact_url(url)


def _cause(exc: BaseException) -> str:
    # psycopg puts the useful part ("connection refused", "database ... does not
    # exist") on the first line of the driver's error, which SQLAlchemy wraps as
    # ``exc.orig`` and follows with a background link.
    original = getattr(exc, "orig", None)
    return first_line(original if isinstance(original, BaseException) else exc)


def check_database(
    url: str,
    role: str,
    *,
    error: type[CreditOpsError] = StoreError,
    timeout_seconds: int = 5,
) -> None:
    """Connect to ``url`` once and run ``SELECT 1``.

    Args:
        url: a SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``).
        role: what the database is for, as the message names it ("inference log").
        error: the CreditOpsError subclass to raise.
        timeout_seconds: how long to wait for a PostgreSQL connection.

    Raises:
        ``error``: one line naming the role, the URL and the cause.
    """
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:  # ValueError: a port that is no number
        raise error(f"{role} URL {safe_url(url)!r} is malformed: {first_line(exc)}") from exc
    connect_args: dict[str, int] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = timeout_seconds
    elif parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        raise error(f"{role} {safe_url(url)} cannot be opened: {_cause(exc)}") from exc
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        raise error(f"{role} database {safe_url(url)} is unreachable: {_cause(exc)}") from exc
    finally:
        engine.dispose()
