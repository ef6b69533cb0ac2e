"""Batch failure paths: a bad cell anywhere is a reject, a failed run leaves no output."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from typer.testing import CliRunner

from creditops.batch import engines, files, run
from creditops.batch.files import rejects_path
from creditops.batch.run import score_file
from creditops.cli.app import app
from creditops.config import Settings
from creditops.data import Dataset
from creditops.errors import ContractError, DataError, RegistryError
from serving_fixtures import ServingRegistry

# pyarrow's CSV reader infers a column's type from its first block of 16 MiB:
# 900 rows padded to 20 kB end that block near row 839
PAD = "x" * 20_000
PADDED_ROWS = 900


def applicants(dataset: Dataset, n: int) -> pd.DataFrame:
    frame = dataset.features.sample(n, replace=True, random_state=5).reset_index(drop=True)
    frame.insert(0, "applicant_id", [f"A{i:05d}" for i in range(n)])
    return frame


def small_chunks(registry: ServingRegistry, rows: int = 128) -> Settings:
    batch = registry.settings.batch.model_copy(update={"chunk_rows": rows})
    return registry.settings.model_copy(update={"batch": batch})


def run_batch(settings: Settings, source: Path, output: Path, **options: Any) -> run.BatchSummary:
    return score_file(
        settings.batch, settings.mlflow, source, output, show_progress=False, **options
    )


def late_bad_cells_csv(dataset: Dataset, path: Path) -> pd.DataFrame:
    """1,200 applicants whose bad cells all sit after the CSV's first block (and first chunk)."""
    frame = applicants(dataset, 1200).astype({"Income": "object", "Seniority": "object"})
    frame.insert(1, "note", [PAD if i < PADDED_ROWS else "" for i in range(len(frame))])
    frame.loc[1000, "Income"] = "abc"
    frame.loc[1100, "Income"] = "12,5"
    frame.loc[1150, "Seniority"] = "7.5"  # a fraction in an integer column
    frame.to_csv(path, index=False)
    return frame


def test_text_in_a_numeric_column_after_the_first_block_is_a_reject(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    source, output = tmp_path / "book.csv", tmp_path / "scores.csv"
    frame = late_bad_cells_csv(credit_dataset, source)
    summary = run_batch(small_chunks(serving_registry), source, output)
    assert (summary.input_rows, summary.scored, summary.rejected) == (1200, 1197, 3)
    rejected = pd.read_csv(rejects_path(output, ".rejects"), keep_default_na=False)
    reasons = dict(zip(rejected["row"], rejected["reasons"], strict=True))
    assert reasons == {
        1001: "Income: 'abc' is not a number",
        1101: "Income: '12,5' is not a number",
        1151: "Seniority: 7.5 must be a whole number",
    }
    assert list(rejected["Income"])[:2] == ["abc", "12,5"]  # the cells as written
    scored = pd.read_csv(output, keep_default_na=False)
    assert list(scored["row"]) == [r for r in range(1, 1201) if r not in reasons]
    assert list(scored["applicant_id"]) == list(
        frame.drop(index=[1000, 1100, 1150])["applicant_id"]
    )


def test_the_same_values_score_the_same_with_or_without_a_bad_cell_in_their_chunk(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    clean, broken = tmp_path / "clean.csv", tmp_path / "broken.csv"
    frame = applicants(credit_dataset, 300)
    frame.to_csv(clean, index=False)
    frame.astype({"Income": "object"}).assign(
        Income=lambda f: f["Income"].where(f.index != 150, "unknown")
    ).to_csv(broken, index=False)
    settings = small_chunks(serving_registry, 1000)
    run_batch(settings, clean, tmp_path / "clean.out.csv")
    run_batch(settings, broken, tmp_path / "broken.out.csv")
    expected = pd.read_csv(tmp_path / "clean.out.csv").drop(index=150).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "broken.out.csv"), expected, check_exact=True
    )


