"""The check's records: the decision files and the last retraining's marker (the cooldown)."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

from creditops.monitoring.table import MonitoringRow, write_rows
from creditops.retraining.policy import TriggerDecision

log = logging.getLogger(__name__)

LAST_RETRAIN = "last-retrain.json"
DECISION_LATEST = "decision-latest.json"


# --- the decision record ----------------------------------------------------------


def write_decision(decision: TriggerDecision, directory: Path) -> Path:
    """Write the record (timestamped + ``decision-latest.json``); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = decision.created_at.replace("-", "").replace(":", "")
    path = directory / f"decision-{stamp}.json"
    suffix = 1
    while path.exists():
        path = directory / f"decision-{stamp}-{suffix}.json"
        suffix += 1
    decision.record_path = str(path)
    text = json.dumps(decision.as_dict(), indent=2)
    path.write_text(text, encoding="utf-8")
    (directory / DECISION_LATEST).write_text(text, encoding="utf-8")
    return path


def read_last_retrain(directory: Path) -> datetime | None:
    """When the last retraining started (``None`` if never)."""
    path = directory / LAST_RETRAIN
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return datetime.fromisoformat(data["started_at"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None


def mark_retrain(
    directory: Path, when: datetime, champion_version: int, challenger_version: int | None = None
) -> None:
    """Record that a retraining of ``champion_version``, started at ``when``, produced a challenger.

    Written once the challenger exists: the cooldown runs from ``when``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    record = {
        "started_at": when.isoformat(),
        "champion_version": champion_version,
        "challenger_version": challenger_version,
    }
    (directory / LAST_RETRAIN).write_text(json.dumps(record), encoding="utf-8")


def mark_on_table(decision: TriggerDecision, store_url: str) -> None:
    """Record a decision judged on the monitoring table's months in that table too.

    One row (kind ``trigger``, metric ``trigger:decision``) on the newest month
    the decision looked at: 1.0 if it fired, else 0.0, with the action and the
    reasons; the dashboard marks it on every time axis. A decision judged on a
    one-window summary has no month, so it is not marked. A later check of the
    same month replaces the row: the table keeps each month's latest verdict.
    """
    if decision.source != "months" or not decision.months:
        return
    newest = max(str(month["month"]) for month in decision.months)
    detail = {
        "action": decision.action,
        "reasons": decision.reasons[:5],
        "created_at": decision.created_at,
        "record": decision.record_path,
    }
    row = MonitoringRow(
        month=newest,
        model_version=decision.champion_version,
        metric="trigger:decision",
        kind="trigger",
        value=1.0 if decision.fired else 0.0,
        detail=json.dumps(detail, default=str),
    )
    write_rows(store_url, [row])
