"""The monitoring table: upserts (never duplicates), refused rows, SQLite and PostgreSQL."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import sqlalchemy as sa

from creditops.errors import StoreError
from creditops.monitoring.table import MonitoringRow, read_table, write_rows


def _rows(value: float) -> list[MonitoringRow]:
    return [
        MonitoringRow("2025-01", 1, "volume", "volume", 300.0, rows=300),
        MonitoringRow("2025-01", 1, "roc_auc", "realised", value, rows=150),
        MonitoringRow(
            "2025-01", 2, "roc_auc", "realised", None, rows=12, detail="12 rows < min 100"
        ),
        MonitoringRow("2025-02", 1, "est_roc_auc", "estimated", 0.8, lower=0.75, upper=0.85),
    ]


def _stored_count(url: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(sa.text("SELECT count(*) FROM monitoring")).scalar_one())
    finally:
        engine.dispose()


def _check_upserts(url: str) -> None:
    assert write_rows(url, _rows(0.81)) == 4
    first = read_table(url)
    assert write_rows(url, _rows(0.77)) == 4  # the same months again: updated, not added
    table = read_table(url)
    assert _stored_count(url) == len(table) == 4
    assert list(table[["month", "model_version", "metric"]].itertuples(index=False, name=None)) == [
        ("2025-01", 1, "roc_auc"),
        ("2025-01", 1, "volume"),
        ("2025-01", 2, "roc_auc"),
        ("2025-02", 1, "est_roc_auc"),
    ]
    auc = table.set_index(["month", "model_version", "metric"]).loc[("2025-01", 1, "roc_auc")]
    assert auc["value"] == pytest.approx(0.77)
    assert auc["computed_at"] >= first["computed_at"].max()
    absent = table.loc[table["model_version"] == 2].iloc[0]
    assert absent["value"] is None and absent["detail"] == "12 rows < min 100"
    assert absent["rows"] == 12
    interval = table.loc[table["metric"] == "est_roc_auc"].iloc[0]
    assert (interval["lower"], interval["upper"]) == (0.75, 0.85)
    assert str(table["computed_at"].dt.tz) == "UTC"


def test_writing_the_same_months_twice_updates_rows(tmp_path: Path) -> None:
    _check_upserts(f"sqlite:///{tmp_path / 'log.db'}")


@pytest.mark.postgres
def test_writing_the_same_months_twice_updates_rows_in_postgres(postgres_database: str) -> None:
    _check_upserts(postgres_database)


def test_an_empty_table_reads_as_an_empty_frame(tmp_path: Path) -> None:
    table = read_table(f"sqlite:///{tmp_path / 'log.db'}")
    assert table.empty and "metric" in table.columns
    assert write_rows(f"sqlite:///{tmp_path / 'log.db'}", []) == 0


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (MonitoringRow("2025-01", 1, "ks", "realised", math.nan), "not finite"),
        (MonitoringRow("2025-01", 1, "ks", "quality", 0.4), "kind 'quality'"),
        (MonitoringRow("2025-1", 1, "ks", "realised", 0.4), "not YYYY-MM"),
        (MonitoringRow("2025-01", 1, "volume", "volume", 3.0), "twice"),
    ],
)
def test_a_bad_row_writes_nothing(tmp_path: Path, bad: MonitoringRow, message: str) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with pytest.raises(StoreError, match=message):
        write_rows(url, [*_rows(0.8), bad])
    assert read_table(url).empty


def test_a_malformed_url_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="malformed"):
        read_table("not a url")
