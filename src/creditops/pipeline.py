"""The whole loop in one command: train -> promote -> serve -> simulate -> monitor -> check -> retrain.

``run_pipeline`` runs every stage in turn, with the scoring service as a real
child process on loopback (the same ``creditops serve`` a user runs), and
checks at the end that the service serves the version it should: the new
champion when retraining promoted one, the old one otherwise. The server is
stopped with SIGTERM and the inference log is checked to hold every scored row.

It holds the whole ``Settings`` and calls each stage through
:mod:`creditops.stages`, which hands the stage its sections.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from creditops import registry, schema, stages
from creditops.config import DataConfig, ServeConfig, Settings
from creditops.data import Dataset, load_dataset, prepare_dataset
from creditops.secrets import redact_url
from creditops.service_process import ServiceProcess
from creditops.serving.store import InferenceStore

if TYPE_CHECKING:
    from creditops.monitoring.by_month import MonthlyResult
    from creditops.monitoring.result import MonitorResult
    from creditops.retraining.policy import TriggerDecision
    from creditops.tracking import TrackingClient

log = logging.getLogger(__name__)


@dataclass
class PipelineSummary:
    """What each stage did, for the closing table."""

    scenario: str
    champion_before: int | None = None
    champion_after: int | None = None
    served_before: int | None = None
    served_after: int | None = None
    expected_after: int | None = None
    swap_ok: bool = False
    rows_sent: int = 0
    rows_logged: int = 0
    drift_verdict: str = ""
    months: str = ""
    trigger: str = ""
    retrain: str = ""
    reports: dict[str, str] = field(default_factory=dict)
    decision_record: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    server_log: str = ""
    mlflow_ui: str = ""

    @property
    def ok(self) -> bool:
        return self.swap_ok and self.rows_logged == self.rows_sent


def run_pipeline(
    settings: Settings,
    *,
    config_path: Path | None,
    scenario: str,
    samples: int | None = None,
    retrain: bool = True,
    ready_timeout: float = 120.0,
    poll_seconds: float = 2.0,
) -> PipelineSummary:
    """Run the whole loop once and report on it.

    Raises:
        CreditOpsError: a stage failed; the service is stopped first.
    """
    summary = PipelineSummary(scenario=scenario)
    summary.mlflow_ui = f"mlflow ui --backend-store-uri {redact_url(settings.mlflow.tracking_uri)}"
    lap = StageClock(summary.stage_seconds)
    report = stages.train(settings, dataset=_training_data(settings.data, scenario))
    lap("train")
    client = registry.connect(settings.mlflow)
    summary.champion_before = _promote(client, settings, report.run_id)
    lap("promote")
    serve_log = Path(settings.logging.runs_log).with_name("serve.log")
    with _live_service(config_path, settings.serve, serve_log, poll_seconds, summary) as service:
        summary.served_before = service.start(ready_timeout)
        lap("serve")
        live = _pointed_at(settings, service.process.url, service.process.feedback_key)
        simulation = stages.simulate(live, scenario, samples=samples)
        summary.rows_sent = simulation.scored
        lap("simulate")
        service.wait_for_rows(simulation.scored)
        result = stages.monitor(live, last_n=simulation.scored)
        _record_monitoring(summary, result)
        _record_months(summary, stages.monitor_by_month(live))
        lap("monitor")
        decision = stages.check(live, retrain, monitor_result=result)
        _record_check(summary, decision)
        summary.reports["dashboard"] = str(stages.dashboard(live).path)
        lap("check+retrain")
        _confirm_swap(service, client, settings.mlflow.registered_model, summary)
        lap("confirm")
    lap("stop")
    return summary


class StageClock:
    """Records how long each stage took, in seconds, as the stages finish."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self._seconds = seconds
        self._last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self._seconds[stage] = now - self._last
        self._last = now


# --- the stages' glue -------------------------------------------------------------


def _training_data(data: DataConfig, scenario: str) -> Dataset:
    """The champion's data: the file's first half for ``ordered-tail``, else the whole set."""
    dataset = load_dataset(data)
    if scenario != "ordered-tail":
        return dataset
    from creditops.simulation.scenarios import ordered_halves

    head, _ = ordered_halves(dataset.frame)
    log.info(
        "ordered-tail: the champion learns the file's first %d rows; traffic is the rest", len(head)
    )
    return prepare_dataset(head, f"{dataset.source} (first half)")


def _promote(client: TrackingClient, settings: Settings, trained_in: str) -> int:
    """Run the gate on the fresh challenger; the champion's version afterwards."""
    mlflow = settings.mlflow
    registry.promote(client, mlflow, settings.promote, fairness_config=settings.fairness)
    champion = registry.resolve_alias(client, mlflow.registered_model)
    log.info("pipeline: champion v%d (trained in run %s)", champion.version, trained_in)
    return champion.version


