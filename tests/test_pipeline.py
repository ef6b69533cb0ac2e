"""The whole loop, as `make run` runs it, with tiny sizes: a real server and a real MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from creditops.cli.app import app

pytestmark = pytest.mark.slow


def test_pipeline_concept_drift_retrains_and_swaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "creditops.toml"
    config.write_text(
        """
[train]
families = ["logreg", "lightgbm"]
trials_per_family = 2
cv_folds = 3
n_jobs = 1
[simulate]
samples = 600
[check]
min_f1 = 0.0
[serve]
port = 0
[pipeline]
scenario = "concept"
"""
    )
    result = CliRunner().invoke(app, ["--config", str(config), "pipeline"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "600 rows logged for 600 scored" in out
    assert "expected v" in out and ": OK)" in out
    # the decision record says what fired and what the gate decided
    record = tmp_path / "reports" / "decisions" / "decision-latest.json"
    decision = json.loads(record.read_text())
    assert decision["fired"] is True
    assert decision["action"] == "retrain"
    assert decision["retrain"]["holdout_rows"] > 0
    assert list((tmp_path / "reports").glob("drift-*.html"))
    assert (tmp_path / "runs" / "serve.log").is_file()


def test_pipeline_refuses_an_unknown_scenario(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["pipeline", "--scenario", "tsunami"])
    assert result.exit_code == 2
    assert (
        "--scenario 'tsunami' is not one of none, covariate, concept, original, ordered-tail"
        in result.stderr
    )
