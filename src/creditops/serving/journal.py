"""The inference journal: scored rows the store could not take, on disk until replayed.

While the inference log's database is down longer than the writer's queue
holds (or, in acknowledged mode, at once), rows go to a JSON-lines file of
this process: ``inferences-<host>-<pid>-<start time>-<n>.jsonl`` in
``[serve] journal_dir``, so that workers and replicas never share a file.
Every append is written, flushed and fsynced before it counts; the file is
held under an exclusive ``flock`` while open, so that a replay never takes a
file a running service is still appending to. The writer closes its file
when the store is back, and opens a new one at the next outage.

:func:`replay_journals` (``creditops store replay``) loads every closed file
into the store, inserting only rows whose ``request_id`` is not stored yet,
then moves the file to ``replayed/``: running it twice loads nothing the
second time. A torn last line (a crash mid-append) is skipped with a warning.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy.exc import SQLAlchemyError

from creditops.errors import StoreError
from creditops.serving.store import InferenceStore, inferences

log = logging.getLogger(__name__)

SUFFIX = ".jsonl"
REPLAYED = "replayed"
REPLAY_CHUNK_ROWS = 1_000
_TIMES = ("created_at", "application_at", "outcome_at", "observed_at")
_REQUIRED = frozenset(
    {
        "request_id",
        "batch_id",
        "created_at",
        "model_name",
        "model_version",
        "probability",
        "decision",
        "threshold",
        "latency_ms",
    }
)
_COLUMNS = frozenset(column.name for column in inferences.columns)


def _ignore(_rows: int) -> None:
    return None


@dataclass
class LogEvents:
    """What the inference-log writers report, for the service's metrics."""

    written: Callable[[int], None] = _ignore  # rows committed to the store
    failed: Callable[[int], None] = _ignore  # rows of a failed store write (retried or journaled)
    spilled: Callable[[int], None] = _ignore  # rows synced to the journal
    lost: Callable[[int], None] = _ignore  # rows neither stored nor journaled


def journal_prefix() -> str:
    """``inferences-<host>-<pid>-<UTC start time>``: unique to this process."""
    host = "".join(c if c.isalnum() or c in "-_" else "_" for c in socket.gethostname())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"inferences-{host or 'host'}-{os.getpid()}-{stamp}"


class Journal:
    """This process's journal files in ``folder``; one open at a time, thread-safe.

    Args:
        folder: ``[serve] journal_dir`` (created at the first append).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._prefix = journal_prefix()
        self._sequence = 1
        self._handle: IO[str] | None = None
        self._lock = threading.Lock()
        self.files = 0  # files this process wrote rows to
        self.rows = 0  # rows synced to them

    @property
    def next_path(self) -> Path:
        """The file the next append writes to (the open one, else the next new one)."""
        return self.folder / f"{self._prefix}-{self._sequence}{SUFFIX}"

    def append(self, rows: Sequence[dict[str, Any]]) -> Path:
        """Write ``rows`` as JSON lines, flush and fsync them; returns the file.

        Raises:
            StoreError: the folder or the file cannot be written (one line, with the cause).
        """
        data = "".join(encode_row(row) + "\n" for row in rows)
        with self._lock:
            path = self.next_path
            try:
                handle = self._handle or self._open(path)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                # a half-written line stays last in its file (skipped on replay): start a new one
                self._close_handle()
                raise StoreError(
                    f"cannot write the inference journal {path}: {exc.strerror or exc}"
                ) from exc
            self.rows += len(rows)
            return path

    def _open(self, path: Path) -> IO[str]:
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = path.open("a", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            _sync_folder(self.folder)  # the new file's name survives a crash too
        except OSError:
            handle.close()
            raise
        self._handle = handle
        self.files += 1
        return handle

    def close(self) -> Path | None:
        """Close the open file (a replay may take it now); returns it, or None."""
        with self._lock:
            if self._handle is None:
                return None
            path = self.next_path
            self._close_handle()
            return path

    def _close_handle(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            try:
                handle.close()  # releases the flock
            except OSError as exc:
                log.error("inference journal: closing %s failed: %s", self.next_path, exc)
            self._sequence += 1


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def encode_row(row: dict[str, Any]) -> str:
    """One row as a JSON line (timestamps in ISO 8601)."""
    out = {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in row.items()
    }
    return json.dumps(out, default=str, allow_nan=False)


def decode_row(line: str) -> dict[str, Any]:
    """The row of one JSON line.

    Raises:
        ValueError: not JSON, not an object, a required column missing or an unknown one.
    """
    row = json.loads(line)
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    missing = sorted(_REQUIRED - row.keys())
    if missing:
        raise ValueError(f"missing column(s) {', '.join(missing)}")
    unknown = sorted(row.keys() - _COLUMNS)
    if unknown:
        raise ValueError(f"unknown column(s) {', '.join(unknown)}")
    for key in _TIMES:
        if isinstance(row.get(key), str):
            row[key] = datetime.fromisoformat(row[key])
    return row


@dataclass
class ReplaySummary:
    """What a replay did: files taken, rows read, loaded, already there, unreadable."""

    folder: str
    files: int = 0
    read: int = 0
    loaded: int = 0
    already_present: int = 0
    unreadable: int = 0
    busy_files: list[str] = field(default_factory=list)  # still open by a running service
    archived: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The summary as plain JSON values."""
        return asdict(self)