def _pointed_at(settings: Settings, service_url: str, feedback_key: str) -> Settings:
    """``settings`` with the simulated traffic (and its outcomes, with the key) sent to the service."""
    simulate = settings.simulate.model_copy(
        update={"service_url": service_url, "feedback_api_key": SecretStr(feedback_key)}
    )
    return settings.model_copy(update={"simulate": simulate})


def _record_monitoring(summary: PipelineSummary, result: MonitorResult) -> None:
    summary.reports = dict(result.reports)
    summary.drift_verdict = _drift_verdict(result)


def _record_months(summary: PipelineSummary, monthly: MonthlyResult) -> None:
    """The application months the monitoring table now holds figures for."""
    span = f"{monthly.months[0]} to {monthly.months[-1]}" if monthly.months else "none"
    summary.months = (
        f"{len(monthly.months)} application months ({span}), "
        f"{monthly.rows_written} rows in the monitoring table"
    )


def _drift_verdict(result: MonitorResult) -> str:
    parts = []
    if result.drift_share is not None:
        parts.append(
            f"{len(result.drifted_columns)} of {len(schema.FEATURES)} features drifted "
            f"({result.drift_share:.0%})"
        )
    top = result.max_psi
    if top is not None:
        parts.append(f"largest PSI {top[1]:.3f} ({top[0]})")
    if result.quality:
        parts.append(
            f"labelled ROC AUC {result.quality.get('roc_auc', float('nan')):.3f}, "
            f"F1 bad {result.quality.get('f1_bad', float('nan')):.3f}"
        )
    return "; ".join(parts) or "; ".join(result.messages)


def _record_check(summary: PipelineSummary, decision: TriggerDecision) -> None:
    """The trigger's reasons, the retraining outcome, and the version to expect after it."""
    summary.trigger = "; ".join(decision.reasons) or "no rule fired"
    summary.decision_record = decision.record_path
    retrained = decision.retrain
    if retrained is not None:
        verdict = (
            "PROMOTED"
            if retrained.promoted
            else f"REFUSED by the gate (rule {retrained.gate_rule})"
        )
        summary.retrain = f"v{retrained.challenger_version} {verdict}: {retrained.reason}"
    else:
        summary.retrain = f"not retrained ({decision.action})"
    promoted = retrained is not None and retrained.promoted
    summary.expected_after = (
        retrained.challenger_version
        if retrained is not None and promoted
        else summary.champion_before
    )


def _confirm_swap(
    service: LiveService, client: TrackingClient, model_name: str, summary: PipelineSummary
) -> None:
    """Check that the service serves the registry's champion, the one the loop expects."""
    summary.champion_after = registry.resolve_alias(client, model_name).version
    # the service polls the alias every poll_seconds; wait for it, then
    # ask for a reload in case polling is switched off
    process = service.process
    deadline = time.monotonic() + 3 * service.poll_seconds
    while process.served_version() != summary.champion_after and time.monotonic() < deadline:
        time.sleep(0.25)
    if process.served_version() != summary.champion_after:
        process.reload()
    summary.served_after = process.served_version()
    summary.swap_ok = summary.served_after == summary.champion_after == summary.expected_after


# --- the scoring service of the loop -----------------------------------------------


@dataclass
class LiveService:
    """The child service and its inference log, whose rows are counted from the start."""

    process: ServiceProcess
    store: InferenceStore
    rows_before: int
    poll_seconds: float

    def start(self, ready_timeout: float) -> int:
        """Wait until the service is ready; the version it serves."""
        self.process.wait_ready(ready_timeout)
        return self.process.served_version()

    def rows_logged(self) -> int:
        return self.store.count() - self.rows_before

    def wait_for_rows(self, rows: int, timeout: float = 30) -> None:
        """Wait (at most ``timeout`` seconds) until ``rows`` new rows are in the log."""
        # the service writes its log off the request path
        deadline = time.monotonic() + timeout
        while self.rows_logged() < rows and time.monotonic() < deadline:
            time.sleep(0.2)


@contextmanager
def _live_service(
    config_path: Path | None,
    serve: ServeConfig,
    log_path: Path,
    poll_seconds: float,
    summary: PipelineSummary,
) -> Iterator[LiveService]:
    """``creditops serve`` as a child for the ``with`` block; stopped (SIGTERM) however it ends.

    On a clean exit the summary gets the rows the service logged meanwhile.
    """
    store = InferenceStore(serve.store_url)
    store.create()
    rows_before = store.count()
    process = ServiceProcess(config_path, serve, log_path, poll_seconds)
    summary.server_log = str(process.log_path)
    service = LiveService(process, store, rows_before, poll_seconds)
    try:
        yield service
    finally:
        code = process.stop()
        # uvicorn drains, then re-raises the SIGTERM it caught: -15 is a clean stop
        how = "by SIGTERM, log drained" if code == -signal.SIGTERM else f"with exit code {code}"
        log.info("scoring service stopped %s", how)
    summary.rows_logged = service.rows_logged()
    store.close()
