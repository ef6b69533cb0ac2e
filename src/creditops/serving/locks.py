"""Named locks in the inference store's database: one holder at a time, across machines.

A lock is a row of table ``creditops_locks`` (``name`` primary key, ``owner``,
``acquired_at``) in the database of ``[serve] store_url`` (SQLite or
PostgreSQL). Taking it is one ``INSERT``: the database's primary key lets
exactly one of two concurrent callers in, whatever their process or host;
releasing it deletes the row only if this owner still holds it.

A holder that died leaves its row. The row is *stale*, and broken with a
warning, when it is older than ``stale_after_seconds`` or its owner is a
process of this host that no longer runs. Owners read
``HOST:PID:NONCE``.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from creditops.databases import safe_url
from creditops.errors import StoreError, first_line

log = logging.getLogger(__name__)

metadata = sa.MetaData()

locks_table = sa.Table(
    "creditops_locks",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(300), nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class LockHolder:
    """Who holds a lock, since when."""

    name: str
    owner: str
    acquired_at: datetime

    def describe(self) -> str:
        """``since 2026-06-01T12:00:00+00:00 (owner host:123:ab12cd34)``."""
        return f"since {self.acquired_at.isoformat(timespec='seconds')} (owner {self.owner})"


def this_owner() -> str:
    """An owner name for this process: ``HOST:PID:NONCE`` (the nonce tells two holders apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_gone(owner: str) -> bool:
    """Whether ``owner`` names a process of this host that no longer runs."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another host's process: only its age can say it is stale
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it runs, as another user
        return False
    return False


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _engine(url: str) -> Engine:
    """An engine for the store's URL (SQLite waits for a writer instead of failing)."""
    parsed = sa.engine.make_url(url)
    connect_args: dict[str, float] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        connect_args["timeout"] = 30.0
    return sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)


class StoreLock:
    """One named lock in the store's database.

    Args:
        url: the store's SQLAlchemy URL (``[serve] store_url``).
        name: the lock's name (``retraining``).
        stale_after_seconds: a holder older than this is taken for dead.
        owner: this holder's name (default :func:`this_owner`).
    """

    def __init__(
        self, url: str, name: str, *, stale_after_seconds: float, owner: str | None = None
    ) -> None:
        self.url = url
        self.name = name
        self.stale_after_seconds = stale_after_seconds
        self.owner = owner or this_owner()

    def acquire(self) -> LockHolder | None:
        """Take the lock: ``None`` when taken, else who holds it.

        Raises:
            StoreError: the database cannot be reached or written.
        """
        engine = _engine(self.url)
        try:
            _create_table(engine)
            for _ in range(2):  # a second try only after breaking a stale holder
                if self._insert(engine):
                    return None
                holder = self._holder(engine)
                if holder is None:
                    continue  # released between our insert and our read
                if not self._break_if_stale(engine, holder):
                    return holder
            return self._holder(engine)
        except SQLAlchemyError as exc:
            raise StoreError(
                f"lock {self.name!r} in {safe_url(self.url)} cannot be taken: {first_line(exc)}"
            ) from exc
        finally:
            engine.dispose()

    def release(self) -> None:
        """Give the lock back (only if this owner still holds it); a failure is logged."""
        engine = _engine(self.url)
        try:
            with engine.begin() as connection:
                connection.execute(
                    locks_table.delete().where(
                        locks_table.c.name == self.name, locks_table.c.owner == self.owner
                    )
                )
        except SQLAlchemyError as exc:
            log.error(
                "lock %s of %s not released (%s): it is broken once stale",
                self.name,
                self.owner,
                exc,
            )
        finally:
            engine.dispose()

    def _insert(self, engine: Engine) -> bool:
        try:
            with engine.begin() as connection:
                connection.execute(
                    locks_table.insert().values(
                        name=self.name, owner=self.owner, acquired_at=datetime.now(UTC)
                    )
                )
        except IntegrityError:
            return False
        return True

    def _holder(self, engine: Engine) -> LockHolder | None:
        with engine.connect() as connection:
            row = connection.execute(
                sa.select(locks_table.c.owner, locks_table.c.acquired_at).where(
                    locks_table.c.name == self.name
                )
            ).first()
        if row is None:
            return None
        return LockHolder(self.name, str(row.owner), _aware(row.acquired_at))

    def _break_if_stale(self, engine: Engine, holder: LockHolder) -> bool:
        age = (datetime.now(UTC) - holder.acquired_at).total_seconds()
        gone = _owner_gone(holder.owner)
        if not gone and age <= self.stale_after_seconds:
            return False
        why = "its process is gone" if gone else f"{age / 60:.1f} min old"
        log.warning("breaking stale lock %s held %s: %s", self.name, holder.describe(), why)
        with engine.begin() as connection:
            # only that holder's row: a new holder that came in meanwhile keeps the lock
            connection.execute(
                locks_table.delete().where(
                    locks_table.c.name == holder.name, locks_table.c.owner == holder.owner
                )
            )
        return True


@contextmanager
def store_lock(url: str, name: str, *, stale_after_seconds: float) -> Iterator[LockHolder | None]:
    """Hold lock ``name`` for a block: yields ``None`` when held, else the other holder.

    The lock is released when the block ends, however it ends; a block that
    got the other holder ran without it and must not do the locked work.

    Raises:
        StoreError: the database cannot be reached or written.
    """
    lock = StoreLock(url, name, stale_after_seconds=stale_after_seconds)
    holder = lock.acquire()
    if holder is not None:
        yield holder
        return
    try:
        yield None
    finally:
        lock.release()


def _create_table(engine: Engine) -> None:
    """Create the locks table if absent; another process creating it at once is fine."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        metadata.create_all(engine, checkfirst=True)
    except (OperationalError, ProgrammingError, IntegrityError) as exc:
        # both checked "absent", both created: the loser's CREATE fails ("already exists";
        # PostgreSQL may say "duplicate key" on its catalogue instead)
        if "already exists" not in str(exc) and "duplicate key" not in str(exc):
            raise
