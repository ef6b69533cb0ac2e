"""Drift and quality monitoring of the served champion.

Reference = exactly the champion's training rows (fetched from its training
run and checked against the version's data hash). Current = a window of the
inference log (last N rows or a time range) or a CSV file that satisfies the
contract. Figures:

* our own PSI of every feature and of the score, with the credit-risk bands
  (< ``psi_warn`` stable, < ``psi_alert`` watch, above: alert). The score's
  reference is the champion's scores on its *test* split: in-sample scores on
  the training rows are more extreme than any unseen traffic will ever be,
  so they would make healthy traffic look drifted;
* Evidently 0.7's data-drift report: per-column test and the share of
  drifted columns;
* on labelled rows: ROC AUC, KS and F1 of the bad class at the champion's
  threshold, against the champion's test figures; and Evidently's
  classification report.

Evidently stays inside this module: the rest of creditops sees plain
:class:`MonitorResult` figures. Each run writes HTML + JSON reports under
``[monitor] reports_dir`` with timestamped names and ``*-latest`` copies, and
logs the figures and files as an MLflow run named ``monitor``.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from creditops import evaluate, schema
from creditops.config import MonitorConfig
from creditops.errors import ContractError, CreditOpsError, MonitorError
from creditops.records import format_figure, json_safe

if TYPE_CHECKING:
    from creditops.tracking import TrackingClient

log = logging.getLogger(__name__)

SCORE = "probability"
OUTCOME = "outcome"
# columns a current CSV may carry besides the contract's features
OPTIONAL_COLUMNS = (
    SCORE,
    OUTCOME,
    schema.TARGET,
    "request_id",
    "created_at",
    "model_version",
    "decision",
    "threshold",
)
SUMMARY_LATEST = "monitor-latest.json"
_EPSILON = 1e-4


# --- PSI, pure ----------------------------------------------------------------------


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """Population stability index of a numeric column.

    Bins are the reference's quantiles (merged where values repeat, so
    spikes such as Time = 60 stay whole); missing values get a bin of their own.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref_known = ref[~np.isnan(ref)]
    if ref_known.size == 0:
        edges = np.array([], dtype=np.float64)
    else:
        edges = np.unique(np.quantile(ref_known, np.linspace(0, 1, bins + 1)[1:-1]))

    def shares(values: np.ndarray) -> np.ndarray:
        missing = np.isnan(values)
        index = np.searchsorted(edges, values[~missing], side="left")
        counts = np.bincount(index, minlength=edges.size + 1).astype(np.float64)
        return np.append(counts, missing.sum()) / max(values.size, 1)

    return _psi(shares(ref), shares(cur))


