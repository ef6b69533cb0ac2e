"""``creditops monitor --by month``: every application month of the log, into the monitoring table.

Reads the whole inference log, cuts it by application month and model version,
runs every month provider (:data:`creditops.monitoring.vintage.PROVIDERS`) on
each (month, version) against the champion's training reference (as the
window monitor takes it: its training rows for the features, its scores on its
test split for the score), then upserts all the rows in one transaction
(:mod:`creditops.monitoring.table`) and draws the vintage curves. Re-running
over the same months updates their rows; a run that fails writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from creditops import plots, registry, schema
from creditops.calibration import unwrap
from creditops.config import MlflowConfig, MonitorConfig
from creditops.errors import MonitorError, RegistryError
from creditops.monitoring.backtest import backtest_png, configured
from creditops.monitoring.run import champion_context
from creditops.monitoring.shadow_rows import shadow_rows
from creditops.monitoring.table import MonitoringRow, MonthContext, write_rows
from creditops.monitoring.vintage import (
    PROVIDERS,
    application_times,
    compute_rows,
    gap_months,
    month_labels,
    observed_times,
)
from creditops.monitoring.window import read_window
from creditops.serving.shadow_log import read_shadow

log = logging.getLogger(__name__)

VINTAGE_PNG = "vintage-latest.png"


@dataclass(frozen=True)
class Reference:
    """The champion's reference, as every month is compared with it.

    Attributes:
        rows: its training rows (features and ``Status``).
        scores: its PDs on its test split (unseen rows).
        labels: 1 = bad for those test rows.
        threshold: its decision threshold.
        calibrated: for each model version, whether its PDs are calibrated
            (a version missing here counts as calibrated).
    """

    rows: pd.DataFrame
    scores: np.ndarray | None
    labels: np.ndarray | None
    threshold: float
    calibrated: dict[int, bool] = field(default_factory=dict)


@dataclass
class MonthlyResult:
    """What a monthly run computed and wrote.

    Attributes:
        as_of: the run's "now": outcomes posted later were not seen.
        months: the application months with traffic, oldest first.
        versions: the model versions that scored them.
        rows: the monitoring rows computed (and written, unless nothing was).
        rows_written: how many rows were upserted.
        vintage_png: the vintage curves' figure ("" when none was drawn).
        backtest_png: predicted against observed bad rate by PD grade ("" when no grade
            has matured outcomes yet).
        messages: months without traffic, and other things a reader should know.
    """

    as_of: datetime
    months: list[str]
    versions: list[int]
    rows: list[MonitoringRow]
    rows_written: int = 0
    vintage_png: str = ""
    backtest_png: str = ""
    messages: list[str] = field(default_factory=list)

    def figures(self) -> pd.DataFrame:
        """One line per (month, version), one column per metric (None where absent)."""
        if not self.rows:
            return pd.DataFrame(columns=["month", "model_version"])
        long = pd.DataFrame(
            [(r.month, r.model_version, r.metric, r.value) for r in self.rows],
            columns=["month", "model_version", "metric", "value"],
        )
        wide = long.pivot(index=["month", "model_version"], columns="metric", values="value")
        wide = wide.astype(object)
        return wide.where(wide.notna(), None).reset_index()

    def to_dict(self) -> dict[str, object]:
        """JSON-safe: the run's scope, its messages, and every row."""
        return {
            "as_of": self.as_of.isoformat(),
            "months": self.months,
            "versions": self.versions,
            "rows_written": self.rows_written,
            "vintage_png": self.vintage_png,
            "backtest_png": self.backtest_png,
            "messages": self.messages,
            "rows": [r.__dict__ for r in self.rows],
        }


