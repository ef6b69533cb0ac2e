"""What the commands print when their output is not a terminal: whole tables, every figure.

The commands run as a user's shell or a CI job runs them: a subprocess whose
stdin, stdout and stderr are not terminals and without ``COLUMNS``, where rich
would lay tables out for 80 columns and cut their cells ("rando…").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from creditops import registry, schema, validation
from creditops.config import Settings
from creditops.data import Dataset

pytestmark = pytest.mark.slow


def _config(settings: Settings, tmp_path: Path) -> Path:
    """A config file on the shared store, with reports and decisions under ``tmp_path``."""
    path = tmp_path / "creditops.toml"
    path.write_text(
        f"""
[mlflow]
tracking_uri = "{settings.mlflow.tracking_uri}"
artifact_location = "{settings.mlflow.artifact_location}"
[logging]
runs_log = "{tmp_path / "runs.log"}"
[data]
cache_dir = "{settings.data.cache_dir}"
[serve]
store_url = "sqlite:///{tmp_path / "inferences.db"}"
[monitor]
reports_dir = "{tmp_path / "reports"}"
[check]
decisions_dir = "{tmp_path / "decisions"}"
""",
        encoding="utf-8",
    )
    return path


def _run(config: Path, *args: str) -> str:
    """``creditops ARGS`` with every stream a pipe; its stdout (exit status 0 checked)."""
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES"}}
    done = subprocess.run(
        [sys.executable, "-m", "creditops", "--config", str(config), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_models_table_is_whole_off_a_terminal(
    trained_store: tuple[Settings, Any], tmp_path: Path
) -> None:
    settings, _ = trained_store
    out = _run(_config(settings, tmp_path), "models")
    assert "…" not in out
    champion = registry.resolve_alias(
        registry.connect(settings.mlflow), settings.mlflow.registered_model
    )
    row = next(line for line in out.splitlines() if "champion" in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[0] == str(champion.version) and cells[2] == champion.family
    assert cells[-2:] == [f"{champion.threshold:.4f}", champion.data_hash[:12]]
    header = next(line for line in out.splitlines() if "threshold" in line)
    assert "test AUC" in header and "F1 bad" in header


def _window(credit_dataset: Dataset, path: Path) -> Path:
    """300 applicants with outcomes; rows 10 and 20 break the contract, 30 carries no category."""
    rows = credit_dataset.frame.sample(300, random_state=2).reset_index(drop=True)
    rows = rows.loc[:, [*schema.FEATURES, schema.TARGET]].astype(object)
    rows.loc[9, "Age"] = 5
    rows.loc[19, "Home"] = "castle"
    rows.loc[19, "Income"] = np.nan  # valid (unknown income): row 20 breaks one rule
    rows.to_csv(path, index=False)
    return path


def test_monitor_and_check_print_the_data_quality_and_the_figures_judged(
    trained_store: tuple[Settings, Any], credit_dataset: Dataset, tmp_path: Path
) -> None:
    settings, _ = trained_store
    config = _config(settings, tmp_path)
    current = _window(credit_dataset, tmp_path / "current.csv")
    out = _run(config, "monitor", "--current", str(current))
    assert "…" not in out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") == 4}
    assert "298 of 300" in lines["rows"]
    assert "2 (0.0067)" in lines["rows breaking the contract"]
    assert "1" in lines["Age: below_minimum"] and "1" in lines["Home: not_a_category"]
    assert "Age: 5 is below the minimum 18" in lines["e.g. row 10"]
    assert (
        "Home: 'castle' is not one of rent, owner, parents, priv, other, ignore"
        in (lines["e.g. row 20"])
    )
    summary = json.loads((tmp_path / "reports" / "monitor-latest.json").read_text())
    drifted = ", ".join(summary["drifted_columns"]) or "none"
    assert drifted in lines["drifted features (Evidently)"]
    checked = _run(config, "check")
    assert "…" not in checked
    assert f"figures judged: file {current}, computed at {summary['created_at']} (" in checked
    record = checked.rsplit("decision record: ", 1)[1].strip()
    decision = json.loads(Path(record).read_text(encoding="utf-8"))
    assert decision["figures_computed_at"] == summary["created_at"]


def test_the_window_file_breaks_the_rows_it_says(credit_dataset: Dataset, tmp_path: Path) -> None:
    """The monitor test's expected counts, checked against the contract directly."""
    frame = pd.read_csv(_window(credit_dataset, tmp_path / "w.csv"))
    violations = validation.validate_rows(schema.normalize_raw(frame))
    assert sorted((v.row, v.field) for v in violations) == [(10, "Age"), (20, "Home")]
