"""``monitor --by month`` end to end: a real champion, a real inference log, the monitoring table."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from creditops import schema, stages
from creditops.cli import render_monthly
from creditops.cli.app import app
from creditops.config import Settings
from creditops.data import Dataset, split_dataset
from creditops.monitoring.table import read_table
from creditops.serving.store import InferenceStore
from creditops.training.run import TrainingReport

MONTHS = ("2025-01", "2025-02", "2025-03", "2025-05")  # April: no traffic


def _settings(base: Settings, tmp_path: Path, **monitor: object) -> Settings:
    serve = base.serve.model_copy(update={"store_url": f"sqlite:///{tmp_path / 'log.db'}"})
    section = base.monitor.model_copy(
        update={"reports_dir": tmp_path / "reports", "min_matured_rows": 10, "min_rows": 20}
        | monitor
    )
    return base.model_copy(update={"serve": serve, "monitor": section})


def _fill_log(url: str, applicants: pd.DataFrame, per_month: int) -> pd.DataFrame:
    """``per_month`` applications a month, scored by v1, outcomes of granted loans posted later."""
    rng = np.random.default_rng(7)
    store = InferenceStore(url)
    store.create()
    written = []
    for index, month in enumerate(MONTHS):
        rows = applicants.iloc[index * per_month : (index + 1) * per_month]
        for _, applicant in rows.iterrows():
            applied = pd.Timestamp(f"{month}-03", tz=UTC) + pd.Timedelta(
                days=int(rng.integers(0, 25))
            )
            probability = float(rng.uniform(0, 1))
            row = {name: applicant[name] for name in schema.FEATURES} | {
                "request_id": uuid.uuid4().hex,
                "batch_id": uuid.uuid4().hex,
                "created_at": datetime.now(UTC),
                "application_at": applied.to_pydatetime(),
                "model_name": "credit-risk",
                "model_version": 1,
                "probability": probability,
                "decision": "approve" if probability < 0.6 else "decline",
                "threshold": 0.6,
                "latency_ms": 1.0,
                "explored": False,
            }
            written.append(row)
    store.write_rows(written)
    for row in written:
        if row["decision"] == "approve":
            observed = pd.Timestamp(row["application_at"]) + pd.Timedelta(
                days=int(rng.integers(10, 120))
            )
            outcome = "bad" if rng.uniform() < row["probability"] else "good"
            store.record_outcome(row["request_id"], outcome, observed_at=observed.to_pydatetime())
    store.close()
    return pd.DataFrame(written)


@pytest.fixture(scope="module")
def applicants(credit_dataset: Dataset) -> pd.DataFrame:
    test = split_dataset(credit_dataset, 0.2, 42).test
    return schema.coerce_features(test).reset_index(drop=True)


def test_two_runs_hold_one_row_per_month_and_metric(
    trained_store: tuple[Settings, TrainingReport],
    applicants: pd.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = _settings(trained_store[0], tmp_path, as_of=datetime(2025, 6, 30).date())
    written = _fill_log(settings.serve.store_url, applicants, per_month=50)
    first = stages.monitor_by_month(settings)
    table = read_table(settings.serve.store_url)
    second = stages.monitor_by_month(settings)
    again = read_table(settings.serve.store_url)

    assert first.months == list(MONTHS) == second.months
    assert first.messages == ["no traffic in 2025-04: no rows for those months"]
    assert len(again) == len(table) == first.rows_written == second.rows_written
    assert not again.duplicated(["month", "model_version", "metric"]).any()
    per_month = again.groupby("month")["metric"].apply(set)
    base = {"volume", "approval_rate", "matured_share", "matured_rows", "bad_rate", "roc_auc"}
    base |= {"ks", "psi:score", "drift_share"} | {f"psi:{name}" for name in schema.FEATURES}
    for month in MONTHS:
        assert base <= per_month[month]
    # months on book reached by 2025-06-30: January 5, ..., May 1
    assert {m for m in per_month["2025-01"] if m.startswith("vintage:")} == {
        f"vintage:mob{k}" for k in range(1, 6)
    }
    assert {m for m in per_month["2025-05"] if m.startswith("vintage:")} == {"vintage:mob1"}
    figures = again.set_index(["month", "metric"])["value"]
    log = pd.DataFrame(written)
    log["month"] = pd.to_datetime(log["application_at"], utc=True).dt.strftime("%Y-%m")
    approval = log.groupby("month")["decision"].apply(lambda d: float((d == "approve").mean()))
    for month in MONTHS:
        assert figures[(month, "volume")] == 50
        assert figures[(month, "approval_rate")] == pytest.approx(approval[month])
    assert Path(first.vintage_png).is_file()
    render_monthly.monthly(second, as_json=False)
    shown = capsys.readouterr().out
    Path(tmp_path / "shown.txt").write_text(shown)
    assert "2025-05" in shown and "note: no traffic in 2025-04" in shown
    render_monthly.monthly(second, as_json=True)
    assert len(json.loads(capsys.readouterr().out)["rows"]) == len(again)


def test_monitor_by_month_without_traffic_is_a_clear_message(tmp_path: Path) -> None:
    config = tmp_path / "creditops.toml"
    config.write_text(
        f'[serve]\nstore_url = "sqlite:///{tmp_path / "log.db"}"\n'
        f'[mlflow]\ntracking_uri = "sqlite:///{tmp_path / "mlflow.db"}"\n'
        f'[logging]\nruns_log = "{tmp_path / "runs.log"}"\n'
    )
    result = CliRunner().invoke(app, ["--config", str(config), "monitor", "--by", "month"])
    assert result.exit_code == 1, result.output
    assert "no application month to monitor; send traffic first" in result.output
    assert "Traceback" not in result.output


def test_monitor_by_month_refuses_a_window_option(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["monitor", "--by", "month", "--last", "10"])
    assert result.exit_code == 2
    assert "drop --last/--current" in result.output
