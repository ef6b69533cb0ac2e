"""The command line as a user drives it: exit codes and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from creditops.cli.app import app

runner = CliRunner()


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "creditops.toml"
    path.write_text(
        f"""
[mlflow]
tracking_uri = "sqlite:///{tmp_path / "mlflow.db"}"
artifact_location = "{tmp_path / "artifacts"}"
[logging]
runs_log = "{tmp_path / "runs.log"}"
[train]
families = ["logreg"]
trials_per_family = 2
cv_folds = 3
n_jobs = 1
{extra}
"""
    )
    return path


def test_data_command_describes_the_dataset(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--config", str(write_config(tmp_path)), "data", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["raw_rows"] == 4454
    assert summary["class_balance"] == {"good": 3200, "bad": 1254}


@pytest.mark.slow
def test_train_promote_models_rollback(tmp_path: Path) -> None:
    config = str(write_config(tmp_path))
    result = runner.invoke(app, ["--config", config, "train"])
    assert result.exit_code == 0, result.output
    assert "logreg" in result.stdout and "the challenger" in result.stdout
    result = runner.invoke(app, ["--config", config, "promote"])
    assert result.exit_code == 0
    assert "PROMOTED" in result.stdout
    result = runner.invoke(app, ["--config", config, "models", "--json"])
    versions = json.loads(result.stdout)
    assert set(versions[0]["aliases"]) == {"challenger", "champion"}
    result = runner.invoke(app, ["--config", config, "rollback"])
    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == "error: model 'credit-risk' has no 'previous' version to roll back to"
    )
    log = (tmp_path / "runs.log").read_text()
    assert "promotion PASSED" in log


@pytest.mark.parametrize(
    ("extra", "env", "code", "message"),
    [
        ("bogus = 1", {}, 2, "train.bogus = 1: unknown key"),
        ("", {"CREDITOPS_TRAIN__TRIALS_PER_FAMILY": "0"}, 2, "greater than or equal to 1"),
        ("", {"CREDITOPS_DATA__SOURCE": "/no/such.csv"}, 1, "dataset file /no/such.csv not found"),
        (
            "",
            {"CREDITOPS_MLFLOW__TRACKING_URI": "sqlit:/x"},
            1,
            "tracking URI 'sqlit:/x' is malformed",
        ),
    ],
)
def test_bad_input_is_one_line_and_nonzero(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    extra: str,
    env: dict[str, str],
    code: int,
    message: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = runner.invoke(app, ["--config", str(write_config(tmp_path, extra)), "train"])
    assert result.exit_code == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message in lines[0]


def test_promote_without_a_challenger(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--config", str(write_config(tmp_path)), "promote"])
    assert result.exit_code == 1
    assert "no version with alias 'challenger'" in result.stderr


def test_console_script_is_installed(tmp_path: Path) -> None:
    exe = Path(sys.executable).parent / "creditops"
    out = subprocess.run(
        [str(exe), "--config", str(tmp_path / "absent.toml"), "models"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: config file {tmp_path / 'absent.toml'} not found"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["score", "in.csv", "-o", "out.csv", "--model-version", "abc"],
            "'--model-version': 'abc' is not a whole number",
        ),
        (
            ["score", "in.csv", "-o", "out.csv", "--model-version", "0"],
            "'--model-version': 0 is below the minimum 1",
        ),
        (["serve", "--port", "99999"], "'--port': 99999 is above the maximum 65535"),
        (["serve", "--workers", "1.5"], "'--workers': '1.5' is not a whole number"),
        (["promote", "--version", "-3"], "'--version': -3 is below the minimum 1"),
        (["simulate", "--seed", "-1"], "'--seed': -1 is below the minimum 0"),
        (["monitor", "--last", "0"], "'--last': 0 is below the minimum 1"),
        (["monitor", "--since", "yesterday"], "'--since': 'yesterday' is not a date or time"),
        (["monitor", "--until", "2025-02-30"], "'--until': '2025-02-30' is not a date or time"),
        (["mlflow-server", "--port", "0"], "'--port': 0 is below the minimum 1"),
        (["dashboard", "--port", "70000"], "'--port': 70000 is above the maximum 65535"),
    ],
)
def test_a_bad_number_option_names_the_option_the_value_and_the_rule(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["--config", str(write_config(tmp_path)), *args])
    assert result.exit_code == 2
    shown = " ".join(result.output.replace("│", " ").split())
    assert f"Invalid value for {message}" in shown
    # refused while parsing: no store, log or output was created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["creditops.toml"]
