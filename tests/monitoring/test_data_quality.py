"""Rows that break the contract: set aside, counted by field and rule, reported, never refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from creditops import schema
from creditops.config import MonitorConfig, Settings, load_config
from creditops.data import Dataset, split_dataset
from creditops.errors import ContractError, MonitorError
from creditops.monitoring.data_quality import (
    DataQuality,
    require_valid_rows,
    rule_category,
    summarize,
)
from creditops.monitoring.reports import load_latest_result, write_reports
from creditops.monitoring.result import ModelContext, MonitorResult
from creditops.monitoring.run import compute_monitor, metrics_for_mlflow, run_monitor
from creditops.monitoring.window import read_current_csv, read_log_window

CONFIG = MonitorConfig(min_rows=50, min_labelled_rows=50)
MODEL = ModelContext("credit-risk", 1, "abc", 0.3, {"test_roc_auc": 0.85})
# rows (1-based, as in the file) broken on purpose, and how
BROKEN = {10: {"Age": 5}, 20: {"Age": 5, "Records": "maybe"}, 30: {"Home": "castle"}}
BROKEN[40] = {"Income": "abc"}
FIXTURE_BY_RULE = {
    "Age: below_minimum": 2,
    "Home: not_a_category": 1,
    "Income: not_a_number": 1,
    "Records: not_a_category": 1,
}


@pytest.fixture(scope="module")
def frames(credit_dataset: Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    split = split_dataset(credit_dataset, 0.2, 42)
    return split.train, split.test


def original_shape(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows in the shape of the original pipeline's data (original-pipeline.md).

    ``rownames``, ``Status`` (good/bad), then the 13 features with their text
    categories; Income 99999999 is the raw file's code for "unknown" (valid).
    """
    out = rows.loc[:, [schema.TARGET, *schema.FEATURES]].astype(object).reset_index(drop=True)
    out.insert(0, "rownames", np.arange(1, len(out) + 1))
    out.loc[49, "Income"] = schema.MISSING_CODE
    for row, values in BROKEN.items():
        for name, value in values.items():
            out.loc[row - 1, name] = value
    return out


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


# --- counting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "category"),
    [
        ("is above the maximum 10000", "above_maximum"),
        ("is below the minimum 18", "below_minimum"),
        ("must be greater than 0", "below_minimum"),
        ("is not one of rent, owner", "not_a_category"),
        ("is required", "required"),
        ("must be a whole number", "not_whole_number"),
        ("is odd 42 times", "is_odd_times"),
    ],
)
def test_rule_categories_drop_the_limits(rule: str, category: str) -> None:
    assert rule_category(rule) == category


def test_counts_are_rows_by_field_and_rule_commonest_first() -> None:
    violations = [
        schema.Violation(3, "Age", 5, "is below the minimum 18"),
        schema.Violation(3, "Home", "castle", "is not one of rent, owner"),
        schema.Violation(7, "Age", 2, "is below the minimum 18"),
    ]
    quality = summarize(violations, rows=10)
    assert (quality.invalid_rows, quality.valid_rows, quality.invalid_share) == (2, 8, 0.2)
    assert list(quality.by_rule.items()) == [("Age: below_minimum", 2), ("Home: not_a_category", 1)]
    assert quality.examples[0] == {"row": 3, "field": "Age", "value": 5, "rule": violations[0].rule}


def test_too_few_valid_rows_is_an_error_naming_counts_and_rules() -> None:
    violations = [schema.Violation(r, "Age", 5, "is below the minimum 18") for r in range(1, 8)]
    with pytest.raises(
        MonitorError,
        match=r"7 of 10 rows \(70.0%\) break the contract, leaving 3 valid rows, fewer than "
        r"\[monitor\] min_rows 5.*Age: below_minimum \(7 rows\); first: row 1, Age: 5",
    ):
        require_valid_rows(summarize(violations, 10), 5, "file x.csv")
    require_valid_rows(DataQuality(rows=3), 5)  # a small clean window is not refused


# --- the current CSV -----------------------------------------------------------------------


