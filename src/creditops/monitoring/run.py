"""Drift and quality monitoring of the served champion.

Reference = exactly the champion's training rows (fetched from its training
run and checked against the version's data hash). Current = a window of the
inference log (last N rows or a time range) or a CSV file with the contract's
columns (:mod:`creditops.monitoring.window`). Rows that break the contract are
set aside and counted by field and rule, a data-quality finding
(:mod:`creditops.monitoring.data_quality`); the figures use the valid rows:

* our own PSI of every feature and of the score, with the credit-risk bands
  (< ``psi_warn`` stable, < ``psi_alert`` watch, above: alert;
  :mod:`creditops.monitoring.psi`). The score's reference is the champion's
  scores on its *test* split: in-sample scores on the training rows are more
  extreme than any unseen traffic will ever be, so they would make healthy
  traffic look drifted;
* Evidently 0.7's data-drift report: per-column test and the share of
  drifted columns;
* on labelled rows: ROC AUC, KS and F1 of the bad class at the champion's
  threshold, against the champion's test figures; and Evidently's
  classification report.

Evidently stays inside :mod:`creditops.monitoring.reports`: the rest of
creditops sees plain :class:`MonitorResult` figures. Each run writes HTML +
JSON reports under ``[monitor] reports_dir`` with timestamped names and
``*-latest`` copies, and logs the figures and files as an MLflow run named
``monitor``.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from creditops import registry, schema
from creditops.config import MlflowConfig, MonitorConfig
from creditops.errors import CreditOpsError, MonitorError
from creditops.monitoring.data_quality import (
    DataQuality,
    record_data_quality,
    require_valid_rows,
    rule_metric,
)
from creditops.monitoring.psi import feature_psi, psi_band, psi_numeric, quality_figures
from creditops.monitoring.reports import (
    EvidentlyReports,
    drift_report,
    quality_report,
    rewrite_summary,
    write_reports,
)
from creditops.monitoring.result import (
    OUTCOME,
    SCORE,
    ModelContext,
    MonitorResult,
    records_run_status,
)
from creditops.monitoring.window import CurrentWindow, read_current_csv, read_log_window
from creditops.records import format_figure
from creditops.registry import ModelRef

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from creditops.tracking import TrackingClient

log = logging.getLogger(__name__)


# --- the computation, without I/O -----------------------------------------------------


def compute_monitor(
    reference: pd.DataFrame,
    reference_scores: np.ndarray | None,
    current: pd.DataFrame,
    model: ModelContext,
    config: MonitorConfig,
    *,
    drift_share: float = 0.5,
    window: str = "",
    with_evidently: bool = True,
    data_quality: DataQuality | None = None,
) -> tuple[MonitorResult, EvidentlyReports]:
    """All figures of one window, and the Evidently snapshots (no files, no MLflow).

    Args:
        reference: the champion's training rows (contract features).
        reference_scores: the champion's scores on unseen reference rows (its test split).
        current: the window's valid rows: contract features, ``probability``
            and ``outcome`` (``good``/``bad``/missing).
        model: the champion's name, version, hash, threshold and test figures.
        config: the ``[monitor]`` section (row minimums, PSI bins and bands, drift test).
        drift_share: the share of drifted columns Evidently's summary test uses.
        window: how the window was chosen (kept in the result).
        with_evidently: False skips the Evidently reports (our own figures only).
        data_quality: the rows of the window set aside for breaking the
            contract (``None``: every row of ``current`` is valid).

    Raises:
        MonitorError: the window has no rows, or rows break the contract and
            fewer than ``[monitor] min_rows`` valid rows are left.
    """
    started = time.perf_counter()
    quality = data_quality or DataQuality(rows=len(current))
    require_valid_rows(quality, config.min_rows, window)
    result = _new_result(reference, current, model, window)
    record_data_quality(result, quality)
    reports = EvidentlyReports()
    if len(current) < config.min_rows:
        result.messages.append(
            f"the window has {len(current)} rows, fewer than [monitor] min_rows {config.min_rows}: "
            "drift figures skipped (too few rows to tell drift from noise)"
        )
    else:
        _add_drift(
            result,
            reports,
            reference,
            reference_scores,
            current,
            config,
            drift_share=drift_share,
            with_evidently=with_evidently,
        )
    _add_quality(result, reports, current, model.threshold, config, with_evidently=with_evidently)
    result.seconds = time.perf_counter() - started
    return result, reports


def _new_result(
    reference: pd.DataFrame, current: pd.DataFrame, model: ModelContext, window: str
) -> MonitorResult:
    """A result stamped now, with the window's row counts and no figures yet."""
    return MonitorResult(
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        model_name=model.name,
        champion_version=model.version,
        data_hash=model.data_hash,
        threshold=model.threshold,
        window=window,
        rows=len(current),
        labelled_rows=int(current[OUTCOME].notna().sum()) if OUTCOME in current else 0,
        reference_rows=len(reference),
        training=dict(model.training),
    )


