"""Batch scoring: chunks, rejects with reasons, totals, the same numbers as the pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditops import registry, schema
from creditops.batch import chunks
from creditops.batch.files import rejects_path
from creditops.batch.run import score_file
from creditops.config import load_config
from creditops.data import Dataset
from creditops.errors import ContractError, DataError
from serving_fixtures import ServingRegistry


def applicants(dataset: Dataset, n: int) -> pd.DataFrame:
    frame = dataset.features.head(n).reset_index(drop=True).copy()
    frame.insert(0, "applicant_id", [f"A{i:05d}" for i in range(n)])
    return frame


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_scores_every_valid_row_and_rejects_the_rest_with_reasons(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path, suffix: str
) -> None:
    frame = applicants(credit_dataset, 1000).astype({"Age": "object"})
    frame.loc[10, "Age"] = 5  # below the minimum
    frame.loc[500, "Home"] = "castle"
    frame.loc[999, "Age"] = "old"
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        frame.to_csv(source, index=False)
    else:
        frame.astype({"Age": "string"}).to_parquet(source, index=False)
    output = tmp_path / f"out{suffix}"
    settings = serving_registry.settings.model_copy(
        update={"batch": serving_registry.settings.batch.model_copy(update={"chunk_rows": 128})}
    )
    summary = score_file(settings.batch, settings.mlflow, source, output, show_progress=False)
    assert (summary.input_rows, summary.scored, summary.rejected) == (1000, 997, 3)
    read = pd.read_csv if suffix == ".csv" else pd.read_parquet
    scored, rejected = read(output), read(rejects_path(output, ".rejects"))
    assert len(scored) + len(rejected) == 1000
    assert sorted(rejected["row"]) == [11, 501, 1000]
    reasons = dict(zip(rejected["row"], rejected["reasons"], strict=True))
    assert "Age: 5 is below the minimum" in reasons[11]
    assert "Home" in reasons[501]
    assert "is not a number" in reasons[1000]
    assert set(scored["decision"]) <= {"approve", "decline"}
    assert scored["applicant_id"].iloc[0] == "A00000"
    # the numbers are the registered pipeline's
    client = registry.connect(settings.mlflow)
    ref = registry.resolve_alias(client, settings.mlflow.registered_model)
    pipeline = registry.load_pipeline(client, ref)
    valid = frame.drop(index=[10, 500, 999])
    expected = pipeline.predict_proba(schema.coerce_features(valid))[:, 1]
    np.testing.assert_allclose(scored["probability"].to_numpy(), expected, rtol=0, atol=1e-9)
    declined = scored["probability"] >= ref.threshold
    assert ((scored["decision"] == "decline") == declined).all()
    assert scored.loc[declined, "reasons"].str.len().gt(0).all()


def test_a_missing_contract_column_stops_before_writing(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    applicants(credit_dataset, 10).drop(columns=["Income"]).to_csv(source, index=False)
    with pytest.raises(ContractError, match="missing column"):
        score_file(
            serving_registry.settings.batch,
            serving_registry.settings.mlflow,
            source,
            tmp_path / "out.csv",
            show_progress=False,
        )
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_column_named_twice_stops_before_writing(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path, suffix: str
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = applicants(credit_dataset, 10)
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        text = frame.to_csv(index=False).splitlines()
        ages = frame["Age"].astype(int).astype(str).tolist()
        lines = [text[0] + ",Age"] + [
            f"{row},{age}" for row, age in zip(text[1:], ages, strict=True)
        ]
        source.write_text("\n".join(lines) + "\n")
    else:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table.append_column("Age", table.column("Age")), source)
    output = tmp_path / f"out{suffix}"
    with pytest.raises(ContractError, match=r"column\(s\) Age appear more than once"):
        score_file(
            serving_registry.settings.batch,
            serving_registry.settings.mlflow,
            source,
            output,
            show_progress=False,
        )
    assert not output.exists()


def test_a_given_model_version_is_used(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    source = tmp_path / "in.parquet"
    applicants(credit_dataset, 50).to_parquet(source, index=False)
    second = max(serving_registry.families)
    summary = score_file(
        serving_registry.settings.batch,
        serving_registry.settings.mlflow,
        source,
        tmp_path / "out.parquet",
        model_version=second,
        show_progress=False,
    )
    assert summary.model_version == second
    assert set(pd.read_parquet(tmp_path / "out.parquet")["model_version"]) == {second}


@pytest.mark.parametrize("threads", [1, 2])
def test_slices_and_threads_do_not_change_a_single_number(
    serving_registry: ServingRegistry,
    credit_dataset: Dataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    threads: int,
) -> None:
    source = tmp_path / "in.parquet"
    applicants(credit_dataset, 1000).to_parquet(source, index=False)
    whole = serving_registry.settings.batch.model_copy(update={"threads": 1})
    summary = score_file(
        whole,
        serving_registry.settings.mlflow,
        source,
        tmp_path / "whole.parquet",
        show_progress=False,
    )
    monkeypatch.setattr(chunks, "SCORE_SLICE_ROWS", 64)  # 16 slices per chunk
    sliced = serving_registry.settings.batch.model_copy(update={"threads": threads})
    score_file(
        sliced,
        serving_registry.settings.mlflow,
        source,
        tmp_path / "sliced.parquet",
        show_progress=False,
    )
    assert summary.scored == 1000
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "sliced.parquet"),
        pd.read_parquet(tmp_path / "whole.parquet"),
        check_exact=True,
    )


def test_output_over_the_input_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    source = tmp_path / "book.csv"
    source.write_text("Seniority\n1\n")
    settings = load_config(None, mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'm.db'}"})
    with pytest.raises(DataError, match="is the input file"):
        score_file(settings.batch, settings.mlflow, source, source, show_progress=False)
    assert source.read_text() == "Seniority\n1\n"
    assert not (tmp_path / "m.db").exists()
    with pytest.raises(DataError, match="not found"):
        score_file(
            settings.batch,
            settings.mlflow,
            tmp_path / "absent.csv",
            tmp_path / "out.csv",
            show_progress=False,
        )


def test_parquet_category_columns_of_any_encoding_score_as_the_csv(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = applicants(credit_dataset, 600)
    frame.loc[7, "Job"] = "astronaut"  # not a category: rejected, named with its value
    frame.loc[300, "Marital"] = None
    csv = tmp_path / "in.csv"
    frame.to_csv(csv, index=False)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # dictionary-encoded in the file, in row groups of 250 rows (chunks of 128 straddle them)
    encoded = tmp_path / "encoded.parquet"
    pq.write_table(table, encoded, row_group_size=250, use_dictionary=True)
    plain = tmp_path / "plain.parquet"
    pq.write_table(table, plain, row_group_size=250, use_dictionary=False)
    # a hostile file: Records written as numbers, not text
    numbers = tmp_path / "numbers.parquet"
    records = pa.array(np.where(frame["Records"] == "yes", 1, 0))
    pq.write_table(
        table.set_column(table.schema.get_field_index("Records"), "Records", records), numbers
    )
    batch = serving_registry.settings.batch.model_copy(update={"chunk_rows": 128})
    mlflow = serving_registry.settings.mlflow

    def scored(source: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
        output = tmp_path / f"scores-{source.stem}.csv"
        score_file(batch, mlflow, source, output, show_progress=False)
        return pd.read_csv(output), pd.read_csv(rejects_path(output, ".rejects"))

    expected, expected_rejects = scored(csv)
    assert list(expected_rejects["row"]) == [8]
    assert "Job: 'astronaut' is not one of" in expected_rejects["reasons"].iloc[0]
    for source in (encoded, plain):
        got, rejects = scored(source)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        pd.testing.assert_frame_equal(rejects, expected_rejects, check_exact=True)
    got, rejects = scored(numbers)
    assert len(got) == 0 and len(rejects) == 600  # every row: Records 0 or 1 is not one of no, yes
    assert rejects["reasons"].str.contains("Records: 0 is not one of").any()


def test_csv_text_columns_read_as_categories_across_blocks_score_as_the_pipeline(
    serving_registry: ServingRegistry,
    credit_dataset: Dataset,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from creditops.batch import files

    frame = applicants(credit_dataset, 700)
    frame.loc[5, "Home"] = "castle"  # not a category
    frame.loc[260, "Records"] = None  # required
    frame.loc[261, "Job"] = "Fixed"  # labels are exact
    frame.loc[400, "Marital"] = None  # may be missing
    source = tmp_path / "in.csv"
    frame.to_csv(source, index=False)
    # blocks of about 20 rows, each with its own dictionary (categories in the
    # order they appear), and chunks of 128 rows that straddle them
    monkeypatch.setattr(files, "CSV_BLOCK_BYTES", 2048)
    chunks_read = list(files.read_chunks(source, 128))
    assert all(isinstance(c["Home"].dtype, pd.CategoricalDtype) for c in chunks_read)
    assert chunks_read[2]["Home"].iloc[4] == frame["Home"].iloc[260]
    batch = serving_registry.settings.batch.model_copy(update={"chunk_rows": 128})
    settings = serving_registry.settings
    output = tmp_path / "out.csv"
    summary = score_file(batch, settings.mlflow, source, output, show_progress=False)
    assert (summary.scored, summary.rejected) == (697, 3)
    scored, rejected = pd.read_csv(output), pd.read_csv(rejects_path(output, ".rejects"))
    reasons = dict(zip(rejected["row"], rejected["reasons"], strict=True))
    assert "Home: 'castle' is not one of" in reasons[6]
    assert "Records: missing is required" in reasons[261]
    assert "Job: 'Fixed' is not one of" in reasons[262]
    client = registry.connect(settings.mlflow)
    ref = registry.resolve_alias(client, settings.mlflow.registered_model)
    valid = frame.drop(index=[5, 260, 261])
    expected = registry.load_pipeline(client, ref).predict_proba(schema.coerce_features(valid))
    np.testing.assert_allclose(scored["probability"], expected[:, 1], rtol=0, atol=1e-9)
    assert list(scored["row"]) == [i + 1 for i in valid.index]
    # one block, one dictionary: the same files
    monkeypatch.setattr(files, "CSV_BLOCK_BYTES", 1 << 24)
    again = tmp_path / "again.csv"
    score_file(batch, settings.mlflow, source, again, show_progress=False)
    pd.testing.assert_frame_equal(pd.read_csv(again), scored, check_exact=True)
    pd.testing.assert_frame_equal(
        pd.read_csv(rejects_path(again, ".rejects")), rejected, check_exact=True
    )


def test_parquet_numbers_written_as_dictionary_text_are_checked_cell_by_cell(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = applicants(credit_dataset, 60)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    ages = [str(int(a)) if i % 20 else "old" for i, a in enumerate(frame["Age"])]
    table = table.set_column(
        table.schema.get_field_index("Age"), "Age", pa.array(ages).dictionary_encode()
    )
    source = tmp_path / "in.parquet"
    pq.write_table(table, source)
    output = tmp_path / "out.csv"
    settings = serving_registry.settings
    summary = score_file(settings.batch, settings.mlflow, source, output, show_progress=False)
    assert (summary.scored, summary.rejected) == (57, 3)
    rejected = pd.read_csv(rejects_path(output, ".rejects"), dtype=str)
    assert list(rejected["row"]) == ["1", "21", "41"]
    assert (rejected["reasons"] == "Age: 'old' is not a number").all()
    assert (rejected["Age"] == "old").all()  # as written
    scored = pd.read_csv(output)
    client = registry.connect(settings.mlflow)
    ref = registry.resolve_alias(client, settings.mlflow.registered_model)
    valid = frame.drop(index=[0, 20, 40])
    expected = registry.load_pipeline(client, ref).predict_proba(schema.coerce_features(valid))
    np.testing.assert_allclose(scored["probability"], expected[:, 1], rtol=0, atol=1e-9)


def test_parquet_truth_values_and_dates_in_number_columns_are_not_numbers(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    import datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = applicants(credit_dataset, 20)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.set_column(table.schema.get_field_index("Debt"), "Debt", pa.array([False] * 20))
    when = pa.array([datetime.datetime(2026, 1, 1)] * 20)
    table = table.set_column(table.schema.get_field_index("Price"), "Price", when)
    source = tmp_path / "in.parquet"
    pq.write_table(table, source)
    output = tmp_path / "out.csv"
    settings = serving_registry.settings
    summary = score_file(settings.batch, settings.mlflow, source, output, show_progress=False)
    assert (summary.scored, summary.rejected) == (0, 20)  # not 0.0 debt, not nanoseconds
    rejected = pd.read_csv(rejects_path(output, ".rejects"), dtype=str)
    first = rejected["reasons"].iloc[0]
    assert first.startswith("Debt: False is not a number; Price: ")
    assert first.endswith("is not a number")
    assert (rejected["Debt"] == "False").all() and rejected["Price"].str.startswith(
        "2026-01-01"
    ).all()