def resolve_as_of(setting: date | Literal[""], log_frame: pd.DataFrame) -> datetime:
    """``[monitor] as_of`` as a moment: the end of that day, else the log's latest date.

    Raises:
        MonitorError: the log is empty and no date is set.
    """
    if isinstance(setting, date):
        return datetime.combine(setting, time.max, tzinfo=UTC)
    if log_frame.empty:
        raise _no_traffic("the inference log has no rows")
    latest = pd.concat([application_times(log_frame), observed_times(log_frame)]).max()
    moment: datetime = pd.Timestamp(latest).to_pydatetime()
    return moment


def _no_traffic(why: str) -> MonitorError:
    return MonitorError(
        f"{why}: no application month to monitor; send traffic first (`creditops simulate`)"
    )


def select_months(
    log_frame: pd.DataFrame,
    as_of: datetime,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """The log's rows whose application is at or before ``as_of`` and in [since, until).

    Raises:
        MonitorError: no row is left (a message naming the range and the log's months).
    """
    if log_frame.empty:
        raise _no_traffic("the inference log has no rows")
    applied = application_times(log_frame)
    keep = applied <= pd.Timestamp(as_of)
    if since is not None:
        keep &= applied >= pd.Timestamp(_utc(since))
    if until is not None:
        keep &= applied < pd.Timestamp(_utc(until))
    if not keep.any():
        months = month_labels(applied)
        bounds = [f"as of {as_of:%Y-%m-%d}"]
        bounds += [f"since {since:%Y-%m-%d}"] if since is not None else []
        bounds += [f"until {until:%Y-%m-%d}"] if until is not None else []
        raise _no_traffic(
            f"no applications {', '.join(bounds)} (the log's {len(log_frame)} rows are "
            f"from {months.min()} to {months.max()})"
        )
    return log_frame.loc[keep].reset_index(drop=True)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def monthly_rows(
    log_frame: pd.DataFrame, reference: Reference, config: MonitorConfig, as_of: datetime
) -> tuple[list[MonitoringRow], list[str]]:
    """Every provider's rows for every (month, version) of ``log_frame``, and messages."""
    thresholds: dict[int, float] = {}
    if "threshold" in log_frame:
        medians = log_frame.groupby("model_version")["threshold"].median()
        thresholds = {int(str(v)): float(t) for v, t in medians.items()}

    def context_for(month: str, version: int) -> MonthContext:
        return MonthContext(
            month=month,
            model_version=version,
            as_of=as_of,
            threshold=thresholds.get(version, reference.threshold),
            reference=reference.rows,
            reference_scores=reference.scores,
            performance_months=config.performance_months,
            min_rows=config.min_matured_rows,
            reference_labels=reference.labels,
            psi_bins=config.psi_bins,
            min_drift_rows=config.min_rows,
            calibrated=reference.calibrated.get(version, True),
        )

    # the backtest provider reads [monitor]'s grades and traffic-light levels
    rows = compute_rows(log_frame, context_for, configured(PROVIDERS, config))
    months = sorted(set(month_labels(application_times(log_frame))))
    gaps = gap_months(months)
    messages = [f"no traffic in {', '.join(gaps)}: no rows for those months"] if gaps else []
    return rows, messages


def vintage_curves(rows: list[MonitoringRow]) -> dict[str, dict[int, float]]:
    """The ``vintage:mob<k>`` rows as curves: month (and version, if several) -> {k: rate}."""
    vintage = [
        (r.month, r.model_version, int(r.metric.removeprefix("vintage:mob")), r.value)
        for r in rows
        if r.kind == "vintage" and r.value is not None
    ]
    versions: dict[str, set[int]] = {}
    for month, version, _, _ in vintage:
        versions.setdefault(month, set()).add(version)
    curves: dict[str, dict[int, float]] = {}
    for month, version, on_book, rate in vintage:
        name = month if len(versions[month]) == 1 else f"{month} v{version}"
        curves.setdefault(name, {})[on_book] = rate
    return curves


def load_reference(mlflow_config: MlflowConfig, versions: Sequence[int] = ()) -> Reference:
    """The champion's training rows, its PDs and outcomes on its test split, its threshold.

    Args:
        mlflow_config: the registry.
        versions: the versions whose calibration the run needs to know.

    Raises:
        NoChampionError: no champion.
        RegistryError: its reference data is gone or does not match its hash.
    """
    client = registry.connect(mlflow_config)
    ref, model = champion_context(client, mlflow_config.registered_model)
    train, test = registry.load_training_frames(client, ref)
    pipeline = registry.load_pipeline(client, ref)
    scores = np.asarray(pipeline.predict_proba(schema.coerce_features(test))[:, 1])
    labels = (test[schema.TARGET] == schema.POSITIVE_LABEL).to_numpy(dtype=np.int64)
    calibrated = {ref.version: unwrap(pipeline)[1] is not None}
    for version in sorted(set(versions) - {ref.version}):
        try:
            other = registry.get_version(client, ref.name, version)
            calibrated[version] = unwrap(registry.load_pipeline(client, other))[1] is not None
        except RegistryError as exc:  # a deleted version still has its log rows
            log.warning("monitor by month: v%d's calibration unknown (%s)", version, exc)
    return Reference(train, scores, labels, model.threshold, calibrated)


def run_monitor_by_month(
    config: MonitorConfig,
    mlflow_config: MlflowConfig,
    *,
    store_url: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> MonthlyResult:
    """Compute every (application month, version) of the log and upsert the rows.

    Args:
        config: the ``[monitor]`` section (performance_months, min_matured_rows,
            as_of, min_rows, psi_bins, reports_dir).
        mlflow_config: the registry holding the champion (the reference).
        store_url: the inference log's database (``[serve] store_url``), which
            holds the monitoring table too.
        since: only applications at or after this time (naive means UTC).
        until: only applications before this time.

    Raises:
        MonitorError: the log has no traffic in the range (a message, not a
            crash), or a month provider failed (named; nothing written).
        NoChampionError: no champion to take the reference from.
        StoreError: the monitoring table cannot be written.
    """
    log_frame = read_window(store_url, last_n=None, since=None, until=None)
    as_of = resolve_as_of(config.as_of, log_frame)
    selected = select_months(log_frame, as_of, since=since, until=until)
    versions = [int(v) for v in selected["model_version"].unique()]
    reference = load_reference(mlflow_config, versions)
    rows, messages = monthly_rows(selected, reference, config, as_of)
    # the challenger's shadow scores of the same applicants, when [serve] shadow is on
    rows += shadow_rows(selected, read_shadow(store_url))
    result = MonthlyResult(
        as_of=as_of,
        months=sorted({r.month for r in rows}),
        versions=sorted({r.model_version for r in rows}),
        rows=rows,
        messages=messages,
    )
    result.rows_written = write_rows(store_url, rows)
    _draw(result, Path(config.reports_dir))
    for message in messages:
        log.warning("monitor by month: %s", message)
    log.info(
        "monitor by month as of %s: %d months (%s to %s), versions %s, %d rows upserted; %s",
        f"{as_of:%Y-%m-%d}",
        len(result.months),
        result.months[0] if result.months else "-",
        result.months[-1] if result.months else "-",
        result.versions,
        result.rows_written,
        result.vintage_png or "no vintage curve yet",
    )
    return result


def _draw(result: MonthlyResult, reports_dir: Path) -> None:
    """The vintage curves and the backtest's predicted-vs-observed figure, where there is data."""
    curves = vintage_curves(result.rows)
    if curves:
        reports_dir.mkdir(parents=True, exist_ok=True)
        title = f"vintage curves as of {result.as_of:%Y-%m-%d}"
        result.vintage_png = str(plots.vintage_png(curves, reports_dir / VINTAGE_PNG, title))
    drawn = backtest_png(result.rows, reports_dir / "backtest-latest.png")
    result.backtest_png = str(drawn) if drawn is not None else ""