def _add_drift(
    result: MonitorResult,
    reports: EvidentlyReports,
    reference: pd.DataFrame,
    reference_scores: np.ndarray | None,
    current: pd.DataFrame,
    config: MonitorConfig,
    *,
    drift_share: float,
    with_evidently: bool,
) -> None:
    """PSI of every feature and of the score, their bands, and Evidently's drift test."""
    result.feature_psi = feature_psi(reference, current, config.psi_bins)
    if reference_scores is not None and SCORE in current and current[SCORE].notna().any():
        result.score_psi = psi_numeric(
            np.asarray(reference_scores),
            current[SCORE].to_numpy(dtype=np.float64),
            config.psi_bins,
        )
    named = dict(result.feature_psi)
    if result.score_psi is not None:
        named["score"] = result.score_psi
    result.psi_bands = {k: psi_band(v, config) for k, v in named.items()}
    if with_evidently:
        tick = time.perf_counter()
        reports.drift, result.drift_share, result.drifted_columns, result.drift_tests = (
            drift_report(reference, current, config, drift_share)
        )
        result.evidently_seconds += time.perf_counter() - tick


def _add_quality(
    result: MonitorResult,
    reports: EvidentlyReports,
    current: pd.DataFrame,
    threshold: float,
    config: MonitorConfig,
    *,
    with_evidently: bool,
) -> None:
    """The labelled rows' figures (and Evidently's report) into ``result``, or why not."""
    labelled = current.loc[current[OUTCOME].notna()] if OUTCOME in current else current.iloc[:0]
    if labelled.empty:
        result.messages.append("no labelled rows in the window: quality figures skipped")
    elif len(labelled) < config.min_labelled_rows:
        result.messages.append(
            f"the window has {len(labelled)} labelled rows, fewer than [monitor] min_labelled_rows "
            f"{config.min_labelled_rows}: quality figures skipped"
        )
    elif SCORE not in labelled or labelled[SCORE].isna().any():
        result.messages.append("labelled rows without a score: quality figures skipped")
    else:
        scores = labelled[SCORE].to_numpy(dtype=np.float64)
        result.quality = quality_figures(labelled[OUTCOME], scores, threshold)
        if labelled[OUTCOME].nunique() < 2:
            result.messages.append(
                "labelled rows hold one class only: ROC AUC and KS are undefined"
            )
        if with_evidently and labelled[OUTCOME].nunique() == 2:
            tick = time.perf_counter()
            reports.quality = quality_report(labelled, threshold)
            result.evidently_seconds += time.perf_counter() - tick


# --- MLflow -----------------------------------------------------------------------------------


def metrics_for_mlflow(result: MonitorResult) -> dict[str, float]:
    """The run's figures as flat MLflow metric names (undefined ones left out)."""
    metrics: dict[str, float] = {
        "rows": result.rows,
        "labelled_rows": result.labelled_rows,
        "invalid_rows": result.invalid_rows,
        "invalid_share": result.invalid_share,
    }
    for key, count in result.invalid_by_rule.items():
        metrics[rule_metric(key)] = count
    for name, value in result.feature_psi.items():
        metrics[f"psi_{name}"] = value
    if result.score_psi is not None:
        metrics["psi_score"] = result.score_psi
    if result.drift_share is not None:
        metrics["drift_share"] = result.drift_share
        metrics["drifted_columns"] = len(result.drifted_columns)
    if result.quality is not None:
        metrics.update({f"current_{k}": v for k, v in result.quality.items()})
    if result.auc_drop is not None:
        metrics["auc_drop"] = result.auc_drop
    metrics["seconds"] = result.seconds
    metrics["evidently_seconds"] = result.evidently_seconds
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def log_to_mlflow(client: TrackingClient, result: MonitorResult) -> str:
    """Log ``result`` as an MLflow run named ``monitor``; returns its id."""
    tags = {
        "creditops.stage": "monitor",
        "champion_version": str(result.champion_version),
        "data_hash": result.data_hash,
        "window": result.window[:250],
    }
    with client.run("monitor", tags=tags) as run_id:
        client.log_values(run_id, metrics=metrics_for_mlflow(result))
        for path in result.reports.values():
            client.log_artifact(run_id, str(path), artifact_path="reports")
        if result.messages:
            client.log_text(run_id, "\n".join(result.messages), "messages.txt")
        return run_id


