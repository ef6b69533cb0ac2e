"""A short calendar (6 months x 50) through the real service and store, then ``monitor --by month``.

A real service (in this process, on a loopback port) over a real SQLite
inference log and a copy of a real trained registry (its champion has its
training data, the monitor's reference); the monitoring table is checked
against the log itself after two runs.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import httpx
import pandas as pd
import pytest

from creditops import schema, stages
from creditops.config import Settings, SimulateConfig
from creditops.data import Dataset, split_dataset
from creditops.monitoring.table import read_table
from creditops.serving.app import create_app
from creditops.serving.store import InferenceStore
from creditops.simulation import scenarios
from creditops.simulation.calendar import build_calendar
from creditops.simulation.sender import send_calendar
from creditops.training.run import TrainingReport
from serving_fixtures import SERVE_SECTION, InProcessServer, wait_until
from support import make_settings

pytestmark = pytest.mark.slow

MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]


def _copy(trained: Settings, root: Path) -> Settings:
    """The trained registry copied under ``root`` (artifacts shared, read-only)."""
    root.mkdir(parents=True, exist_ok=True)
    source = Path(trained.mlflow.tracking_uri.removeprefix("sqlite:///"))
    shutil.copy(source, root / "mlflow.db")
    return make_settings(
        root,
        mlflow={"artifact_location": trained.mlflow.artifact_location},
        serve={**SERVE_SECTION, "poll_seconds": 0},
        monitor={"min_matured_rows": 10, "min_rows": 20, "performance_months": 4},
    )


def test_a_short_calendar_fills_one_row_per_month_and_metric(
    trained_store: tuple[Settings, TrainingReport], credit_dataset: Dataset, tmp_path: Path
) -> None:
    settings = _copy(trained_store[0], tmp_path / "registry")
    split = split_dataset(credit_dataset, 0.2, 42)
    source = scenarios.ScenarioSource(unseen=split.test, tail=split.test.iloc[:0])
    config = SimulateConfig(
        months=6,
        applications_per_month=50,
        performance_months=4,
        batch_rows=10,
        concurrency=4,
        feedback_api_key=SERVE_SECTION["feedback_api_key"],
        ground_truth_path=tmp_path / "truth.csv",
    )
    calendar = build_calendar("none", source, config, seed=3)
    app = create_app(settings.serve, settings.mlflow)
    with InProcessServer(app) as server:
        wait_until(lambda: httpx.get(f"{server.url}/ready").status_code == 200)
        live = config.model_copy(update={"service_url": server.url})
        sent = asyncio.run(send_calendar(calendar, live, seed=3))
    assert sent.summary.scored == 300

    first = stages.monitor_by_month(settings)
    table = read_table(settings.serve.store_url)
    second = stages.monitor_by_month(settings)
    again = read_table(settings.serve.store_url)

    assert first.months == MONTHS == second.months
    assert len(again) == len(table) == first.rows_written == second.rows_written
    assert not again.duplicated(["month", "model_version", "metric"]).any()
    assert (again["computed_at"] > table["computed_at"].max()).all()  # every row rewritten
    metrics = again.groupby("month")["metric"].apply(set)
    expected = {"volume", "approval_rate", "matured_share", "matured_rows", "bad_rate"}
    expected |= {"roc_auc", "ks", "psi:score", "drift_share"}
    expected |= {f"psi:{name}" for name in schema.FEATURES}
    assert all(expected <= metrics[month] for month in MONTHS)

    store = InferenceStore(settings.serve.store_url)
    try:
        log = store.read_frame()
    finally:
        store.close()
    log["month"] = log["application_at"].dt.strftime("%Y-%m")
    granted = log["decision"] == "approve"
    assert log.loc[~granted, "outcome"].isna().all()  # no declined applicant got an outcome
    values = again.set_index(["month", "metric"])["value"]
    for month, rows in log.groupby("month"):
        approved = rows["decision"] == "approve"
        matured = approved & rows["outcome"].notna()
        assert values[(month, "volume")] == len(rows) == 50
        assert values[(month, "approval_rate")] == pytest.approx(approved.mean())
        assert values[(month, "matured_share")] == pytest.approx(matured.sum() / approved.sum())
    # months on book each month has reached by the log's last date, at most the window (4)
    assert pd.Timestamp(first.as_of) >= pd.Timestamp("2024-06-01", tz="UTC")
    vintage = again[again["kind"] == "vintage"]
    for index, month in enumerate(MONTHS):
        reached = min(4, first.as_of.month - 1 - index + 12 * (first.as_of.year - 2024))
        assert set(vintage.loc[vintage["month"] == month, "metric"]) == {
            f"vintage:mob{k}" for k in range(1, reached + 1)
        }
