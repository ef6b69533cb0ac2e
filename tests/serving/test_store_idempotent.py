"""Inference-log writes are idempotent: a batch stored but not acknowledged is retried safely."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from test_store import make_row

from creditops.serving.log_writer import InferenceLogWriter
from creditops.serving.store import InferenceStore


class LostAcknowledgementStore(InferenceStore):
    """Commits the first ``losses`` batches, then fails as if the acknowledgement was lost."""

    def __init__(self, url: str, losses: int) -> None:
        super().__init__(url)
        self.losses = losses
        self.lock = threading.Lock()

    def write_rows(self, rows: Any) -> None:
        super().write_rows(rows)
        with self.lock:
            if self.losses > 0:
                self.losses -= 1
                raise OperationalError("COMMIT", {}, Exception("server closed the connection"))


def check_a_stored_row_is_skipped_not_overwritten(store: InferenceStore) -> None:
    rows = [make_row() for _ in range(5)]
    store.write_rows(rows)
    again = [{**row, "probability": 0.9} for row in rows[:3]]
    store.write_rows([*again, make_row()])  # 3 already stored, 1 new
    assert store.count() == 6
    stored = store.read_frame().set_index("request_id")["probability"]
    assert stored[rows[0]["request_id"]] == pytest.approx(0.2)


def check_the_writer_retries_a_batch_whose_acknowledgement_was_lost(url: str) -> None:
    store = LostAcknowledgementStore(url, losses=2)
    store.create()
    try:
        writer = InferenceLogWriter(store, flush_interval=0.01, flush_max_rows=4, max_backoff=0.05)
        writer.start()
        rows = [make_row() for _ in range(10)]
        writer.submit(rows)
        writer.close()
        assert writer.failed_writes == 2  # each lost acknowledgement once, then the retry lands
        assert store.count() == 10
        assert writer.pending == 0
        assert sorted(store.read_frame()["request_id"]) == sorted(r["request_id"] for r in rows)
    finally:
        store.close()


def test_a_stored_row_is_skipped_on_sqlite(tmp_path: Path) -> None:
    store = InferenceStore(f"sqlite:///{tmp_path}/log.db")
    store.create()
    check_a_stored_row_is_skipped_not_overwritten(store)
    store.close()


def test_the_writer_retries_a_lost_acknowledgement_on_sqlite(tmp_path: Path) -> None:
    check_the_writer_retries_a_batch_whose_acknowledgement_was_lost(f"sqlite:///{tmp_path}/l.db")


@pytest.mark.postgres
def test_a_stored_row_is_skipped_on_postgresql(postgres_database: str) -> None:
    store = InferenceStore(postgres_database)
    store.create()
    try:
        check_a_stored_row_is_skipped_not_overwritten(store)
    finally:
        store.close()


@pytest.mark.postgres
def test_the_writer_retries_a_lost_acknowledgement_on_postgresql(postgres_database: str) -> None:
    check_the_writer_retries_a_batch_whose_acknowledgement_was_lost(postgres_database)
