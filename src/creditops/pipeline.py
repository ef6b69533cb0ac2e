"""The whole loop in one command: train -> promote -> serve -> simulate -> monitor -> check -> retrain.

``run_pipeline`` runs every stage in turn, with the scoring service as a real
child process on loopback (the same ``creditops serve`` a user runs), and
checks at the end that the service serves the version it should: the new
champion when retraining promoted one, the old one otherwise. The server is
stopped with SIGTERM and the inference log is checked to hold every scored row.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from creditops import registry
from creditops.config import Settings
from creditops.data import Dataset, load_dataset, prepare_dataset
from creditops.errors import CreditOpsError

log = logging.getLogger(__name__)


class PipelineError(CreditOpsError):
    """A stage of the pipeline failed in a way no other error covers (the server died)."""


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


def free_port(host: str) -> int:
    """A TCP port nothing listens on at ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class ServiceProcess:
    """``creditops serve`` as a child process, with its log in a file."""

    def __init__(
        self, config_path: Path | None, settings: Settings, log_path: Path, poll_seconds: float
    ) -> None:
        host = settings.serve.host
        port = settings.serve.port
        if port == 0 or not port_is_free(host, port):
            port = free_port(host)
        self.url = f"http://{host}:{port}"
        self.api_key = settings.serve.admin_api_key or secrets.token_hex(16)
        self.log_path = log_path
        env = dict(os.environ)
        env.update(
            {
                "CREDITOPS_SERVE__PORT": str(port),
                "CREDITOPS_SERVE__ADMIN_API_KEY": self.api_key,
                "CREDITOPS_SERVE__POLL_SECONDS": str(poll_seconds),
                "CREDITOPS_SERVE__WORKERS": "1",
            }
        )
        command = [sys.executable, "-m", "creditops"]
        if config_path is not None:
            command += ["--config", str(config_path)]
        command.append("serve")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        log.info(
            "scoring service starting at %s (pid %d, log %s)", self.url, self.process.pid, log_path
        )

    def wait_ready(self, timeout: float) -> None:
        """Block until ``/ready`` answers 200, or fail with the server's last words."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PipelineError(
                    f"the scoring service exited with code {self.process.returncode}: {self.tail()}"
                )
            try:
                response = httpx.get(f"{self.url}/ready", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text[:200]
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.25)
        raise PipelineError(
            f"the scoring service at {self.url} was not ready within {timeout:.0f} s: {last}"
        )

    def served_version(self) -> int:
        response = httpx.get(f"{self.url}/model", timeout=5)
        response.raise_for_status()
        return int(response.json()["version"])

    def reload(self) -> None:
        response = httpx.post(
            f"{self.url}/admin/reload", headers={"X-API-Key": self.api_key}, timeout=60
        )
        response.raise_for_status()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the drain; SIGKILL only if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("scoring service did not stop within %.0f s: killed", timeout)
                self.process.kill()
                self.process.wait()
        self._log.close()
        return int(self.process.returncode)

    def tail(self, lines: int = 5) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])


def _training_data(settings: Settings, scenario: str) -> Dataset:
    """The champion's data: the file's first half for ``ordered-tail``, else the whole set."""
    dataset = load_dataset(settings.data)
    if scenario != "ordered-tail":
        return dataset
    from creditops.simulation.run import ordered_halves

    head, _ = ordered_halves(dataset.frame)
    log.info(
        "ordered-tail: the champion learns the file's first %d rows; traffic is the rest", len(head)
    )
    return prepare_dataset(head, f"{dataset.source} (first half)")


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
    from creditops.monitoring import run as monitor
    from creditops.retraining import run as retraining
    from creditops.serving.store import InferenceStore
    from creditops.simulation import run as simulate
    from creditops.training.run import run_training

    summary = PipelineSummary(scenario=scenario)
    summary.mlflow_ui = f"mlflow ui --backend-store-uri {settings.mlflow.tracking_uri}"
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        summary.stage_seconds[name] = now - clock
        clock = now

    report = run_training(settings, dataset=_training_data(settings, scenario))
    lap("train")
    client = registry.connect(settings.mlflow)
    registry.promote(client, settings.mlflow, settings.promote)
    champion = registry.resolve_alias(client, settings.mlflow.registered_model)
    summary.champion_before = champion.version
    lap("promote")
    log.info("pipeline: champion v%d (trained in run %s)", champion.version, report.run_id)

    store = InferenceStore(settings.serve.store_url)
    store.create()
    rows_before = store.count()
    server = ServiceProcess(
        config_path, settings, Path(settings.logging.runs_log).with_name("serve.log"), poll_seconds
    )
    summary.server_log = str(server.log_path)
    try:
        server.wait_ready(ready_timeout)
        summary.served_before = server.served_version()
        lap("serve")
        live = settings.model_copy(
            update={"simulate": settings.simulate.model_copy(update={"service_url": server.url})}
        )
        simulation = simulate.run_simulation(live, scenario, samples=samples)
        summary.rows_sent = simulation.scored
        lap("simulate")
        # the service writes its log off the request path: wait for the rows
        deadline = time.monotonic() + 30
        while store.count() - rows_before < simulation.scored and time.monotonic() < deadline:
            time.sleep(0.2)
        result = monitor.run_monitor(live, last_n=simulation.scored)
        summary.reports = dict(result.reports)
        summary.drift_verdict = _drift_verdict(result)
        lap("monitor")
        decision = retraining.run_check(live, retrain, monitor_result=result)
        summary.trigger = "; ".join(decision.reasons) or "no rule fired"
        summary.decision_record = decision.record_path
        if decision.retrain is not None:
            r = decision.retrain
            summary.retrain = (
                f"v{r.challenger_version} {'PROMOTED' if r.promoted else 'kept out'}: {r.reason}"
            )
        else:
            summary.retrain = f"not retrained ({decision.action})"
        lap("check+retrain")
        promoted = decision.retrain is not None and decision.retrain.promoted
        summary.expected_after = (
            decision.retrain.challenger_version
            if promoted and decision.retrain
            else champion.version
        )
        summary.champion_after = registry.resolve_alias(
            client, settings.mlflow.registered_model
        ).version
        # the service polls the alias every poll_seconds; wait for it, then
        # ask for a reload in case polling is switched off
        deadline = time.monotonic() + 3 * poll_seconds
        while server.served_version() != summary.champion_after and time.monotonic() < deadline:
            time.sleep(0.25)
        if server.served_version() != summary.champion_after:
            server.reload()
        summary.served_after = server.served_version()
        summary.swap_ok = summary.served_after == summary.champion_after == summary.expected_after
        lap("confirm")
    finally:
        code = server.stop()
        # uvicorn drains, then re-raises the SIGTERM it caught: -15 is a clean stop
        how = "by SIGTERM, log drained" if code == -signal.SIGTERM else f"with exit code {code}"
        log.info("scoring service stopped %s", how)
    summary.rows_logged = store.count() - rows_before
    store.close()
    lap("stop")
    return summary


def _drift_verdict(result: Any) -> str:
    parts = []
    if result.drift_share is not None:
        parts.append(
            f"{len(result.drifted_columns)} of 13 features drifted ({result.drift_share:.0%})"
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