def psi_categorical(reference: pd.Series, current: pd.Series) -> float:
    """Population stability index of a categorical column (missing is a level)."""
    ref = reference.astype("object").where(reference.notna(), "<missing>").astype(str)
    cur = current.astype("object").where(current.notna(), "<missing>").astype(str)
    levels = sorted(set(ref.unique()) | set(cur.unique()))
    ref_shares = ref.value_counts(normalize=True).reindex(levels, fill_value=0.0).to_numpy()
    cur_shares = cur.value_counts(normalize=True).reindex(levels, fill_value=0.0).to_numpy()
    return _psi(ref_shares, cur_shares)


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    r = np.maximum(ref, _EPSILON)
    c = np.maximum(cur, _EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def feature_psi(reference: pd.DataFrame, current: pd.DataFrame, bins: int) -> dict[str, float]:
    """PSI of every contract feature."""
    out = {}
    for name in schema.FEATURES:
        if name in schema.CATEGORICAL:
            out[name] = psi_categorical(reference[name], current[name])
        else:
            out[name] = psi_numeric(reference[name].to_numpy(), current[name].to_numpy(), bins)
    return out


def psi_band(value: float | None, config: MonitorConfig) -> str:
    """``stable`` below ``psi_warn``, ``watch`` below ``psi_alert``, else ``alert``."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value < config.psi_warn:
        return "stable"
    return "watch" if value < config.psi_alert else "alert"


# --- quality, pure -------------------------------------------------------------------


def quality_figures(outcomes: pd.Series, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC AUC, KS, F1 of bad, accuracy and bad rate of labelled rows."""
    y = (outcomes.to_numpy() == schema.POSITIVE_LABEL).astype(np.int64)
    report = evaluate.class_report(y, scores, threshold)
    return {
        "rows": float(y.size),
        "bad_rate": float(y.mean()) if y.size else float("nan"),
        "roc_auc": evaluate.roc_auc(y, scores),
        "ks": evaluate.ks_statistic(y, scores),
        "f1_bad": report["f1_bad"],
        "accuracy": report["accuracy"],
        "decline_rate": float(np.mean(scores >= threshold)) if y.size else float("nan"),
    }


# --- the result -----------------------------------------------------------------------


@dataclass
class MonitorResult:
    """Every figure of one monitoring run, and where its reports went."""

    created_at: str
    model_name: str
    champion_version: int
    data_hash: str
    threshold: float
    window: str
    rows: int
    labelled_rows: int
    reference_rows: int
    feature_psi: dict[str, float] = field(default_factory=dict)
    score_psi: float | None = None
    psi_bands: dict[str, str] = field(default_factory=dict)
    drift_share: float | None = None
    drifted_columns: list[str] = field(default_factory=list)
    drift_tests: dict[str, dict[str, Any]] = field(default_factory=dict)
    quality: dict[str, float] | None = None
    training: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    seconds: float = 0.0
    evidently_seconds: float = 0.0

    @property
    def max_psi(self) -> tuple[str, float] | None:
        """The largest PSI (score included) and its column."""
        values = dict(self.feature_psi)
        if self.score_psi is not None:
            values["score"] = self.score_psi
        if not values:
            return None
        name = max(values, key=lambda k: values[k])
        return name, values[name]

    @property
    def auc_drop(self) -> float | None:
        """Champion's test ROC AUC minus the labelled window's (positive = worse)."""
        if self.quality is None or "test_roc_auc" not in self.training:
            return None
        auc = self.quality.get("roc_auc", float("nan"))
        return None if not math.isfinite(auc) else self.training["test_roc_auc"] - auc

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = json_safe(asdict(self))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitorResult:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        result = cls(**known)
        result.feature_psi = {k: _num(v) for k, v in result.feature_psi.items()}
        if result.quality is not None:
            result.quality = {k: _num(v) for k, v in result.quality.items()}
        return result


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


# --- Evidently --------------------------------------------------------------------------


@dataclass
class EvidentlyReports:
    """The Evidently snapshots of one run (``None`` where not computed)."""

    drift: Any = None
    quality: Any = None


def _drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, config: MonitorConfig, drift_share: float
) -> tuple[Any, float, list[str], dict[str, dict[str, Any]]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=list(schema.NUMERIC), categorical_columns=list(schema.CATEGORICAL)
    )
    preset = DataDriftPreset(
        drift_share=drift_share,
        method=config.drift_method or None,
        threshold=config.drift_threshold or None,
    )
    snapshot = Report([preset], include_tests=True).run(
        Dataset.from_pandas(current.loc[:, list(schema.FEATURES)], data_definition=definition),
        Dataset.from_pandas(reference.loc[:, list(schema.FEATURES)], data_definition=definition),
    )
    data = snapshot.dict()
    share = float("nan")
    for metric in data["metrics"]:
        if metric["config"]["type"].endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    tests: dict[str, dict[str, Any]] = {}
    scores = {
        m["config"]["column"]: m["value"]
        for m in data["metrics"]
        if m["config"]["type"].endswith(":ValueDrift")
    }
    for test in data["tests"]:
        params = test.get("metric_config", {}).get("params", {})
        if params.get("type", "").endswith(":ValueDrift"):
            column = params["column"]
            tests[column] = {
                "method": params.get("method"),
                "threshold": params.get("threshold"),
                "score": scores.get(column),
                "drifted": test["status"] == "FAIL",
            }
    drifted = [c for c in schema.FEATURES if tests.get(c, {}).get("drifted")]
    if not math.isfinite(share):
        raise MonitorError("Evidently's drift report has no share of drifted columns")
    return snapshot, share, drifted, tests