def test_broken_rows_of_a_csv_are_set_aside_and_counted(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    _, test = frames
    current = read_current_csv(_csv(original_shape(test.iloc[:300]), tmp_path / "c.csv"))
    quality = current.data_quality
    assert (quality.rows, quality.invalid_rows, len(current.rows)) == (300, 4, 296)
    assert quality.by_rule == FIXTURE_BY_RULE
    assert [e["row"] for e in quality.examples] == [10, 20, 20, 30, 40]
    assert quality.examples[-1] == {
        "row": 40,
        "field": "Income",
        "value": "abc",
        "rule": "is not a number",
    }
    assert list(current.rows.columns) == [*schema.FEATURES, "outcome"]
    assert current.rows["Age"].min() >= 18
    # the file's row 50 (Income 99999999, the raw code for "unknown") is valid: now 46th
    assert current.rows.loc[45, "Amount"] == test.iloc[49]["Amount"]
    assert np.isnan(current.rows.loc[45, "Income"])


def test_a_wrong_outcome_or_score_is_a_broken_row(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    _, test = frames
    rows = test.iloc[:20].rename(columns={schema.TARGET: "outcome"}).assign(probability=0.3)
    rows = rows.astype({"outcome": object, "probability": object}).reset_index(drop=True)
    rows.loc[2, "outcome"] = "maybe"
    rows.loc[5, "probability"] = 1.5
    rows.loc[6, "probability"] = None
    current = read_current_csv(_csv(rows, tmp_path / "c.csv"))
    assert current.data_quality.by_rule == {
        "probability: not_a_probability": 2,
        "outcome: not_a_category": 1,
    }
    assert len(current.rows) == 17
    assert current.rows["probability"].dtype == np.float64


def test_a_csv_without_a_contract_column_is_still_refused(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    _, test = frames
    with pytest.raises(ContractError, match=r"missing column\(s\): Income"):
        read_current_csv(_csv(test.iloc[:5].drop(columns=["Income"]), tmp_path / "c.csv"))


def test_the_original_simulations_integer_codes_break_every_row(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    """Its simulation sent Home 0-5, Marital 0-4, Records 0-1, Job 0-3: no row is valid."""
    train, test = frames
    coded = test.iloc[:100].loc[:, list(schema.FEATURES)].reset_index(drop=True)
    rng = np.random.default_rng(0)
    for name, codes in (("Home", 6), ("Marital", 5), ("Records", 2), ("Job", 4)):
        coded[name] = rng.integers(0, codes, len(coded))
    current = read_current_csv(_csv(coded, tmp_path / "coded.csv"))
    assert current.data_quality.invalid_rows == 100 and current.rows.empty
    with pytest.raises(
        MonitorError,
        match=r"every one of its 100 rows breaks the contract; nothing to monitor\. "
        r"Commonest broken rules: Home: integer_code .*set \[monitor\] original_codes = true",
    ):
        compute_monitor(train, None, current.rows, MODEL, CONFIG, data_quality=current.data_quality)


# --- the figures, the summary, MLflow and the report folder ---------------------------------


def _monitored(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path, **kwargs: Any
) -> MonitorResult:
    train, test = frames
    current = read_current_csv(_csv(original_shape(test.iloc[:300]), tmp_path / "c.csv"))
    result, reports = compute_monitor(
        train,
        None,
        current.rows,
        MODEL,
        CONFIG,
        window=current.description,
        data_quality=current.data_quality,
        **kwargs,
    )
    write_reports(result, reports, tmp_path / "reports")
    return result


def test_broken_rows_are_a_finding_of_the_result(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    result = _monitored(frames, tmp_path, with_evidently=False)
    assert (result.rows, result.invalid_rows, result.total_rows) == (296, 4, 300)
    assert result.invalid_share == pytest.approx(4 / 300)
    assert result.invalid_by_rule == FIXTURE_BY_RULE
    assert result.labelled_rows == 296 and result.feature_psi  # figures on the valid rows
    assert result.messages[0].startswith("4 of 300 rows (1.3%) break the contract")
    metrics = metrics_for_mlflow(result)
    assert metrics["invalid_rows"] == 4 and metrics["invalid_share"] == pytest.approx(4 / 300)
    assert metrics["invalid_Age_below_minimum"] == 2


def test_broken_rows_reach_the_summary_and_the_report_folder(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    result = _monitored(frames, tmp_path, with_evidently=False)
    folder = tmp_path / "reports"
    again = load_latest_result(folder)
    assert (again.invalid_rows, again.invalid_by_rule) == (4, FIXTURE_BY_RULE)
    assert again.invalid_examples == result.invalid_examples
    section = json.loads((folder / "data-quality-latest.json").read_text())
    assert (section["rows"], section["valid_rows"], section["invalid_rows"]) == (300, 296, 4)
    assert section["invalid_by_rule"] == FIXTURE_BY_RULE
    page = (folder / "data-quality-latest.html").read_text()
    assert "Age: below_minimum" in page and "&#x27;castle&#x27;" in page
    assert set(result.reports) == {"data_quality_html", "data_quality_json", "summary"}


def test_a_clean_window_reports_no_broken_rows(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = frames
    result, _ = compute_monitor(
        train, None, schema.coerce_features(test), MODEL, CONFIG, with_evidently=False
    )
    assert (result.invalid_rows, result.invalid_share, result.invalid_by_rule) == (0, 0.0, {})
    assert metrics_for_mlflow(result)["invalid_rows"] == 0


# --- the inference log ---------------------------------------------------------------------


def _log_row(features: pd.Series, moment: datetime, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "request_id": f"r{moment.timestamp():.0f}",
        "batch_id": "b",
        "created_at": moment,
        "model_name": "credit-risk",
        "model_version": 1,
        **{k: (None if pd.isna(v) else v) for k, v in features.items()},
        "probability": 0.2,
        "decision": "approve",
        "threshold": 0.3,
        "latency_ms": 1.0,
    }
    return row | changes


def test_broken_rows_of_the_inference_log_are_set_aside(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    from creditops.serving.store import InferenceStore

    _, test = frames
    url = f"sqlite:///{tmp_path / 'log.db'}"
    store = InferenceStore(url)
    store.create()
    start = datetime(2024, 1, 1, tzinfo=UTC)
    features = schema.coerce_features(test.iloc[:60])
    rows = [
        _log_row(f, start + timedelta(minutes=i)) for i, (_, f) in enumerate(features.iterrows())
    ]
    rows[4] |= {"Age": 5.0}
    rows[9] |= {"Home": "castle", "probability": 1.5}
    store.write_rows(rows)
    store.close()
    window = read_log_window(CONFIG, url, 1, last_n=None, since=None, until=None)
    quality = window.data_quality
    assert (quality.rows, quality.invalid_rows, len(window.rows)) == (60, 2, 58)
    assert quality.by_rule == {
        "Age: below_minimum": 1,
        "Home: not_a_category": 1,
        "probability: not_a_probability": 1,
    }
    assert (
        quality.examples[0]["row"] == 5
        and quality.examples[0]["request_id"] == rows[4]["request_id"]
    )


# --- the stage, end to end -----------------------------------------------------------------


def test_run_monitor_reports_a_window_with_broken_rows(
    trained_store: tuple[Settings, Any], frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    settings, _ = trained_store
    _, test = frames
    path = _csv(original_shape(test.iloc[:300]), tmp_path / "original-log.csv")
    config = settings.monitor.model_copy(update={"reports_dir": tmp_path / "reports"})
    result = run_monitor(
        config,
        settings.mlflow,
        store_url=settings.serve.store_url,
        drift_share=settings.check.min_drift_share,
        current_csv=path,
        log_run=False,
    )
    assert (result.rows, result.invalid_rows, result.labelled_rows) == (296, 4, 296)
    assert result.invalid_share == pytest.approx(4 / 300)
    assert result.invalid_by_rule == FIXTURE_BY_RULE
    assert result.drift_share is not None and result.quality is not None
    assert Path(result.reports["data_quality_html"]).is_file()
    assert Path(result.reports["drift_html"]).is_file()


def test_the_check_section_has_a_broken_row_limit() -> None:
    assert load_config(None).check.max_invalid_share == 0.05