def replay_journals(store: InferenceStore, folder: Path) -> ReplaySummary:
    """Load every closed journal file of ``folder`` into ``store``, exactly once.

    Rows whose ``request_id`` is already stored are counted, not written;
    each file is moved to ``folder/replayed/`` once its rows are in.

    Raises:
        StoreError: the store cannot be read or written (the file stays for the next replay).
    """
    folder = Path(folder)
    summary = ReplaySummary(str(folder))
    if not folder.is_dir():
        return summary
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        with _LockedFile(path) as handle:
            if handle is None:
                summary.busy_files.append(str(path))
                continue
            summary.files += 1
            _replay_file(store, path, handle, summary)
            archive = folder / REPLAYED
            archive.mkdir(exist_ok=True)
            path.rename(archive / path.name)
            summary.archived.append(str(archive / path.name))
    return summary


class _LockedFile:
    """A journal file opened under a non-blocking exclusive flock: None while a service holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle: IO[str] | None = None

    def __enter__(self) -> IO[str] | None:
        handle = self.path.open("r", encoding="utf-8", errors="replace")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        self.handle = handle
        return handle

    def __exit__(self, *_exc: object) -> None:
        if self.handle is not None:
            self.handle.close()


def _replay_file(
    store: InferenceStore, path: Path, handle: IO[str], summary: ReplaySummary
) -> None:
    chunk: list[dict[str, Any]] = []
    for row in _rows_of(path, handle, summary):
        chunk.append(row)
        if len(chunk) >= REPLAY_CHUNK_ROWS:
            _load(store, chunk, summary)
            chunk = []
    _load(store, chunk, summary)


def _rows_of(path: Path, handle: IO[str], summary: ReplaySummary) -> Iterator[dict[str, Any]]:
    lines = handle.read().split("\n")
    torn = lines.pop()  # the text after the last newline: empty unless an append was cut short
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if torn.strip():
        numbered.append((len(lines) + 1, torn))
    for number, line in numbered:
        summary.read += 1
        try:
            yield decode_row(line)
        except ValueError as exc:
            summary.unreadable += 1
            last = number == numbered[-1][0]
            log.warning(
                "inference journal %s line %d is unreadable%s (skipped): %s",
                path,
                number,
                " (torn by a crash mid-append)" if last else "",
                exc,
            )


def _load(store: InferenceStore, rows: list[dict[str, Any]], summary: ReplaySummary) -> None:
    if not rows:
        return
    try:
        present = store.existing_ids([row["request_id"] for row in rows])
        fresh: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row["request_id"] not in present:
                fresh.setdefault(row["request_id"], row)
        store.write_rows(list(fresh.values()))
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot load journaled rows into {store!r}: {(str(exc).splitlines() or [''])[0]}"
        ) from exc
    summary.loaded += len(fresh)
    summary.already_present += len(rows) - len(fresh)
