"""Every answered decision is on record: the bounded queue, the journal, its replay, group commit."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path

import pytest
from test_store import FlakyStore, make_row
from typer.testing import CliRunner

from creditops.errors import StoreError
from creditops.serving.group_commit import GroupCommitWriter
from creditops.serving.journal import Journal, encode_row, replay_journals
from creditops.serving.log_writer import InferenceLogWriter
from creditops.serving.store import InferenceStore


def down_store(tmp_path: Path) -> FlakyStore:
    store = FlakyStore(f"sqlite:///{tmp_path}/log.db", failures=10**9)
    store.create()
    return store


def healthy_store(tmp_path: Path) -> InferenceStore:
    store = InferenceStore(f"sqlite:///{tmp_path}/log.db")
    store.create()
    return store


def stored_ids(store: InferenceStore) -> list[str]:
    return list(store.read_frame()["request_id"])


def a_file_in_the_way(tmp_path: Path) -> Path:
    """A journal folder that cannot be created: its parent is a regular file (root or not)."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    return blocker / "journal"


def test_a_bounded_queue_journals_what_it_cannot_hold_and_replay_loads_it_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = down_store(tmp_path)
    journal = Journal(tmp_path / "journal")
    spilled = threading.Semaphore(0)
    writer = InferenceLogWriter(
        store,
        flush_interval=0.01,
        flush_max_rows=5,
        journal=journal,
        max_queue_rows=10,
        drain_timeout=0.2,
        max_backoff=0.05,
    )
    writer.events.spilled = lambda rows: spilled.release()
    writer.start()
    rows = [make_row() for _ in range(25)]
    writer.submit(rows)
    assert spilled.acquire(timeout=30), "the overflow was never journaled"
    assert writer.pending == 10 and writer.spilled_rows == 15  # memory holds the bound, no more
    writer.close()  # the store is still down: the 10 queued rows are journaled too
    assert writer.spilled_rows == 25 and writer.lost_rows == 0
    assert sum("creditops store replay" in r.getMessage() for r in caplog.records) >= 1

    back = healthy_store(tmp_path)
    first = replay_journals(back, tmp_path / "journal")
    assert (first.files, first.read, first.loaded, first.already_present) == (1, 25, 25, 0)
    assert sorted(stored_ids(back)) == sorted(r["request_id"] for r in rows)
    again = replay_journals(back, tmp_path / "journal")
    assert (again.files, again.read, again.loaded) == (0, 0, 0)
    assert back.count() == 25
    assert [p.name for p in (tmp_path / "journal" / "replayed").iterdir()] == [
        Path(first.archived[0]).name
    ]


def test_replay_skips_stored_rows_and_a_torn_last_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = healthy_store(tmp_path)
    rows = [make_row() for _ in range(5)]
    store.write_rows(rows[:2])  # committed, acknowledgement lost, journaled anyway
    folder = tmp_path / "journal"
    folder.mkdir()
    lines = "".join(encode_row(row) + "\n" for row in rows)
    torn = encode_row(make_row())[:57]  # the process died mid-append
    (folder / "inferences-h-1-t-1.jsonl").write_text(lines + torn)
    with caplog.at_level(logging.WARNING):
        summary = replay_journals(store, folder)
    assert (summary.read, summary.loaded, summary.already_present, summary.unreadable) == (
        6,
        3,
        2,
        1,
    )
    assert any("torn" in r.getMessage() for r in caplog.records)
    assert sorted(stored_ids(store)) == sorted(r["request_id"] for r in rows)


def test_replay_leaves_a_file_a_running_service_still_writes(tmp_path: Path) -> None:
    store = healthy_store(tmp_path)
    journal = Journal(tmp_path / "journal")
    journal.append([make_row()])  # open and locked, as in a service whose store is down
    summary = replay_journals(store, tmp_path / "journal")
    assert summary.files == 0 and summary.busy_files == [str(journal.next_path)]
    assert store.count() == 0
    journal.close()
    assert replay_journals(store, tmp_path / "journal").loaded == 1