def test_text_in_a_numeric_parquet_column_after_the_first_chunk_is_a_reject(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    frame = applicants(credit_dataset, 600).astype({"Income": "string"})
    frame.loc[450, "Income"] = "abc"
    source, output = tmp_path / "book.parquet", tmp_path / "scores.parquet"
    frame.to_parquet(source, index=False, row_group_size=200)
    summary = run_batch(small_chunks(serving_registry), source, output)
    assert (summary.scored, summary.rejected) == (599, 1)
    rejected = pd.read_parquet(rejects_path(output, ".rejects"))
    assert rejected[["row", "reasons"]].to_dict("records") == [
        {"row": 451, "reasons": "Income: 'abc' is not a number"}
    ]


def test_a_carried_column_that_turns_to_text_after_the_first_block_is_carried_as_written(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    frame = applicants(credit_dataset, 1000)
    frame["applicant_id"] = [f"{i:05d}" for i in range(999)] + ["A00999"]  # leading zeros
    frame.insert(1, "note", [PAD if i < PADDED_ROWS else "" for i in range(len(frame))])
    source, output = tmp_path / "book.csv", tmp_path / "scores.parquet"
    frame.to_csv(source, index=False)
    summary = run_batch(small_chunks(serving_registry), source, output)
    assert summary.scored == 1000
    assert list(pd.read_parquet(output)["applicant_id"]) == list(frame["applicant_id"])


# --- a failed run leaves no output -----------------------------------------------


def earlier_run(output: Path) -> Path:
    """Files an earlier run left, which a failed run must leave as they are."""
    output.write_text("earlier scores\n")
    rejects = rejects_path(output, ".rejects")
    rejects.write_text("earlier rejects\n")
    return rejects


def assert_left_as_it_was(output: Path, rejects: Path, error: BaseException) -> None:
    assert output.read_bytes() == b"earlier scores\n"
    assert rejects.read_bytes() == b"earlier rejects\n"
    assert sorted(p.name for p in output.parent.iterdir() if "partial" in p.name) == []
    assert "no output was written" in str(error) + " ".join(getattr(error, "__notes__", []))


def read_then_fail(error: BaseException) -> Any:
    """A stand-in for the file reader: its first record batch, then ``error``."""
    real = files._record_batches

    def batches(path: Path, chunk_rows: int) -> Iterator[pa.RecordBatch]:
        yield next(iter(real(path, chunk_rows)))
        raise error

    return batches


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (OSError(errno.EIO, "Input/output error"), DataError),
        (KeyboardInterrupt(), KeyboardInterrupt),
    ],
)
def test_a_run_that_fails_after_its_first_chunk_leaves_no_output(
    serving_registry: ServingRegistry,
    credit_dataset: Dataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    suffix: str,
    fault: BaseException,
    expected: type[BaseException],
) -> None:
    source, output = tmp_path / f"book{suffix}", tmp_path / f"scores{suffix}"
    frame = applicants(credit_dataset, 1000)
    frame.to_csv(source, index=False) if suffix == ".csv" else frame.to_parquet(source)
    rejects = earlier_run(output)
    monkeypatch.setattr(files, "_record_batches", read_then_fail(fault))
    with pytest.raises(expected) as failed:  # the first chunks were written before the fault
        run_batch(small_chunks(serving_registry), source, output)
    assert_left_as_it_was(output, rejects, failed.value)
    if expected is DataError:
        assert "Input/output error" in str(failed.value)


