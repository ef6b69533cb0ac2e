"""`monitor --current` on the original pipeline's own 2,000-row inference log.

The file is built here the way the original's simulator writes it: the
categories as integer codes of its value table, money with cents, its
model's ``prediction``, the simulated ``target`` (its label encoding of
Status: bad=0, good=1) and pandas' unnamed index column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from creditops import registry, schema
from creditops.config import Settings
from creditops.data import Dataset
from creditops.errors import ContractError, MonitorError
from creditops.monitoring.psi import feature_psi
from creditops.monitoring.run import run_monitor
from creditops.monitoring.window import read_current_csv

# the original's value table, written out here (not read from creditops): code = position
VALUE_TABLE = {
    "Home": ["rent", "owner", "parents", "priv", "other", "ignore"],
    "Marital": ["married", "widow", "single", "separated", "divorced"],
    "Records": ["no", "yes"],
    "Job": ["freelance", "fixed", "partime", "others"],
}
ROWS = 2_000
# rows (1-based data rows) broken on purpose, the cell and its value
BROKEN: dict[int, tuple[str, Any]] = {
    7: ("Age", 5),
    70: ("Home", 9),
    700: ("target", 2),
    1400: ("Income", "abc"),
    1999: ("Amount", -5.5),
}
BY_RULE_WITH_CODES = {
    "Age: below_minimum": 1,
    "Amount: below_minimum": 1,
    "Home: not_a_category": 1,
    "Income: not_a_number": 1,
    "target: not_a_category": 1,
}
SWITCH = "set [monitor] original_codes = true"


@pytest.fixture(scope="module")
def original_log(
    credit_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, pd.DataFrame]:
    """The log file, and its rows as the contract reads them (text labels, Status)."""
    rng = np.random.default_rng(11)
    rows = credit_dataset.frame.sample(ROWS, random_state=5).reset_index(drop=True)
    expected = rows.loc[:, [*schema.FEATURES, schema.TARGET]].copy()
    for name in ("Amount", "Price"):
        expected[name] = expected[name] + rng.integers(1, 100, ROWS) / 100
    log = expected.loc[:, list(schema.FEATURES)].astype(object)
    for name, labels in VALUE_TABLE.items():
        log[name] = expected[name].map({label: code for code, label in enumerate(labels)})
    log["prediction"] = rng.integers(0, 2, ROWS)
    log["target"] = (expected[schema.TARGET] == "good").astype(int)
    for row, (name, value) in BROKEN.items():
        log.loc[row - 1, name] = value
    path = tmp_path_factory.mktemp("original") / "credit_data_inferences_log.csv"
    log.to_csv(path)  # with pandas' index: the "Unnamed: 0" column
    return path, expected


def _valid(expected: pd.DataFrame) -> pd.DataFrame:
    return expected.drop(index=[row - 1 for row in BROKEN]).reset_index(drop=True)


def test_the_file_is_as_the_original_writes_it(original_log: tuple[Path, pd.DataFrame]) -> None:
    path, _ = original_log
    head = pd.read_csv(path, nrows=3)
    assert head.columns[0] == "Unnamed: 0"
    assert {"prediction", "target"} <= set(head.columns)
    assert pd.api.types.is_numeric_dtype(head["Records"])
    assert not (head["Amount"] == head["Amount"].round()).all()  # cents


def test_with_original_codes_the_log_is_read_and_its_broken_rows_counted(
    original_log: tuple[Path, pd.DataFrame],
) -> None:
    path, expected = original_log
    window = read_current_csv(path, original_codes=True)
    quality = window.data_quality
    assert (quality.rows, quality.invalid_rows, len(window.rows)) == (ROWS, 5, ROWS - 5)
    assert quality.by_rule == BY_RULE_WITH_CODES
    assert [(e["row"], e["field"], e["value"]) for e in quality.examples] == [
        (row, name, value) for row, (name, value) in BROKEN.items()
    ]
    valid = _valid(expected)
    pd.testing.assert_frame_equal(
        window.rows.loc[:, list(schema.FEATURES)], schema.coerce_features(valid)
    )
    assert window.rows["outcome"].tolist() == valid[schema.TARGET].tolist()


def test_without_original_codes_every_code_is_a_finding_naming_the_switch(
    original_log: tuple[Path, pd.DataFrame],
) -> None:
    path, expected = original_log
    window = read_current_csv(path, original_codes=False)
    quality = window.data_quality
    assert (quality.invalid_rows, len(window.rows)) == (ROWS, 0)
    for name in VALUE_TABLE:
        # row 70's Home 9 is an integer code too
        assert quality.by_rule[f"{name}: integer_code"] == expected[name].notna().sum()
        assert f"{name}: not_a_category" not in quality.by_rule
    assert "Records: required" not in quality.by_rule  # Records 0: one finding, the code's
    assert all(SWITCH in e["rule"] for e in quality.examples)


def test_the_original_target_is_the_only_outcome_column(
    original_log: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    path, expected = original_log
    both = pd.read_csv(path, nrows=20).assign(Status=expected[schema.TARGET].iloc[:20])
    both.to_csv(tmp_path / "both.csv", index=False)
    with pytest.raises(ContractError, match=r"more than one outcome column \(Status, target\)"):
        read_current_csv(tmp_path / "both.csv", original_codes=True)


def _monitor(settings: Settings, path: Path, tmp_path: Path, *, codes: bool) -> Any:
    config = settings.monitor.model_copy(
        update={"reports_dir": tmp_path / "reports", "original_codes": codes}
    )
    return run_monitor(
        config,
        settings.mlflow,
        store_url=settings.serve.store_url,
        drift_share=settings.check.min_drift_share,
        current_csv=path,
        log_run=False,
    )


def test_run_monitor_reports_the_original_log_on_its_valid_rows(
    trained_store: tuple[Settings, Any], original_log: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    settings, _ = trained_store
    path, expected = original_log
    result = _monitor(settings, path, tmp_path, codes=True)
    assert (result.total_rows, result.rows, result.labelled_rows) == (ROWS, ROWS - 5, ROWS - 5)
    assert result.invalid_share == pytest.approx(5 / ROWS)
    assert result.invalid_by_rule == BY_RULE_WITH_CODES
    # the figures, computed here on the valid rows as the contract reads them
    client = registry.connect(settings.mlflow)
    champion = registry.resolve_alias(client, settings.mlflow.registered_model)
    train, _ = registry.load_training_frames(client, champion)
    valid = _valid(expected)
    psi = feature_psi(train, schema.coerce_features(valid), settings.monitor.psi_bins)
    assert result.feature_psi == pytest.approx(psi)
    scores = registry.load_pipeline(client, champion).predict_proba(schema.coerce_features(valid))[
        :, 1
    ]
    auc = roc_auc_score(valid[schema.TARGET] == schema.POSITIVE_LABEL, scores)
    assert result.quality is not None and result.quality["roc_auc"] == pytest.approx(auc)
    assert result.drift_share is not None


def test_run_monitor_without_original_codes_names_the_switch(
    trained_store: tuple[Settings, Any], original_log: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    settings, _ = trained_store
    path, _ = original_log
    with pytest.raises(MonitorError) as caught:
        _monitor(settings, path, tmp_path, codes=False)
    message = str(caught.value)
    assert f"every one of its {ROWS} rows breaks the contract" in message
    assert "integer_code" in message and SWITCH in message
