"""The whole loop on a real server and a real MLflow store, tiny sizes.

train -> promote -> serve -> simulate concept traffic -> monitor -> check --retrain.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pytest

from creditops import registry
from creditops.config import PromoteConfig, Settings
from creditops.errors import MonitorError, SimulationError
from creditops.monitoring.run import run_monitor
from creditops.retraining.policy import RetrainOutcome, TriggerDecision
from creditops.retraining.run import run_check
from creditops.serving.store import InferenceStore
from creditops.simulation.run import run_simulation
from creditops.simulation.scenarios import generate_traffic
from creditops.simulation.sender import send_traffic
from creditops.training.run import run_training
from creditops.training.sections import TrainingSections
from support import TINY_TRAIN, make_settings

if TYPE_CHECKING:
    from creditops.monitoring.result import MonitorResult
    from creditops.tracking import TrackingClient


def _check(settings: Settings) -> TriggerDecision:
    """``creditops check --retrain``: ``run_check`` with its sections and the others' values."""
    return run_check(
        settings.check,
        settings.promote,
        TrainingSections.from_settings(settings),
        retrain=True,
        store_url=settings.serve.store_url,
        window_rows=settings.monitor.window_rows,
        reports_dir=settings.monitor.reports_dir,
        performance_months=settings.monitor.performance_months,
        as_of=settings.monitor.as_of,
    )


def _logged(store_url: str) -> pd.DataFrame:
    """The inference log as the store holds it."""
    store = InferenceStore(store_url)
    try:
        frame = store.read_frame()
    finally:
        store.close()
    for column in ("application_at", "observed_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _judge_again(
    client: TrackingClient,
    live: Settings,
    promote: PromoteConfig,
    result: MonitorResult,
    when: datetime,
) -> TriggerDecision:
    """``check --retrain`` at ``when`` on ``result``'s figures, computed then for today's champion."""
    champion = registry.resolve_alias(client, live.mlflow.registered_model)
    figures = dataclasses.replace(
        result, champion_version=champion.version, created_at=when.isoformat()
    )
    return run_check(
        live.check,
        promote,
        TrainingSections.from_settings(live),
        retrain=True,
        store_url=live.serve.store_url,
        window_rows=live.monitor.window_rows,
        reports_dir=live.monitor.reports_dir,
        monitor_result=figures,
        now=when,
    )


def _expect_champion(
    client: TrackingClient, name: str, retrained: RetrainOutcome, *, before: int
) -> None:
    """The champion moved to the challenger if and only if the gate promoted it."""
    after = registry.resolve_alias(client, name).version
    assert after == (retrained.challenger_version if retrained.promoted else before)


def _expect_held_back(
    client: TrackingClient,
    live: Settings,
    promote: PromoteConfig,
    result: MonitorResult,
    when: datetime,
) -> None:
    """The same firing figures at ``when``: the cooldown holds the retraining back."""
    name = live.mlflow.registered_model
    versions = len(registry.list_versions(client, name))
    champion = registry.resolve_alias(client, name).version
    again = _judge_again(client, live, promote, result, when)
    assert again.fired and again.action == "cooldown", again.log_line()
    assert 0 < again.cooldown_minutes_left <= 59
    assert again.retrain is None and again.retrain_error == ""
    assert len(registry.list_versions(client, name)) == versions
    assert registry.resolve_alias(client, name).version == champion


