"""PSI, the monitor's figures on small synthetic windows, reports, and the CSV contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditops import schema
from creditops.config import MonitorConfig
from creditops.data import Dataset, split_dataset
from creditops.errors import ContractError, MonitorError
from creditops.monitoring.psi import psi_band, psi_categorical, psi_numeric
from creditops.monitoring.reports import load_latest_result, write_reports
from creditops.monitoring.result import ModelContext
from creditops.monitoring.run import compute_monitor, metrics_for_mlflow
from creditops.monitoring.window import read_current_csv

CONFIG = MonitorConfig(min_rows=50, min_labelled_rows=50)
MODEL = ModelContext("credit-risk", 1, "abc", 0.3, {"test_roc_auc": 0.85, "test_f1_bad": 0.65})


def test_psi_is_near_zero_for_the_same_distribution() -> None:
    rng = np.random.default_rng(0)
    assert psi_numeric(rng.normal(size=5_000), rng.normal(size=5_000), 10) < 0.01


def test_psi_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5_000)
    small = psi_numeric(ref, rng.normal(0.2, 1, 5_000), 10)
    large = psi_numeric(ref, rng.normal(1.0, 1, 5_000), 10)
    assert 0.01 < small < 0.10 < 0.25 < large


def test_psi_keeps_spikes_whole_and_counts_missing_values() -> None:
    ref = np.array([60.0] * 700 + [36.0] * 300)
    assert psi_numeric(ref, ref.copy(), 10) == pytest.approx(0.0)
    with_missing = np.array([60.0] * 500 + [np.nan] * 500)
    assert psi_numeric(ref, with_missing, 10) > 1.0


def test_categorical_psi_sees_a_new_mix() -> None:
    ref = pd.Series(["owner"] * 50 + ["rent"] * 50)
    assert psi_categorical(ref, ref.copy()) == pytest.approx(0.0)
    assert psi_categorical(ref, pd.Series(["rent"] * 90 + [None] * 10)) > 0.25


@pytest.mark.parametrize(
    ("value", "band"),
    [(0.05, "stable"), (0.10, "watch"), (0.2499, "watch"), (0.25, "alert"), (None, "n/a")],
)
def test_psi_bands(value: float | None, band: str) -> None:
    assert psi_band(value, MonitorConfig()) == band


@pytest.fixture(scope="module")
def frames(credit_dataset: Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    split = split_dataset(credit_dataset, 0.2, 42)
    return split.train, split.test


def _window(rows: pd.DataFrame, *, labelled: bool = True, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = schema.coerce_features(rows)
    bad = (rows[schema.TARGET] == "bad").to_numpy()
    out["probability"] = np.clip(0.25 + 0.35 * bad + rng.normal(0, 0.15, len(rows)), 0, 1)
    out["outcome"] = rows[schema.TARGET].to_numpy() if labelled else np.nan
    return out.reset_index(drop=True)


def test_a_window_like_the_reference_shows_no_drift(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = frames
    window = _window(test)
    result, reports = compute_monitor(
        train, window["probability"].to_numpy(), window, MODEL, CONFIG
    )
    assert result.drift_share == 0.0
    assert max(result.feature_psi.values()) < 0.10
    assert result.quality is not None and result.quality["roc_auc"] > 0.8
    assert result.auc_drop == pytest.approx(0.85 - result.quality["roc_auc"])
    assert reports.drift is not None and reports.quality is not None
    assert result.messages == []


def test_a_shifted_window_drifts(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = frames
    window = _window(test)
    window["Income"] = window["Income"] * 0.5
    window["Age"] = window["Age"] + 10
    result, _ = compute_monitor(train, None, window, MODEL, CONFIG)
    assert {"Income", "Age"} <= set(result.drifted_columns)
    assert result.feature_psi["Income"] >= 0.25
    assert result.psi_bands["Income"] == "alert"
    assert result.score_psi is None


def test_an_empty_window_is_an_error(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = frames
    with pytest.raises(MonitorError, match="no rows"):
        compute_monitor(train, None, _window(test).iloc[:0], MODEL, CONFIG)


def test_a_small_window_skips_drift_figures(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, test = frames
    result, reports = compute_monitor(train, None, _window(test.iloc[:20]), MODEL, CONFIG)
    assert result.drift_share is None and result.feature_psi == {}
    assert reports.drift is None
    assert any("fewer than [monitor] min_rows" in m for m in result.messages)


def test_an_unlabelled_window_skips_quality_figures(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = frames
    result, reports = compute_monitor(
        train, None, _window(test, labelled=False), MODEL, CONFIG, with_evidently=False
    )
    assert result.quality is None and result.auc_drop is None
    assert reports.quality is None
    assert "no labelled rows in the window: quality figures skipped" in result.messages
    assert result.feature_psi  # drift figures still make sense


def test_reports_are_written_with_latest_copies(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    train, test = frames
    window = _window(test)
    result, reports = compute_monitor(train, None, window, MODEL, CONFIG)
    paths = write_reports(result, reports, tmp_path)
    for kind in ("drift", "quality"):
        assert Path(paths[f"{kind}_html"]).is_file()
        assert (tmp_path / f"{kind}-latest.html").is_file()
        json.loads((tmp_path / f"{kind}-latest.json").read_text())
    again = load_latest_result(tmp_path)
    assert again.drift_share == result.drift_share
    assert again.feature_psi == pytest.approx(result.feature_psi)


def test_no_summary_yet_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MonitorError, match="run `creditops monitor` first"):
        load_latest_result(tmp_path)


def test_mlflow_metrics_leave_out_undefined_figures(
    frames: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    train, test = frames
    result, _ = compute_monitor(
        train, None, _window(test, labelled=False), MODEL, CONFIG, with_evidently=False
    )
    metrics = metrics_for_mlflow(result)
    assert "psi_Income" in metrics and "current_roc_auc" not in metrics
    assert all(np.isfinite(v) for v in metrics.values())


# --- the current CSV ---------------------------------------------------------------------


def _csv(frame: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "current.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_valid_current_csv_is_read(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    _, test = frames
    current = read_current_csv(_csv(test.iloc[:30], tmp_path))
    assert list(current.rows.columns) == [*schema.FEATURES, "outcome"]
    assert set(current.rows["outcome"]) <= {"good", "bad"}
    assert current.data_quality.invalid_rows == 0


def test_a_current_csv_with_missing_and_extra_columns_is_refused(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    _, test = frames
    broken = test.iloc[:5].drop(columns=["Income"]).assign(Colour="red")
    with pytest.raises(ContractError, match=r"missing column.*Income.*unexpected column.*Colour"):
        read_current_csv(_csv(broken, tmp_path))


def test_a_current_csv_with_wrong_types_is_reported_not_refused(
    frames: tuple[pd.DataFrame, pd.DataFrame], tmp_path: Path
) -> None:
    _, test = frames
    broken = test.iloc[:5].astype({"Age": object})
    broken.loc[broken.index[2], "Age"] = "old"
    current = read_current_csv(_csv(broken, tmp_path))
    assert len(current.rows) == 4
    assert current.data_quality.by_rule == {"Age: not_a_number": 1}
    assert current.data_quality.examples == [
        {"row": 3, "field": "Age", "value": "old", "rule": "is not a number"}
    ]


def test_a_missing_current_csv_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MonitorError, match="not found"):
        read_current_csv(tmp_path / "nope.csv")
