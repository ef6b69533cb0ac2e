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
    from creditops.comparison.run import ComparisonReport
    from creditops.dashboard.page import DashboardSummary
    from creditops.data import Dataset
    from creditops.monitoring.by_month import MonthlyResult
    from creditops.monitoring.result import MonitorResult
    from creditops.registry import PromotionDecision
    from creditops.registry.shadow_gate import ShadowEvidence
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


def monitor_by_month(
    settings: Settings, *, since: datetime | None = None, until: datetime | None = None
) -> MonthlyResult:
    """Every application month of the log into the monitoring table (see ``monitoring.by_month``)."""
    from creditops.monitoring.by_month import run_monitor_by_month

    return run_monitor_by_month(
        settings.monitor,
        settings.mlflow,
        store_url=settings.serve.store_url,
        since=since,
        until=until,
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
        performance_months=settings.monitor.performance_months,
        as_of=settings.monitor.as_of,
    )


def dashboard(settings: Settings, *, output: Path | None = None) -> DashboardSummary:
    """Write the monitoring dashboard page (see ``dashboard.run``)."""
    from creditops.dashboard.run import run_dashboard

    return run_dashboard(settings.dashboard, store_url=settings.serve.store_url, output=output)


def dashboard_live(settings: Settings, *, host: str | None, port: int | None) -> None:
    """Serve the monitoring dashboard live (see ``dashboard.run``)."""
    from creditops.dashboard.run import serve_live

    serve_live(settings.dashboard, store_url=settings.serve.store_url, host=host, port=port)


def compare(settings: Settings, *, months: tuple[str, str] | None = None) -> ComparisonReport:
    """Champion against the shadowed challenger on their shared applicants (``comparison.run``)."""
    from creditops import registry
    from creditops.comparison.run import run_compare

    return run_compare(
        registry.connect(settings.mlflow),
        settings.mlflow.registered_model,
        store_url=settings.serve.store_url,
        reports_dir=settings.monitor.reports_dir,
        min_rows=settings.monitor.min_matured_rows,
        psi_bins=settings.monitor.psi_bins,
        months=months,
    )


def shadow_evidence(
    settings: Settings, challenger_version: int | None, required: int | None = None
) -> ShadowEvidence | None:
    """The challenger's shadow rows and the comparison's headline, for the gate.

    None when no shadow rows are required (``[promote] min_shadow_rows`` = 0 and
    no ``required``).
    """
    from creditops import registry
    from creditops.errors import CreditOpsError
    from creditops.registry.shadow_gate import ShadowEvidence
    from creditops.serving.shadow_log import read_shadow

    need = settings.promote.min_shadow_rows if required is None else required
    if need <= 0:
        return None
    client = registry.connect(settings.mlflow)
    name = settings.mlflow.registered_model
    version = (
        challenger_version or registry.resolve_alias(client, name, registry.CHALLENGER).version
    )
    rows = len(read_shadow(settings.serve.store_url, version))
    try:
        headline = compare(settings).comparison.headline if rows else "no shadow rows"
    except CreditOpsError as exc:  # the count decides; the comparison only informs
        headline = f"no comparison: {exc}"
    return ShadowEvidence(rows=rows, required=need, headline=headline)


def promote(
    settings: Settings, version: int | None = None, min_shadow_rows: int | None = None
) -> PromotionDecision:
    """The promotion gate on the challenger (``registry.promote``), shadow evidence included."""
    from creditops import registry

    return registry.promote(
        registry.connect(settings.mlflow),
        settings.mlflow,
        settings.promote,
        challenger_version=version,
        fairness_config=settings.fairness,
        shadow=shadow_evidence(settings, version, min_shadow_rows),
    )


def serve(
    settings: Settings,
    config_path: Path | None,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    """Run the scoring service (``serving.server``); it checks the log's database first."""
    from creditops.serving.server import serve as run_server

    run_server(
        settings.serve,
        settings.mlflow,
        config_path=config_path,
        host=host,
        port=port,
        workers=workers,
        protected=tuple(settings.fairness.protected),
    )