# --- the stage -------------------------------------------------------------------------------


def champion_context(client: TrackingClient, model_name: str) -> tuple[ModelRef, ModelContext]:
    """The champion's registry reference and what the monitor needs of it.

    Raises:
        NoChampionError: no version of ``model_name`` holds ``champion``.
    """
    ref = registry.resolve_alias(client, model_name, registry.CHAMPION)
    return ref, ModelContext(ref.name, ref.version, ref.data_hash, ref.threshold, dict(ref.metrics))


@records_run_status
def run_monitor(
    config: MonitorConfig,
    mlflow_config: MlflowConfig,
    *,
    store_url: str,
    drift_share: float,
    last_n: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    current_csv: Path | None = None,
    log_run: bool = True,
) -> MonitorResult:
    """Monitor a window of traffic against the champion's training data.

    The window is ``current_csv`` when given, else the inference log's rows in
    [``since``, ``until``) or its newest ``last_n`` (default ``[monitor] window_rows``);
    its rows that break the contract are counted and left out. Reports go under
    ``[monitor] reports_dir``; figures and reports are logged to MLflow.

    Args:
        config: the ``[monitor]`` section.
        mlflow_config: the store and the registered model to monitor.
        store_url: the inference log (``[serve] store_url``).
        drift_share: Evidently's summary test's drifted share (``[check] min_drift_share``).
        log_run: False skips the MLflow run (the reports are still written).

    Raises:
        NoChampionError: no champion to monitor.
        RegistryError: the reference data is gone or its hash does not match.
        ContractError: the current CSV lacks a feature column or has an unknown one.
        MonitorError: the window is empty or too few of its rows are valid, or a report fails.
    """
    client = registry.connect(mlflow_config)
    ref, model = champion_context(client, mlflow_config.registered_model)
    train, test = registry.load_training_frames(client, ref)
    pipeline = registry.load_pipeline(client, ref)
    current = (
        _scored_file(Path(current_csv), pipeline, original_codes=config.original_codes)
        if current_csv is not None
        else read_log_window(
            config, store_url, ref.version, last_n=last_n, since=since, until=until
        )
    )
    result, reports = compute_monitor(
        train,
        _scores(pipeline, test),
        current.rows,
        model,
        config,
        drift_share=drift_share,
        window=current.description,
        data_quality=current.data_quality,
    )
    result.current_file = str(current_csv) if current_csv is not None else ""
    write_reports(result, reports, config.reports_dir)
    if log_run:
        _log_run(client, result, config.reports_dir)
    _log_result(result)
    return result


def _scored_file(path: Path, pipeline: Pipeline, *, original_codes: bool) -> CurrentWindow:
    """The CSV's window, its valid rows scored by the champion unless it has scores."""
    current = read_current_csv(path, original_codes=original_codes)
    if SCORE not in current.rows and not current.rows.empty:
        current.rows[SCORE] = _scores(pipeline, current.rows)
    return current


def _scores(pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The champion's probability of bad for each row of ``frame``."""
    proba: np.ndarray = pipeline.predict_proba(schema.coerce_features(frame))[:, 1]
    return proba


def _log_run(client: TrackingClient, result: MonitorResult, reports_dir: Path) -> None:
    """Log the MLflow run, then write its id into the summary on disk too."""
    try:
        result.run_id = log_to_mlflow(client, result)
    except CreditOpsError:
        raise
    except Exception as exc:  # MLflow raises many types
        raise MonitorError(f"cannot log the monitoring run to MLflow: {exc}") from exc
    rewrite_summary(result, reports_dir)


def _log_result(result: MonitorResult) -> None:
    """The run's messages as warnings, and its figures in one line."""
    for message in result.messages:
        log.warning("monitor: %s", message)
    worst = result.max_psi
    log.info(
        "monitor v%s on %s: %d rows (%d labelled, %d invalid left out); drift share %s; "
        "max PSI %s; ROC AUC %s vs test %s; reports %s",
        result.champion_version,
        result.window,
        result.rows,
        result.labelled_rows,
        result.invalid_rows,
        format_figure(result.drift_share),
        f"{worst[0]} {worst[1]:.3f}" if worst else "n/a",
        format_figure(result.quality["roc_auc"] if result.quality else None),
        format_figure(result.training.get("test_roc_auc")),
        result.reports.get("summary", ""),
    )