def test_a_scoring_failure_leaves_no_output(
    serving_registry: ServingRegistry,
    credit_dataset: Dataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, output = tmp_path / "book.csv", tmp_path / "scores.csv"
    applicants(credit_dataset, 1000).to_csv(source, index=False)
    rejects = earlier_run(output)
    calls = []
    real = engines.score_chunk

    def score_then_fail(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the scorer broke")
        return real(*args, **kwargs)

    monkeypatch.setattr(engines, "score_chunk", score_then_fail)
    with pytest.raises(RuntimeError, match="the scorer broke") as failed:
        run_batch(small_chunks(serving_registry), source, output)
    assert_left_as_it_was(output, rejects, failed.value)


def test_a_missing_column_or_model_leaves_no_output_and_says_so(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    source, output = tmp_path / "book.csv", tmp_path / "scores.csv"
    rejects = earlier_run(output)
    applicants(credit_dataset, 10).drop(columns=["Income"]).to_csv(source, index=False)
    with pytest.raises(ContractError, match=r"missing column.*Income") as missing:
        run_batch(serving_registry.settings, source, output)
    assert_left_as_it_was(output, rejects, missing.value)
    applicants(credit_dataset, 10).to_csv(source, index=False)
    with pytest.raises(RegistryError) as no_model:
        run_batch(serving_registry.settings, source, output, model_version=999)
    assert_left_as_it_was(output, rejects, no_model.value)


def test_a_file_that_is_not_parquet_is_one_data_error_and_leaves_no_output(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    source, output = tmp_path / "book.parquet", tmp_path / "scores.csv"
    rejects = earlier_run(output)
    applicants(credit_dataset, 10).to_csv(source, index=False)  # CSV under a Parquet name
    with pytest.raises(DataError, match=r"cannot read .*book\.parquet: Parquet magic bytes") as bad:
        run_batch(serving_registry.settings, source, output)
    assert_left_as_it_was(output, rejects, bad.value)
    truncated = tmp_path / "cut.parquet"
    applicants(credit_dataset, 10).to_parquet(truncated)
    truncated.write_bytes(truncated.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"cannot read .*cut\.parquet") as cut:
        run_batch(serving_registry.settings, truncated, output)
    assert_left_as_it_was(output, rejects, cut.value)


def test_a_folder_for_input_or_output_is_refused_before_anything_is_read(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    source, output = tmp_path / "book.csv", tmp_path / "scores.csv"
    applicants(credit_dataset, 10).to_csv(source, index=False)
    folder = tmp_path / "a-folder.csv"
    folder.mkdir()
    with pytest.raises(DataError, match=r"input .*a-folder\.csv is a folder"):
        run_batch(serving_registry.settings, folder, output)
    with pytest.raises(DataError, match=r"output .*a-folder\.csv is a folder"):
        run_batch(serving_registry.settings, source, folder)
    assert list(folder.iterdir()) == [] and not output.exists()


REAL_CSV_WRITER = pacsv.CSVWriter


class FullDisk:
    """A CSV writer whose disk fills up at its second table."""

    def __init__(self, sink: Any, schema: pa.Schema, **options: Any) -> None:
        self._writer = REAL_CSV_WRITER(sink, schema, **options)
        self._tables = 0

    def write_table(self, table: pa.Table) -> None:
        self._tables += 1
        if self._tables > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._writer.write_table(table)

    def close(self) -> None:
        self._writer.close()


def test_a_full_disk_is_one_data_error_and_leaves_no_output(
    serving_registry: ServingRegistry,
    credit_dataset: Dataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source, output = tmp_path / "book.csv", tmp_path / "scores.csv"
    applicants(credit_dataset, 1000).to_csv(source, index=False)
    rejects = earlier_run(output)
    monkeypatch.setattr(pacsv, "CSVWriter", FullDisk)
    with pytest.raises(DataError, match="No space left on device") as full:
        run_batch(small_chunks(serving_registry), source, output)
    assert f"cannot write {output}" in str(full.value)
    assert_left_as_it_was(output, rejects, full.value)


def test_an_unwritable_output_folder_is_one_line_on_the_command_line(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    source = tmp_path / "book.csv"
    applicants(credit_dataset, 50).to_csv(source, index=False)
    (tmp_path / "taken").write_text("a file where the output folder should be\n")
    mlflow = serving_registry.settings.mlflow
    config = tmp_path / "creditops.toml"
    config.write_text(
        "[mlflow]\n"
        f'tracking_uri = "{mlflow.tracking_uri}"\n'
        f'artifact_location = "{mlflow.artifact_location}"\n'
        f'registered_model = "{mlflow.registered_model}"\n'
    )
    output = tmp_path / "taken" / "scores.csv"
    result = CliRunner().invoke(
        app, ["--config", str(config), "score", str(source), "--output", str(output), "--json"]
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert [line for line in lines if "scores.csv" in line] == [lines[-1]], result.output
    assert lines[-1].startswith(f"error: cannot write {output}: [Errno")
    assert lines[-1].endswith(
        "no output was written (scores.csv and scores.rejects.csv are as they were)"
    )
