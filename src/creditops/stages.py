"""The stages of the loop, each called with its sections of the whole config.

A stage receives the typed sections it reads, and a value from another stage's
section as a parameter (the monitor gets the inference log's URL from
``[serve]``, say). This module is the one map from ``Settings`` to those
parameters, for the commands (``creditops train``, ``simulate``, ``monitor``,
``check``) and for ``creditops pipeline``, which runs them in turn.

The stages are imported inside each function: the command line imports this
module before it knows which command runs.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from creditops.config import Settings

if TYPE_CHECKING:
    from creditops.data import Dataset
    from creditops.monitoring.result import MonitorResult
    from creditops.retraining.policy import TriggerDecision
    from creditops.simulation.sender import SimulationSummary
    from creditops.training.run import TrainingReport


def train(
    settings: Settings, *, dataset: Dataset | None = None, study: str | None = None
) -> TrainingReport:
    """Search, log and register every family of ``[train]`` (see ``training.run``)."""
    from creditops.training.run import run_training
    from creditops.training.sections import TrainingSections

    return run_training(TrainingSections.from_settings(settings), dataset=dataset, study=study)


def simulate(
    settings: Settings,
    scenario: str | None,
    *,
    samples: int | None = None,
    seed: int | None = None,
    show_progress: bool = True,
) -> SimulationSummary:
    """Send a scenario's traffic to ``[simulate] service_url`` (see ``simulation.run``)."""
    from creditops.simulation.run import run_simulation

    simulate = settings.simulate
    if not simulate.feedback_api_key.get_secret_value():  # one machine, one config
        simulate = simulate.model_copy(update={"feedback_api_key": settings.serve.feedback_api_key})
    return run_simulation(
        simulate,
        settings.mlflow,
        settings.data,
        scenario,
        samples=samples,
        seed=seed,
        show_progress=show_progress,
    )


def monitor(
    settings: Settings,
    *,
    last_n: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    current_csv: Path | None = None,
) -> MonitorResult:
    """Drift and quality of a window of the inference log, or of a CSV (see ``monitoring.run``)."""
    from creditops.monitoring.run import run_monitor

    return run_monitor(
        settings.monitor,
        settings.mlflow,
        store_url=settings.serve.store_url,
        drift_share=settings.check.min_drift_share,
        last_n=last_n,
        since=since,
        until=until,
        current_csv=current_csv,
    )


def check(
    settings: Settings, retrain: bool | None, *, monitor_result: MonitorResult | None = None
) -> TriggerDecision:
    """The retraining trigger on the latest monitoring figures (see ``retraining.run``)."""
    from creditops.retraining.run import run_check
    from creditops.training.sections import TrainingSections

    return run_check(
        settings.check,
        settings.promote,
        TrainingSections.from_settings(settings),
        retrain,
        store_url=settings.serve.store_url,
        window_rows=settings.monitor.window_rows,
        reports_dir=settings.monitor.reports_dir,
        monitor_result=monitor_result,
    )