def _quality_report(labelled: pd.DataFrame, threshold: float) -> Any:
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    frame = pd.DataFrame(
        {
            "target": (labelled[OUTCOME].to_numpy() == schema.POSITIVE_LABEL).astype(np.int64),
            "prediction": (labelled[SCORE].to_numpy() >= threshold).astype(np.int64),
            SCORE: labelled[SCORE].to_numpy(dtype=np.float64),
        }
    )
    definition = DataDefinition(
        classification=[
            BinaryClassification(
                target="target",
                prediction_labels="prediction",
                prediction_probas=SCORE,
                pos_label=1,
            )
        ],
        numerical_columns=[SCORE],
    )
    return Report([ClassificationPreset()]).run(
        Dataset.from_pandas(frame, data_definition=definition), None
    )


# --- the computation, without I/O -----------------------------------------------------


@dataclass(frozen=True)
class ModelContext:
    """What the monitor needs to know about the champion."""

    name: str
    version: int
    data_hash: str
    threshold: float
    training: dict[str, float]


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
) -> tuple[MonitorResult, EvidentlyReports]:
    """All figures of one window, and the Evidently snapshots (no files, no MLflow).

    Args:
        reference: the champion's training rows (contract features).
        reference_scores: the champion's scores on unseen reference rows (its test split).
        current: the window: contract features, ``probability`` and ``outcome``
            (``good``/``bad``/missing).
        model: the champion's name, version, hash, threshold and test figures.
        drift_share: the share of drifted columns Evidently's summary test uses.
        with_evidently: False skips the Evidently reports (our own figures only).

    Raises:
        MonitorError: the window has no rows.
    """
    started = time.perf_counter()
    result = MonitorResult(
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
    reports = EvidentlyReports()
    if current.empty:
        raise MonitorError(
            f"the window {window or ''} has no rows: nothing to monitor".replace("  ", " ")
        )
    if len(current) < config.min_rows:
        result.messages.append(
            f"the window has {len(current)} rows, fewer than [monitor] min_rows {config.min_rows}: "
            "drift figures skipped (too few rows to tell drift from noise)"
        )
    else:
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
                _drift_report(reference, current, config, drift_share)
            )
            result.evidently_seconds += time.perf_counter() - tick
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
        result.quality = quality_figures(labelled[OUTCOME], scores, model.threshold)
        if labelled[OUTCOME].nunique() < 2:
            result.messages.append(
                "labelled rows hold one class only: ROC AUC and KS are undefined"
            )
        if with_evidently and labelled[OUTCOME].nunique() == 2:
            tick = time.perf_counter()
            reports.quality = _quality_report(labelled, model.threshold)
            result.evidently_seconds += time.perf_counter() - tick
    result.seconds = time.perf_counter() - started
    return result, reports


# --- reading the window ------------------------------------------------------------------


