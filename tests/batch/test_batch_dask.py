"""Batch scoring on a real Dask cluster: 2 worker processes on loopback, same files as one process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from typer.testing import CliRunner

from creditops.batch.engines import model_loads, parse_local
from creditops.batch.files import rejects_path
from creditops.batch.run import score_file
from creditops.cli.app import app
from creditops.config import BatchConfig
from creditops.data import Dataset
from creditops.errors import BatchEngineError
from serving_fixtures import ServingRegistry

if TYPE_CHECKING:
    from distributed import LocalCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A LocalCluster of 2 worker processes, one thread each, on 127.0.0.1."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # a free loopback port: no clash on 8787
    ) as local:
        yield local


def book(dataset: Dataset, n: int) -> pd.DataFrame:
    frame = dataset.features.sample(n, replace=True, random_state=3).reset_index(drop=True)
    frame.insert(0, "applicant_id", [f"A{i:05d}" for i in range(n)])
    frame = frame.astype({"Age": "object"})
    for row, column, value in ((7, "Age", 5), (1500, "Home", "castle"), (2999, "Age", "old")):
        if row < n:  # broken rows: below the minimum, unknown category, not a number
            frame.loc[row, column] = value
    return frame


def small_chunks(registry: ServingRegistry, rows: int) -> BatchConfig:
    return registry.settings.batch.model_copy(update={"chunk_rows": rows})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_two_worker_cluster_writes_the_same_files_as_one_process(
    cluster: LocalCluster,
    serving_registry: ServingRegistry,
    credit_dataset: Dataset,
    tmp_path: Path,
    suffix: str,
) -> None:
    frame = book(credit_dataset, 3000)
    source = tmp_path / f"book{suffix}"
    if suffix == ".csv":
        frame.to_csv(source, index=False)
    else:
        frame.astype({"Age": "string"}).to_parquet(source, index=False)
    config = small_chunks(serving_registry, 256)  # 12 chunks over 2 workers
    mlflow = serving_registry.settings.mlflow
    local_out, dask_out = tmp_path / f"local{suffix}", tmp_path / f"dask{suffix}"

    alone = score_file(config, mlflow, source, local_out, show_progress=False, dask_scheduler="")
    spread = score_file(
        config,
        mlflow,
        source,
        dask_out,
        show_progress=False,
        dask_scheduler=cluster.scheduler_address,
    )

    assert (spread.input_rows, spread.scored, spread.rejected) == (3000, 2997, 3)
    assert (spread.scored, spread.rejected, spread.declined) == (
        alone.scored,
        alone.rejected,
        alone.declined,
    )
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    pd.testing.assert_frame_equal(read(dask_out), read(local_out), check_exact=True)
    pd.testing.assert_frame_equal(
        read(rejects_path(dask_out, ".rejects")),
        read(rejects_path(local_out, ".rejects")),
        check_exact=True,
    )
    scored = read(dask_out)
    assert scored["reasons"].str.len().gt(0).any()
    assert sorted(read(rejects_path(dask_out, ".rejects"))["row"]) == [8, 1501, 3000]


def test_each_worker_compiles_the_model_once_for_many_chunks(
    cluster: LocalCluster,
    serving_registry: ServingRegistry,
    credit_dataset: Dataset,
    tmp_path: Path,
) -> None:
    from distributed import Client

    source = tmp_path / "book.parquet"
    book(credit_dataset, 3000).astype({"Age": "string"}).to_parquet(source, index=False)
    # a model version no other test scored on this cluster
    second = max(serving_registry.families)
    with Client(cluster) as client:
        before = client.run(model_loads)
        summary = score_file(
            small_chunks(serving_registry, 100),  # 30 chunks
            serving_registry.settings.mlflow,
            source,
            tmp_path / "out.parquet",
            model_version=second,
            show_progress=False,
            dask_scheduler=cluster.scheduler_address,
        )
        after = client.run(model_loads)
    assert summary.scored + summary.rejected == 3000
    assert len(after) == 2
    assert sum(after[w] - before[w] for w in after) <= 2
    assert all(after[w] - before[w] <= 1 for w in after)


def test_the_cli_scores_on_the_cluster(
    cluster: LocalCluster,
    serving_registry: ServingRegistry,
    credit_dataset: Dataset,
    tmp_path: Path,
) -> None:
    source = tmp_path / "book.csv"
    book(credit_dataset, 500).to_csv(source, index=False)
    config = tmp_path / "creditops.toml"
    mlflow = serving_registry.settings.mlflow
    config.write_text(
        "[mlflow]\n"
        f'tracking_uri = "{mlflow.tracking_uri}"\n'
        f'artifact_location = "{mlflow.artifact_location}"\n'
        f'registered_model = "{mlflow.registered_model}"\n'
    )
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(config),
            "score",
            str(source),
            "--output",
            str(tmp_path / "out.csv"),
            "--dask",
            cluster.scheduler_address,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "out.csv")) == 499


def test_an_unreachable_scheduler_is_one_clear_error(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = tmp_path / "book.csv"
    book(credit_dataset, 10).to_csv(source, index=False)
    settings = serving_registry.settings
    with pytest.raises(BatchEngineError, match=f"Dask scheduler at tcp://127.0.0.1:{port}"):
        score_file(
            settings.batch.model_copy(update={"dask_scheduler": f"tcp://127.0.0.1:{port}"}),
            settings.mlflow,
            source,
            tmp_path / "out.csv",
            show_progress=False,
        )


@pytest.mark.parametrize(
    ("address", "workers"), [("local", 2), ("local:3", 3), ("tcp://127.0.0.1:8786", None)]
)
def test_local_addresses_name_their_worker_count(address: str, workers: int | None) -> None:
    assert parse_local(address) == workers


def test_a_bad_local_worker_count_is_refused() -> None:
    with pytest.raises(BatchEngineError, match="local:N"):
        parse_local("local:zero")


def test_local_2_starts_its_own_two_worker_cluster(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    source = tmp_path / "book.parquet"
    book(credit_dataset, 600).astype({"Age": "string"}).to_parquet(source, index=False)
    config = small_chunks(serving_registry, 100)
    mlflow = serving_registry.settings.mlflow
    alone = score_file(config, mlflow, source, tmp_path / "a.parquet", show_progress=False)
    spread = score_file(
        config,
        mlflow,
        source,
        tmp_path / "b.parquet",
        show_progress=False,
        dask_scheduler="local:2",
    )
    assert (spread.scored, spread.rejected) == (alone.scored, alone.rejected) == (599, 1)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "b.parquet"), pd.read_parquet(tmp_path / "a.parquet")
    )
