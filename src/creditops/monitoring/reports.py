"""Evidently's reports and the monitor's files.

Evidently stays inside this module: the rest of creditops sees plain
:class:`~creditops.monitoring.result.MonitorResult` figures. Each run writes
HTML + JSON reports under ``[monitor] reports_dir`` with timestamped names and
``*-latest`` copies: Evidently's drift and quality reports (on the valid rows),
the data-quality section (the rows that break the contract, ``data-quality-*``)
and the summary; :func:`load_latest_result` reads the latest summary back.
"""

from __future__ import annotations

import html
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from creditops import schema
from creditops.config import MonitorConfig
from creditops.errors import MonitorError
from creditops.monitoring.result import OUTCOME, SCORE, DriftTest, MonitorResult
from creditops.records import json_safe
from creditops.schema import show_value

if TYPE_CHECKING:
    from evidently.core.report import Snapshot

SUMMARY_LATEST = "monitor-latest.json"


@dataclass
class EvidentlyReports:
    """The Evidently snapshots of one run (``None`` where not computed)."""

    drift: Snapshot | None = None
    quality: Snapshot | None = None


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, config: MonitorConfig, drift_share: float
) -> tuple[Snapshot, float, list[str], dict[str, DriftTest]]:
    """Evidently's data-drift report of the contract features.

    Returns:
        The snapshot, the share of drifted columns, the drifted columns and
        each column's drift test.

    Raises:
        MonitorError: the report holds no share of drifted columns.
    """
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
    share, tests = _drift_figures(snapshot.dict())
    drifted = [c for c in schema.FEATURES if c in tests and tests[c]["drifted"]]
    if not math.isfinite(share):
        raise MonitorError("Evidently's drift report has no share of drifted columns")
    return snapshot, share, drifted, tests


def _drift_figures(data: dict[str, Any]) -> tuple[float, dict[str, DriftTest]]:
    """The share of drifted columns and the per-column tests of a drift snapshot's data."""
    share = float("nan")
    for metric in data["metrics"]:
        if metric["config"]["type"].endswith(":DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    scores = {
        m["config"]["column"]: m["value"]
        for m in data["metrics"]
        if m["config"]["type"].endswith(":ValueDrift")
    }
    tests: dict[str, DriftTest] = {}
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
    return share, tests


def quality_report(labelled: pd.DataFrame, threshold: float) -> Snapshot:
    """Evidently's classification report of labelled rows at the champion's threshold."""
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
    import warnings

    from sklearn.exceptions import UndefinedMetricWarning

    with warnings.catch_warnings():
        # outcomes exist only for granted loans, so the labelled rows may hold no
        # predicted decline at all: a precision of 0/0, which the report shows as such
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return Report([ClassificationPreset()]).run(
            Dataset.from_pandas(frame, data_definition=definition), None
        )


def write_reports(
    result: MonitorResult, reports: EvidentlyReports, directory: Path
) -> dict[str, str]:
    """Timestamped HTML/JSON reports, then the ``*-latest`` copies (summary last).

    The latest copies move only once every file of this run is written, so a
    failure never leaves a partial report posing as the latest.

    Returns:
        The files written, by kind (``drift_html`` ... ``data_quality_json``,
        ``summary``); also set as ``result.reports``.

    Raises:
        MonitorError: a file cannot be written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    stamp = result.created_at.replace("-", "").replace(":", "")
    kinds = (("drift", reports.drift), ("quality", reports.quality))
    written: dict[str, Path] = {}
    try:
        for kind, snapshot in kinds:
            if snapshot is None:
                continue
            html = directory / f"{kind}-{stamp}.html"
            data = directory / f"{kind}-{stamp}.json"
            snapshot.save_html(str(html))
            data.write_text(json.dumps(snapshot.dict(), default=str), encoding="utf-8")
            written[f"{kind}_html"], written[f"{kind}_json"] = html, data
        written["data_quality_html"], written["data_quality_json"] = _write_data_quality(
            result, directory, stamp
        )
        summary = directory / f"monitor-{stamp}.json"
        result.reports = {k: str(v) for k, v in written.items()} | {"summary": str(summary)}
        summary.write_text(json.dumps(result.as_dict(), indent=2), encoding="utf-8")
        written["summary"] = summary
    except OSError as exc:
        raise MonitorError(f"cannot write reports under {directory}: {exc}") from exc
    for key, path in written.items():
        kind = key.rsplit("_", 1)[0].replace("_", "-") if key != "summary" else "monitor"
        latest = directory / f"{kind}-latest{path.suffix}"
        shutil.copyfile(path, latest)
    for kind, snapshot in kinds:
        if snapshot is None:
            # no stale latest report of a kind this run did not produce
            for suffix in (".html", ".json"):
                (directory / f"{kind}-latest{suffix}").unlink(missing_ok=True)
    return result.reports


def data_quality_record(result: MonitorResult) -> dict[str, Any]:
    """The data-quality section of a run: the window's broken rows, counted and exemplified."""
    record: dict[str, Any] = json_safe(
        {
            "created_at": result.created_at,
            "window": result.window,
            "rows": result.total_rows,
            "valid_rows": result.rows,
            "invalid_rows": result.invalid_rows,
            "invalid_share": result.invalid_share,
            "invalid_by_rule": result.invalid_by_rule,
            "invalid_examples": result.invalid_examples,
        }
    )
    return record


def data_quality_html(record: dict[str, Any]) -> str:
    """A small standalone HTML page of :func:`data_quality_record`."""
    cell = html.escape
    rules = "".join(
        f"<tr><td>{cell(key)}</td><td>{count}</td></tr>"
        for key, count in record["invalid_by_rule"].items()
    )
    examples = "".join(
        "<tr>" + "".join(f"<td>{cell(show_value(ex.get(k)))}</td>" for k in _EXAMPLE_KEYS) + "</tr>"
        for ex in record["invalid_examples"]
    )
    share = record["invalid_share"] or 0.0
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Data quality</title></head>"
        f"<body><h1>Data quality: {cell(record['window'])}</h1>"
        f"<p>{record['created_at']}: {record['invalid_rows']} of {record['rows']} rows "
        f"({share:.1%}) break the contract and are left out of the drift and quality "
        f"figures, computed on the {record['valid_rows']} valid rows.</p>"
        "<h2>Rows by field and rule</h2><table border='1'><tr><th>field: rule</th>"
        f"<th>rows</th></tr>{rules}</table>"
        "<h2>First broken rules</h2><table border='1'><tr>"
        + "".join(f"<th>{k}</th>" for k in _EXAMPLE_KEYS)
        + f"</tr>{examples}</table></body></html>"
    )


_EXAMPLE_KEYS = ("row", "field", "value", "rule")


def _write_data_quality(result: MonitorResult, directory: Path, stamp: str) -> tuple[Path, Path]:
    """The data-quality section as ``data-quality-<stamp>.html`` and ``.json``."""
    record = data_quality_record(result)
    page = directory / f"data-quality-{stamp}.html"
    data = directory / f"data-quality-{stamp}.json"
    page.write_text(data_quality_html(record), encoding="utf-8")
    data.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    return page, data


def rewrite_summary(result: MonitorResult, directory: Path) -> None:
    """Write ``result`` over its summary file and the latest copy (once it has a run id)."""
    Path(result.reports["summary"]).write_text(
        json.dumps(result.as_dict(), indent=2), encoding="utf-8"
    )
    shutil.copyfile(result.reports["summary"], directory / SUMMARY_LATEST)


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