def read_current_csv(path: Path) -> pd.DataFrame:
    """A current window from a CSV file, validated against the contract.

    The file holds the 13 features and may add ``probability``, ``outcome``
    (or ``Status``) and the inference log's other columns.

    Raises:
        ContractError: missing or unknown columns, or a row breaks the contract.
        MonitorError: the file cannot be read.
    """
    try:
        raw = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise MonitorError(f"current file {path} not found") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MonitorError(f"current file {path} is not a readable CSV: {exc}") from exc
    present = [str(c) for c in raw.columns if str(c) not in schema.IGNORED_COLUMNS]
    missing = [c for c in schema.FEATURES if c not in present]
    extra = [c for c in present if c not in schema.FEATURES and c not in OPTIONAL_COLUMNS]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing column(s): {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected column(s): {', '.join(extra)}")
        raise ContractError(f"current file {path}: " + "; ".join(parts))
    frame = schema.normalize_raw(raw.drop(columns=[schema.TARGET], errors="ignore"))
    violations = schema.validate_rows(frame.loc[:, list(schema.FEATURES)])
    if violations:
        raise ContractError(
            f"current file {path}: {len(violations)} contract violation(s), first: {violations[0]}"
        )
    out = schema.coerce_features(frame)
    if OUTCOME in raw or schema.TARGET in raw:
        labels = raw[OUTCOME] if OUTCOME in raw else raw[schema.TARGET]
        labels = labels.astype("object").where(labels.notna(), np.nan)
        labels = labels.where(labels.isna(), labels.astype(str).str.strip().str.lower())
        wrong = labels.notna() & ~labels.isin(schema.LABELS)
        if wrong.any():
            row = int(np.flatnonzero(wrong.to_numpy())[0]) + 1
            raise ContractError(
                f"current file {path}: row {row}, outcome {labels[wrong].iloc[0]!r} "
                "is not one of good, bad"
            )
        out[OUTCOME] = labels
    if SCORE in raw:
        scores = pd.to_numeric(raw[SCORE], errors="coerce")
        if scores.isna().any() or ((scores < 0) | (scores > 1)).any():
            raise ContractError(
                f"current file {path}: column {SCORE} must hold numbers between 0 and 1"
            )
        out[SCORE] = scores.astype("float64")
    return out


def read_window(
    store_url: str,
    *,
    last_n: int | None,
    since: datetime | None,
    until: datetime | None,
) -> pd.DataFrame:
    """A window of the inference log (oldest first)."""
    import sqlalchemy as sa

    from creditops.serving.store import FRAME_COLUMNS, InferenceStore

    store = InferenceStore(store_url)
    try:
        if not sa.inspect(store.engine).has_table("inferences"):
            # the service never ran against this store: an empty log, not a broken one
            return pd.DataFrame(columns=list(FRAME_COLUMNS))
        return store.read_frame(last_n=last_n, since=since, until=until)
    except sa.exc.SQLAlchemyError as exc:
        raise MonitorError(f"cannot read the inference log {store_url}: {exc}") from exc
    finally:
        store.close()


# --- files and MLflow -----------------------------------------------------------------------


def write_reports(
    result: MonitorResult, reports: EvidentlyReports, directory: Path
) -> dict[str, str]:
    """Timestamped HTML/JSON reports, then the ``*-latest`` copies (summary last).

    The latest copies move only once every file of this run is written, so a
    failure never leaves a partial report posing as the latest.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stamp = result.created_at.replace("-", "").replace(":", "")
    written: dict[str, Path] = {}
    try:
        for kind, snapshot in (("drift", reports.drift), ("quality", reports.quality)):
            if snapshot is None:
                continue
            html = directory / f"{kind}-{stamp}.html"
            data = directory / f"{kind}-{stamp}.json"
            snapshot.save_html(str(html))
            data.write_text(json.dumps(snapshot.dict(), default=str), encoding="utf-8")
            written[f"{kind}_html"], written[f"{kind}_json"] = html, data
        summary = directory / f"monitor-{stamp}.json"
        result.reports = {k: str(v) for k, v in written.items()} | {"summary": str(summary)}
        summary.write_text(json.dumps(result.as_dict(), indent=2), encoding="utf-8")
        written["summary"] = summary
    except OSError as exc:
        raise MonitorError(f"cannot write reports under {directory}: {exc}") from exc
    for key, path in written.items():
        kind = key.split("_")[0] if key != "summary" else "monitor"
        latest = directory / f"{kind}-latest{path.suffix}"
        shutil.copyfile(path, latest)
    for kind in ("drift", "quality"):
        if reports.__dict__[kind] is None:
            # no stale latest report of a kind this run did not produce
            for suffix in (".html", ".json"):
                (directory / f"{kind}-latest{suffix}").unlink(missing_ok=True)
    return result.reports


def metrics_for_mlflow(result: MonitorResult) -> dict[str, float]:
    """The run's figures as flat MLflow metric names (undefined ones left out)."""
    metrics: dict[str, float] = {"rows": result.rows, "labelled_rows": result.labelled_rows}
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


def load_latest_result(directory: Path) -> MonitorResult:
    """The summary of the latest monitoring run.

    Raises:
        MonitorError: there is none yet, or it is unreadable.
    """
    path = directory / SUMMARY_LATEST
    try:
        return MonitorResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as exc:
        raise MonitorError(f"no monitoring summary {path}: run `creditops monitor` first") from exc
    except (ValueError, TypeError) as exc:
        raise MonitorError(f"monitoring summary {path} is unreadable: {exc}") from exc


# --- the stage -------------------------------------------------------------------------------


def champion_context(client: Any, settings: Any) -> tuple[Any, ModelContext]:
    """The champion's registry reference and what the monitor needs of it."""
    from creditops import registry

    ref = registry.resolve_alias(client, settings.mlflow.registered_model, registry.CHAMPION)
    return ref, ModelContext(ref.name, ref.version, ref.data_hash, ref.threshold, dict(ref.metrics))


def run_monitor(
    settings: Any,
    *,
    last_n: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    current_csv: Path | None = None,
    log_run: bool = True,
) -> MonitorResult:
    """Monitor a window of traffic against the champion's training data.

    The window is ``current_csv`` when given, else the inference log's rows
    in [``since``, ``until``) or its newest ``last_n`` (default
    ``[monitor] window_rows``). Reports go under ``[monitor] reports_dir``;
    figures and reports are logged to MLflow.

    Raises:
        NoChampionError: no champion to monitor.
        RegistryError: the reference data is gone or its hash does not match.
        ContractError: the current CSV breaks the contract.
        MonitorError: the window is empty, or a report cannot be produced.
    """
    from creditops import registry

    config: MonitorConfig = settings.monitor
    client = registry.connect(settings.mlflow)
    ref, model = champion_context(client, settings)
    train, test = registry.load_training_frames(client, ref)
    pipeline = registry.load_pipeline(client, ref)
    reference_scores = pipeline.predict_proba(schema.coerce_features(test))[:, 1]
    if current_csv is not None:
        current = read_current_csv(Path(current_csv))
        window = f"file {current_csv}"
        if SCORE not in current:
            current[SCORE] = pipeline.predict_proba(schema.coerce_features(current))[:, 1]
    else:
        if since is None and until is None and last_n is None:
            last_n = config.window_rows
        current = read_window(settings.serve.store_url, last_n=last_n, since=since, until=until)
        window = _describe_window(last_n, since, until)
        if config.champion_rows_only and not current.empty:
            versions = current["model_version"].value_counts().to_dict()
            current = current.loc[current["model_version"] == ref.version].reset_index(drop=True)
            others = {
                int(str(k)): int(v) for k, v in versions.items() if int(str(k)) != ref.version
            }
            if current.empty:
                raise MonitorError(
                    f"the window ({window}) has no rows scored by champion v{ref.version} "
                    f"(rows by version: {others}); send traffic first"
                )
            if others:
                log.info("monitor: left out rows scored by other versions %s", others)
    result, reports = compute_monitor(
        train,
        reference_scores,
        current,
        model,
        config,
        drift_share=settings.check.min_drift_share,
        window=window,
    )
    write_reports(result, reports, config.reports_dir)
    if log_run:
        try:
            result.run_id = log_to_mlflow(client, result)
        except CreditOpsError:
            raise
        except Exception as exc:  # MLflow raises many types
            raise MonitorError(f"cannot log the monitoring run to MLflow: {exc}") from exc
        # the summary on disk carries the run id too
        Path(result.reports["summary"]).write_text(
            json.dumps(result.as_dict(), indent=2), encoding="utf-8"
        )
        shutil.copyfile(result.reports["summary"], config.reports_dir / SUMMARY_LATEST)
    for message in result.messages:
        log.warning("monitor: %s", message)
    worst = result.max_psi
    log.info(
        "monitor v%s on %s: %d rows (%d labelled); drift share %s; max PSI %s; ROC AUC %s vs "
        "test %s; reports %s",
        result.champion_version,
        window,
        result.rows,
        result.labelled_rows,
        format_figure(result.drift_share),
        f"{worst[0]} {worst[1]:.3f}" if worst else "n/a",
        format_figure(result.quality["roc_auc"] if result.quality else None),
        format_figure(result.training.get("test_roc_auc")),
        result.reports.get("summary", ""),
    )
    return result


def _describe_window(last_n: int | None, since: datetime | None, until: datetime | None) -> str:
    parts = []
    if since is not None:
        parts.append(f"since {since.isoformat()}")
    if until is not None:
        parts.append(f"until {until.isoformat()}")
    if last_n is not None:
        parts.append(f"last {last_n} rows")
    return "inference log, " + ", ".join(parts)