@pytest.mark.slow
def test_concept_traffic_fires_the_trigger_and_retrains(tmp_path: Path, start_server: Any) -> None:
    settings = make_settings(
        tmp_path,
        train=TINY_TRAIN,
        simulate={
            "samples": 400,
            "concurrency": 4,
            "batch_rows": 20,
            "concept_flip_share": 0.6,
            "feedback_api_key": "feedback-key",  # the service takes outcomes only with its key
        },
        serve={"feedback_api_key": "feedback-key"},
        monitor={"window_rows": 400, "min_rows": 100, "min_labelled_rows": 100},
        check={"cooldown_minutes": 60},
    )
    report = run_training(TrainingSections.from_settings(settings), show_progress=False)
    client = registry.connect(settings.mlflow)
    assert registry.promote(client, settings.mlflow, settings.promote).promoted
    champion = registry.resolve_alias(client, settings.mlflow.registered_model)

    with pytest.raises(MonitorError, match="no rows"):
        run_monitor(
            settings.monitor,
            settings.mlflow,
            store_url=settings.serve.store_url,
            drift_share=settings.check.min_drift_share,
            log_run=False,
        )

    server = start_server(settings)
    server.wait_ready()
    live = make_settings(
        tmp_path,
        train=TINY_TRAIN,
        simulate={**settings.simulate.model_dump(), "service_url": server.url},
        monitor=settings.monitor.model_dump(mode="json"),
    )
    summary = run_simulation(live.simulate, live.mlflow, live.data, "concept", show_progress=False)
    assert (summary.scored, summary.refused, summary.feedback_failed) == (400, 0, 0)
    assert summary.model_versions == {champion.version: 400}

    result = run_monitor(
        live.monitor,
        live.mlflow,
        store_url=live.serve.store_url,
        drift_share=live.check.min_drift_share,
    )
    # only granted loans get an outcome, and only once it is due on the calendar
    logged = _logged(live.serve.store_url)
    labelled = logged["outcome"].notna()
    assert (logged.loc[labelled, "decision"] == "approve").all()
    assert result.rows == 400 and result.labelled_rows == int(labelled.sum()) < 400
    assert result.quality is not None and result.auc_drop is not None
    assert Path(result.reports["drift_html"]).is_file()
    assert (settings.monitor.reports_dir / "monitor-latest.json").is_file()
    assert result.run_id

    decision = _check(live)
    assert decision.fired and decision.action == "retrain", decision.log_line()
    assert decision.retrain is not None
    assert decision.retrain.challenger_version > report.challenger_version
    # production rows: granted loans of vintages whose 12-month window closed by the
    # log's latest date, with an outcome; the holdout the newest 30 % of them
    now = pd.concat([logged["application_at"], logged["observed_at"].dropna()]).max()
    closed = logged["application_at"] + pd.DateOffset(months=12) <= now
    production = int((labelled & closed & (logged["decision"] == "approve")).sum())
    assert decision.retrain.production_rows == production > 0
    assert decision.retrain.holdout_rows == math.ceil(0.3 * production)
    assert decision.production["granted"] == production
    assert decision.production["declined"] == int(
        (closed & (logged["decision"] == "decline")).sum()
    )
    assert Path(decision.record_path).is_file()

    # The cooldown holds back the next check whether the gate promoted or not. This
    # retraining went one way; a second one, once the cooldown is over, goes the other
    # through the opposite gate. Each is followed by a check inside its cooldown.
    name = settings.mlflow.registered_model
    first = decision.retrain
    _expect_champion(client, name, first, before=champion.version)
    clock = datetime.now(UTC)
    _expect_held_back(client, live, live.promote, result, clock + timedelta(minutes=1))
    opposite = (
        PromoteConfig(min_auc=0.99, min_improvement=0.5)  # refuses
        if first.promoted
        else PromoteConfig(min_auc=0.01, min_improvement=0.0)  # any challenger not worse
    )
    later = clock + timedelta(minutes=61)
    before = registry.resolve_alias(client, name).version
    second = _judge_again(client, live, opposite, result, later)
    assert second.action == "retrain" and second.retrain is not None, second.log_line()
    assert {first.promoted, second.retrain.promoted} == {True, False}, second.log_line()
    _expect_champion(client, name, second.retrain, before=before)
    _expect_held_back(client, live, opposite, result, later + timedelta(minutes=1))
    server.terminate()


def test_simulating_against_no_server_is_one_clear_error(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, simulate={"service_url": "http://127.0.0.1:9"})
    traffic = generate_traffic("original", None, settings.simulate, 5, seed=0)
    import asyncio

    with pytest.raises(SimulationError, match="unreachable"):
        asyncio.run(send_traffic(traffic, settings.simulate, 0))
