"""The monitor's record: what it knows of the champion, and every figure of one run.

:class:`MonitorResult` is also the summary file's format (``monitor-*.json``):
:meth:`MonitorResult.as_dict` writes it, :meth:`MonitorResult.from_dict` reads it back.
:class:`MonitorRunStatus` is the status file (``monitor-status.json``) a run
writes when it starts (``running``) and ends (``ok``, or ``failed`` with the
error; :func:`records_run_status`), so ``creditops check`` can tell a
summary left behind by a failed run from the latest run's.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypedDict

from creditops.records import json_safe

if TYPE_CHECKING:
    from creditops.config import MonitorConfig

log = logging.getLogger(__name__)
P = ParamSpec("P")
STATUS_FILE = "monitor-status.json"

# the window's columns besides the contract's features
SCORE = "probability"
OUTCOME = "outcome"


class DriftTest(TypedDict):
    """Evidently's drift test of one column."""

    method: str | None
    threshold: float | None
    score: float | None
    drifted: bool


@dataclass(frozen=True)
class ModelContext:
    """What the monitor needs to know about the champion."""

    name: str
    version: int
    data_hash: str
    threshold: float
    training: dict[str, float]


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
    # rows of the window that break the contract: set aside, the figures use
    # the valid ``rows``; counts by "<field>: <rule category>" and examples
    # (creditops.monitoring.data_quality)
    invalid_rows: int = 0
    invalid_share: float = 0.0
    invalid_by_rule: dict[str, int] = field(default_factory=dict)
    invalid_examples: list[dict[str, Any]] = field(default_factory=list)
    feature_psi: dict[str, float] = field(default_factory=dict)
    score_psi: float | None = None
    psi_bands: dict[str, str] = field(default_factory=dict)
    drift_share: float | None = None
    drifted_columns: list[str] = field(default_factory=list)
    drift_tests: dict[str, DriftTest] = field(default_factory=dict)
    quality: dict[str, float] | None = None
    training: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    reports: dict[str, str] = field(default_factory=dict)
    run_id: str = ""
    seconds: float = 0.0
    evidently_seconds: float = 0.0
    # the CSV file the window came from (`monitor --current`); "" = the inference log
    current_file: str = ""

    @property
    def total_rows(self) -> int:
        """The window's rows, valid and invalid."""
        return self.rows + self.invalid_rows

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
        """The record as JSON-safe data (undefined figures as ``None``)."""
        data: dict[str, Any] = json_safe(asdict(self))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitorResult:
        """The record back from :meth:`as_dict` data (``None`` figures as NaN again)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        result = cls(**known)
        result.feature_psi = {k: _num(v) for k, v in result.feature_psi.items()}
        if result.quality is not None:
            result.quality = {k: _num(v) for k, v in result.quality.items()}
        return result


def _num(value: float | None) -> float:
    return float("nan") if value is None else float(value)


@dataclass
class MonitorRunStatus:
    """The latest monitoring run's state: ``running``, ``ok`` or ``failed``."""

    state: str
    started_at: str
    finished_at: str = ""
    # of the summary an ``ok`` run wrote
    created_at: str = ""
    window: str = ""
    champion_version: int | None = None
    error: str = ""


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_run_status(directory: Path, status: MonitorRunStatus) -> None:
    """Write ``status`` as ``monitor-status.json`` (a write failure is logged, not raised)."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / STATUS_FILE).write_text(json.dumps(asdict(status), indent=2), "utf-8")
    except OSError as exc:
        log.warning("cannot write the monitor status under %s: %s", directory, exc)


def read_run_status(directory: Path) -> MonitorRunStatus | None:
    """The latest run's status (``None``: no status file, or an unreadable one, logged)."""
    path = directory / STATUS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {k: v for k, v in data.items() if k in MonitorRunStatus.__dataclass_fields__}
        return MonitorRunStatus(**known)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("ignoring unreadable monitor status %s: %s", path, exc)
        return None


def records_run_status(
    run: Callable[Concatenate[MonitorConfig, P], MonitorResult],
) -> Callable[Concatenate[MonitorConfig, P], MonitorResult]:
    """Wrap a monitoring run: status ``running`` at start, ``ok`` or ``failed`` at the end."""

    @functools.wraps(run)
    def recorded(config: MonitorConfig, /, *args: P.args, **kwargs: P.kwargs) -> MonitorResult:
        started = _stamp()
        write_run_status(config.reports_dir, MonitorRunStatus("running", started))
        try:
            result = run(config, *args, **kwargs)
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            failed = MonitorRunStatus("failed", started, _stamp(), error=error)
            write_run_status(config.reports_dir, failed)
            raise
        done = MonitorRunStatus(
            "ok",
            started,
            _stamp(),
            created_at=result.created_at,
            window=result.window,
            champion_version=result.champion_version,
        )
        write_run_status(config.reports_dir, done)
        return result

    return recorded
