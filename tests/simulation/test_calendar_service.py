"""A short calendar (6 months x 50) through the real service and its inference log.

A real service (in this process, on a loopback port, explore share 0.3) over a
real SQLite inference log and a real MLflow registry; the expected outcomes are
worked out here from the ground truth, independently of the simulator's own.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from creditops.config import SimulateConfig
from creditops.data import Dataset, split_dataset
from creditops.serving.app import create_app
from creditops.serving.store import InferenceStore
from creditops.simulation import scenarios
from creditops.simulation.calendar import build_calendar
from creditops.simulation.run import ground_truth_frame, write_ground_truth
from creditops.simulation.sender import send_calendar
from serving_fixtures import (
    SERVE_SECTION,
    InProcessServer,
    ServingRegistry,
    copy_registry,
    wait_until,
)

pytestmark = pytest.mark.slow


def test_a_short_calendar_posts_only_granted_matured_outcomes(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    copy = copy_registry(
        serving_registry,
        tmp_path,
        poll_seconds=0,
        store_url=f"sqlite:///{tmp_path}/inferences.db",
        explore_share=0.3,
    )
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
    calendar = build_calendar("none", source, config, seed=5)
    app = create_app(copy.settings.serve, copy.settings.mlflow)
    with InProcessServer(app) as server:
        wait_until(lambda: httpx.get(f"{server.url}/ready").status_code == 200)
        live = config.model_copy(update={"service_url": server.url})
        sent = asyncio.run(send_calendar(calendar, live, seed=5))
    summary = sent.summary
    assert (summary.scored, summary.refused, summary.feedback_failed) == (300, 0, 0)
    assert summary.explored > 0 and summary.declined > 0

    store = InferenceStore(copy.settings.serve.store_url)
    try:
        logged = store.read_frame().set_index("request_id")
    finally:
        store.close()
    truth = ground_truth_frame(sent).set_index("request_id")
    assert len(logged) == 300 and set(logged.index) == set(truth.index)
    logged = logged.loc[truth.index]
    # every stored row has the application date it was sent with
    sent_at = pd.to_datetime(truth["application_at"], utc=True)
    assert (abs(logged["application_at"] - sent_at) < pd.Timedelta(milliseconds=1)).all()
    # no declined applicant got an outcome; explored ones were granted
    declined = logged["decision"] == "decline"
    assert logged.loc[declined, "outcome"].isna().all()
    assert (logged.loc[logged["explored"], "decision"] == "approve").all()
    # the outcomes a lender has by the calendar's end (2024-07-01): granted, and matured
    end = pd.Timestamp("2024-07-01", tz="UTC")
    months = np.where(truth["outcome"] == "bad", truth["default_month"], 4)
    matured = [
        at + pd.DateOffset(months=int(k)) <= end for at, k in zip(sent_at, months, strict=True)
    ]
    expected = (logged["decision"] == "approve").to_numpy() & np.array(matured)
    assert (logged["outcome"].notna().to_numpy() == expected).all()
    labelled = logged[logged["outcome"].notna()]
    assert (labelled["outcome"] == truth.loc[labelled.index, "outcome"]).all()
    assert (labelled["observed_at"] >= labelled["application_at"]).all()
    assert (labelled["observed_at"] <= end).all()
    assert summary.outcomes_posted == len(labelled)
    assert summary.outcomes_pending == int((logged["decision"] == "approve").sum()) - len(labelled)

    path = write_ground_truth(ground_truth_frame(sent), config)
    written = pd.read_csv(path)
    assert len(written) == 300 and {"outcome", "default_month", "decision"} <= set(written.columns)
