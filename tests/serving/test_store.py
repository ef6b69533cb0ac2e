"""The inference log: table contract, outcomes, the batching writer's durability."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy.exc import OperationalError

from creditops import schema
from creditops.serving.log_writer import InferenceLogWriter
from creditops.serving.store import FRAME_COLUMNS, InferenceStore, OutcomeResult


def make_row(moment: datetime | None = None, **features: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "request_id": uuid.uuid4().hex,
        "batch_id": uuid.uuid4().hex,
        "created_at": moment or datetime.now(UTC),
        "model_name": "credit-risk",
        "model_version": 3,
        "Seniority": 9.0,
        "Home": "rent",
        "Time": 60.0,
        "Age": 30.0,
        "Marital": "married",
        "Records": "no",
        "Job": "fixed",
        "Expenses": 73.0,
        "Income": 129.0,
        "Assets": 0.0,
        "Debt": 0.0,
        "Amount": 800.0,
        "Price": 846.0,
        "probability": 0.2,
        "decision": "approve",
        "threshold": 0.4,
        "latency_ms": 1.5,
    }
    row.update(features)
    return row


@pytest.fixture
def store(tmp_path: Path) -> InferenceStore:
    s = InferenceStore(f"sqlite:///{tmp_path}/sub/inferences.db")
    s.create()
    return s


def test_rows_round_trip_in_contract_dtypes(store: InferenceStore) -> None:
    store.write_rows([make_row(), make_row(Income=None, Home=None)])
    frame = store.read_frame()
    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert len(frame) == 2 and store.count() == 2
    for name in schema.NUMERIC:
        assert frame[name].dtype == "float64"
    assert frame["Income"].isna().sum() == 1
    assert frame["Home"].isna().sum() == 1
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert frame["model_version"].tolist() == [3, 3]


def test_read_frame_filters_by_time_count_and_label(store: InferenceStore) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = [make_row(start + timedelta(minutes=i)) for i in range(5)]
    store.write_rows(rows)
    assert store.read_frame(last_n=2)["request_id"].tolist() == [r["request_id"] for r in rows[3:]]
    window = store.read_frame(
        since=start + timedelta(minutes=1), until=start + timedelta(minutes=3)
    )
    assert window["request_id"].tolist() == [r["request_id"] for r in rows[1:3]]
    assert store.record_outcome(rows[4]["request_id"], "bad") is OutcomeResult.RECORDED
    labelled = store.read_frame(labelled_only=True)
    assert labelled["request_id"].tolist() == [rows[4]["request_id"]]
    assert labelled["outcome"].tolist() == ["bad"]


def test_outcome_unknown_conflict_and_idempotent(store: InferenceStore) -> None:
    row = make_row()
    store.write_rows([row])
    assert store.record_outcome("f" * 32, "good") is OutcomeResult.UNKNOWN
    assert store.record_outcome(row["request_id"], "good") is OutcomeResult.RECORDED
    assert store.record_outcome(row["request_id"], "good") is OutcomeResult.UNCHANGED
    assert store.record_outcome(row["request_id"], "bad") is OutcomeResult.CONFLICT
    assert store.read_frame()["outcome"].tolist() == ["good"]


def test_empty_store_reads_an_empty_typed_frame(store: InferenceStore) -> None:
    frame = store.read_frame()
    assert frame.empty and list(frame.columns) == list(FRAME_COLUMNS)


def test_writer_flushes_on_size_and_drains_on_close(store: InferenceStore) -> None:
    writer = InferenceLogWriter(store, flush_interval=60.0, flush_max_rows=10)
    writer.start()
    writer.submit([make_row() for _ in range(25)])
    writer.submit([make_row() for _ in range(3)])
    writer.close()
    assert store.count() == 28 and writer.pending == 0


def test_feedback_for_a_queued_row_waits_for_its_write(store: InferenceStore) -> None:
    writer = InferenceLogWriter(store, flush_interval=60.0, flush_max_rows=1_000)
    writer.start()
    row = make_row()
    writer.submit([row])
    assert writer.is_pending(row["request_id"])
    assert writer.wait_written(row["request_id"], timeout=30.0)
    assert store.record_outcome(row["request_id"], "bad") is OutcomeResult.RECORDED
    writer.close()


class FlakyStore(InferenceStore):
    """Fails the first ``failures`` writes as a dropped connection would (or with ``error``)."""

    def __init__(self, url: str, failures: int, error: Exception | None = None) -> None:
        super().__init__(url)
        self.failures = failures
        self.error = error or OperationalError("INSERT", {}, Exception("connection lost"))
        self.lock = threading.Lock()

    def write_rows(self, rows: Any) -> None:
        with self.lock:
            if self.failures > 0:
                self.failures -= 1
                raise self.error
        super().write_rows(rows)


def test_writer_retries_failed_writes_without_losing_rows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(f"sqlite:///{tmp_path}/flaky.db", failures=3)
    store.create()
    writer = InferenceLogWriter(store, flush_interval=0.01, flush_max_rows=5, max_backoff=0.05)
    writer.start()
    writer.submit([make_row() for _ in range(12)])
    writer.close()
    assert store.count() == 12
    assert writer.failed_writes == 3
    assert sum("will retry" in r.getMessage() for r in caplog.records) == 3


def test_an_unexpected_error_does_not_kill_the_writer(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # e.g. an import race in a driver: the rows stay queued and the next write takes them
    store = FlakyStore(
        f"sqlite:///{tmp_path}/bug.db", failures=2, error=ImportError("half-imported")
    )
    store.create()
    writer = InferenceLogWriter(store, flush_interval=0.01, flush_max_rows=5, max_backoff=0.05)
    writer.start()
    first = make_row()
    writer.submit([first])
    assert writer.wait_written(first["request_id"], timeout=30.0)
    writer.submit([make_row() for _ in range(6)])
    writer.close()
    assert store.count() == 7
    assert writer.failed_writes == 2
    assert sum("unexpected error" in r.getMessage() for r in caplog.records) == 2


def test_rows_left_unwritable_at_shutdown_are_journaled(tmp_path: Path) -> None:
    from creditops.serving.journal import Journal

    store = FlakyStore(f"sqlite:///{tmp_path}/down.db", failures=10**6)
    store.create()
    journal = Journal(tmp_path / "journal")
    spill = journal.next_path
    writer = InferenceLogWriter(
        store, flush_interval=0.01, journal=journal, drain_timeout=0.2, max_backoff=0.05
    )
    writer.submit([make_row() for _ in range(4)])
    writer.close()
    assert len(spill.read_text().splitlines()) == 4
    assert writer.pending == 0 and writer.spilled_rows == 4


def test_malformed_url_is_a_store_error() -> None:
    from creditops.errors import StoreError

    with pytest.raises(StoreError, match="malformed"):
        InferenceStore("not a url")


def test_frame_features_match_the_contract_coercion(store: InferenceStore) -> None:
    store.write_rows([make_row()])
    frame = store.read_frame()
    expected = schema.coerce_features(frame)
    pd.testing.assert_frame_equal(frame[list(schema.FEATURES)], expected)


def test_writer_holds_rows_while_the_server_is_busy(store: InferenceStore) -> None:
    busy = threading.Event()
    busy.set()
    asked = threading.Semaphore(0)  # one release per time the writer asked "busy?"
    written = threading.Event()

    def server_busy() -> bool:
        answer = busy.is_set()
        asked.release()
        return answer

    writer = InferenceLogWriter(store, flush_interval=0.01, busy=server_busy, max_delay=600.0)
    writer.events.written = lambda rows: written.set()
    writer.start()
    writer.submit([make_row() for _ in range(5)])
    # the writer woke up with rows queued and was told "busy" many times: it wrote nothing
    for turn in range(20):
        assert asked.acquire(timeout=30), f"the writer stopped asking whether it is busy ({turn})"
    assert not written.is_set()
    assert store.count() == 0 and writer.pending == 5
    busy.clear()
    assert written.wait(timeout=30), "the rows were not written once the server was quiet"
    assert store.count() == 5 and writer.pending == 0
    writer.close()


def test_busy_writer_still_writes_for_feedback_and_at_shutdown(store: InferenceStore) -> None:
    writer = InferenceLogWriter(store, flush_interval=0.01, busy=lambda: True, max_delay=600.0)
    writer.start()
    first = make_row()
    writer.submit([first])
    assert writer.wait_written(first["request_id"], timeout=30.0)
    writer.submit([make_row() for _ in range(3)])
    writer.close()
    assert store.count() == 4


@pytest.mark.postgres
def test_the_same_contract_on_postgresql(postgres_database: str) -> None:
    store = InferenceStore(postgres_database)
    store.create()
    try:
        start = datetime(2024, 1, 1, tzinfo=UTC)
        rows = [
            make_row(start + timedelta(minutes=i), Income=None if i == 0 else 129.0)
            for i in range(3)
        ]
        store.write_rows(rows)
        frame = store.read_frame(since=start + timedelta(minutes=1))
        assert frame["request_id"].tolist() == [r["request_id"] for r in rows[1:]]
        assert str(frame["created_at"].dt.tz) == "UTC" and frame["Income"].dtype == "float64"
        assert store.read_frame()["Income"].isna().tolist() == [True, False, False]
        request_id = rows[0]["request_id"]
        assert store.record_outcome(request_id, "bad") is OutcomeResult.RECORDED
        assert store.record_outcome(request_id, "bad") is OutcomeResult.UNCHANGED
        assert store.record_outcome(request_id, "good") is OutcomeResult.CONFLICT
        assert store.record_outcome("0" * 32, "good") is OutcomeResult.UNKNOWN
        assert store.count() == 3
    finally:
        store.close()


@pytest.mark.postgres
def test_a_row_committed_between_update_and_select_takes_the_outcome(
    postgres_database: str,
) -> None:
    # Another worker's writer commits the row after this UPDATE found nothing and
    # before its SELECT (READ COMMITTED): the row's outcome is NULL, not a conflict.
    import sqlalchemy as sa

    store = InferenceStore(postgres_database)
    store.create()
    other = InferenceStore(postgres_database)
    row = make_row()
    late: list[str] = []

    def commit_the_row_once(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE") and not late:
            late.append(statement)
            other.write_rows([row])

    sa.event.listen(store.engine, "after_cursor_execute", commit_the_row_once)
    try:
        assert store.record_outcome(row["request_id"], "good") is OutcomeResult.RECORDED
        assert late, "the row was not committed mid-call: the race was not exercised"
        assert store.read_frame()["outcome"].tolist() == ["good"]
        assert store.record_outcome(row["request_id"], "bad") is OutcomeResult.CONFLICT
    finally:
        sa.event.remove(store.engine, "after_cursor_execute", commit_the_row_once)
        other.close()
        store.close()