@pytest.mark.parametrize("fault", ["parent is a file", "disk full"])
def test_an_unwritable_journal_is_one_clear_error(tmp_path: Path, fault: str) -> None:
    if fault == "parent is a file":
        journal = Journal(a_file_in_the_way(tmp_path))
        cause = "Not a directory"
    else:
        journal = Journal(tmp_path / "journal")
        journal.folder.mkdir()
        os.symlink("/dev/full", journal.next_path)  # every write: ENOSPC
        cause = "No space left on device"
    with pytest.raises(StoreError, match=cause) as caught:
        journal.append([make_row()])
    assert str(journal.folder) in str(caught.value) and "\n" not in str(caught.value)


def test_async_rows_that_cannot_be_journaled_are_counted_lost_in_one_error_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = down_store(tmp_path)
    writer = InferenceLogWriter(
        store,
        flush_interval=0.01,
        flush_max_rows=2,
        journal=Journal(a_file_in_the_way(tmp_path)),
        max_queue_rows=2,
        drain_timeout=0.2,
        max_backoff=0.05,
    )
    lost = threading.Semaphore(0)
    writer.events.lost = lambda rows: lost.release()
    writer.start()
    writer.submit([make_row() for _ in range(5)])
    assert lost.acquire(timeout=30)
    writer.submit([make_row() for _ in range(3)])  # still answering: submit never raises
    writer.close()
    assert writer.lost_rows == 8 and writer.spilled_rows == 0
    errors = [r for r in caplog.records if "LOST" in r.getMessage()]
    assert 1 <= len(errors) <= 2  # the outage's first line, and the one at shutdown
    assert "Not a directory" in errors[0].getMessage()
    assert all(r.exc_info is None for r in caplog.records)  # no traceback


async def record_many(writer: GroupCommitWriter, n: int) -> list[BaseException | None]:
    rows = [make_row() for _ in range(n)]
    results = await asyncio.gather(
        *(writer.record(lambda row=row: [row]) for row in rows), return_exceptions=True
    )
    return list(results)


def test_acknowledged_requests_share_commits(tmp_path: Path) -> None:
    store = InferenceStore(f"sqlite:///{tmp_path}/log.db", durable=True)
    store.create()
    writer = GroupCommitWriter(store, Journal(tmp_path / "journal"), window=0.005)
    writer.start()
    results = asyncio.run(record_many(writer, 64))
    writer.close()
    assert results == [None] * 64
    assert store.count() == 64 and writer.written_rows == 64
    assert writer.commits < 64  # concurrent requests were committed together


def test_acknowledged_rows_go_to_the_journal_while_the_store_is_down(tmp_path: Path) -> None:
    writer = GroupCommitWriter(down_store(tmp_path), Journal(tmp_path / "journal"), window=0)
    writer.start()
    results = asyncio.run(record_many(writer, 20))
    writer.close()
    assert results == [None] * 20 and writer.spilled_rows == 20
    back = healthy_store(tmp_path)
    assert replay_journals(back, tmp_path / "journal").loaded == 20
    assert back.count() == 20


def test_acknowledged_requests_fail_when_neither_store_nor_journal_takes_them(
    tmp_path: Path,
) -> None:
    writer = GroupCommitWriter(down_store(tmp_path), Journal(a_file_in_the_way(tmp_path)), window=0)
    writer.start()
    results = asyncio.run(record_many(writer, 5))
    writer.close()
    assert all(isinstance(r, StoreError) for r in results)
    assert "Not a directory" in str(results[0]) and writer.spilled_rows == 0


def test_store_replay_command_prints_the_counts(tmp_path: Path) -> None:
    from creditops.cli.app import app

    store = healthy_store(tmp_path)
    journal = Journal(tmp_path / "journal")
    rows = [make_row() for _ in range(4)]
    store.write_rows(rows[:1])
    journal.append(rows)
    journal.close()
    config = tmp_path / "creditops.toml"
    config.write_text(
        f'[serve]\nstore_url = "sqlite:///{tmp_path}/log.db"\n'
        f'journal_dir = "{tmp_path / "journal"}"\n'
        f'[logging]\nruns_log = "{tmp_path / "runs.log"}"\n'
    )
    runner = CliRunner()
    first = runner.invoke(app, ["--config", str(config), "store", "replay"])
    assert first.exit_code == 0, first.output
    assert "read 4 row(s), loaded 3, already present 1, unreadable 0" in first.output
    second = runner.invoke(app, ["--config", str(config), "store", "replay"])
    assert "replayed 0 journal file(s)" in second.output and "loaded 0" in second.output
    assert store.count() == 4
