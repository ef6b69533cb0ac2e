"""The shadow log writer: every batch lands once, by request id, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditops.serving.shadow_log import ShadowBatch, ShadowRow, ShadowWriter, read_shadow


def check_round_trip(url: str) -> None:
    writer = ShadowWriter(url, flush_seconds=0.01)
    ids = [f"r{k:04d}" for k in range(300)]
    probability = np.linspace(0.0, 0.9, 300)
    writer.submit(ShadowBatch(ids[:200], "credit-risk", 7, probability[:200], 0.4))
    writer.submit(ShadowBatch(ids[150:], "credit-risk", 7, probability[150:], 0.4))  # overlap
    writer.close()
    frame = read_shadow(url, model_version=7)
    assert writer.failed == 0 and writer.dropped == 0
    assert sorted(frame["request_id"]) == ids  # the 50 ids sent twice are stored once
    got = frame.set_index("request_id").loc[ids]
    np.testing.assert_allclose(got["probability"], probability)
    expected = np.where(probability < 0.4, "approve", "decline")
    assert list(got["decision"]) == list(expected)
    assert (got["model_name"] == "credit-risk").all() and (got["threshold"] == 0.4).all()
    created = pd.to_datetime(got["created_at"], utc=True)
    assert created.notna().all()
    assert (pd.Timestamp.now(tz="UTC") - created).max() < pd.Timedelta(minutes=5)


def test_batches_round_trip_on_sqlite(tmp_path: Path) -> None:
    check_round_trip(f"sqlite:///{tmp_path / 'log.db'}")


@pytest.mark.postgres
def test_batches_round_trip_on_postgresql(postgres_database: str) -> None:
    check_round_trip(postgres_database)


def test_rows_beyond_the_limit_are_dropped_and_counted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    writer = ShadowWriter(url, max_rows=100, flush_seconds=0.5)
    writer.submit(ShadowBatch([f"a{k}" for k in range(80)], "m", 1, np.full(80, 0.1), 0.4))
    writer.submit(ShadowBatch([f"b{k}" for k in range(30)], "m", 1, np.full(30, 0.1), 0.4))
    writer.close()
    assert writer.dropped == 30 and writer.written == 80
    assert len(read_shadow(url)) == 80


def test_row_objects_and_batches_share_one_insert(tmp_path: Path) -> None:
    from creditops.serving.shadow_log import shadow_engine, write_shadow_rows

    url = f"sqlite:///{tmp_path / 'log.db'}"
    row = ShadowRow("x1", "m", 2, 0.7, "decline", 0.5)
    assert write_shadow_rows(shadow_engine(url), [row, row]) == 2  # the second is ignored
    frame = read_shadow(url)
    assert frame[["request_id", "model_version", "decision"]].values.tolist() == [
        ["x1", 2, "decline"]
    ]
