"""Which monitoring figures a check may judge: fresh, about the champion, from a run that ended.

``creditops check`` judges the latest ``creditops monitor`` summary. It
refuses (one :class:`~creditops.errors.MonitorError` line naming the window,
when its figures were computed and the fix) a summary:

* left behind by a monitor run that failed, or that started and never
  recorded its end (the status file, :class:`MonitorRunStatus`);
* about another champion than the current one;
* older than ``[check] max_figures_age_minutes``.

Pure: the caller reads the files and the clock.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from creditops.errors import MonitorError

if TYPE_CHECKING:
    from creditops.monitoring.result import MonitorResult, MonitorRunStatus

FIX = "run `creditops monitor` first"


def computed_at(result: MonitorResult) -> datetime:
    """When the monitor computed ``result``'s figures.

    Raises:
        MonitorError: ``created_at`` is not an ISO 8601 time with a zone.
    """
    try:
        when = datetime.fromisoformat(result.created_at)
    except (TypeError, ValueError) as exc:
        raise MonitorError(
            f"monitoring summary field created_at: {result.created_at!r} is not an ISO 8601 "
            f"time: {FIX}"
        ) from exc
    if when.tzinfo is None:
        raise MonitorError(
            f"monitoring summary field created_at: {result.created_at!r} has no time zone: {FIX}"
        )
    return when


def require_fresh_figures(
    result: MonitorResult,
    status: MonitorRunStatus | None,
    *,
    champion_version: int,
    now: datetime,
    max_age_minutes: float,
) -> float:
    """The age in minutes of ``result``'s figures, if a check may judge them.

    Args:
        result: the monitoring summary to judge.
        status: the latest monitor run's status (``None``: no status file,
            e.g. figures handed over directly).
        champion_version: the current champion.
        now: the check's time.
        max_age_minutes: ``[check] max_figures_age_minutes``.

    Raises:
        MonitorError: the latest run failed or did not finish, the summary is
            not the latest run's, is about another champion, or is too old.
    """
    about = f"the monitoring summary of window {result.window!r} computed at {result.created_at}"
    _require_completed(about, result, status)
    if result.champion_version != champion_version:
        raise MonitorError(
            f"{about} is about v{result.champion_version}, the champion is now "
            f"v{champion_version}: {FIX}"
        )
    age = (now - computed_at(result)).total_seconds() / 60.0
    if age > max_age_minutes:
        raise MonitorError(
            f"{about} is {age:.1f} min old, more than [check] max_figures_age_minutes "
            f"{max_age_minutes:g}: {FIX}"
        )
    return age


def _require_completed(about: str, result: MonitorResult, status: MonitorRunStatus | None) -> None:
    """Refuse a summary the latest monitor run did not complete and write."""
    if status is None:
        return
    if status.state == "failed":
        raise MonitorError(
            f"the latest `creditops monitor` run (started {status.started_at}) failed: "
            f"{status.error}; {about} is older and not judged: fix the failure, then {FIX}"
        )
    if status.state != "ok":
        raise MonitorError(
            f"the latest `creditops monitor` run (started {status.started_at}) has not "
            f"recorded its end (state {status.state!r}: still running, or killed); {about} is "
            f"older and not judged: wait for it to end, or {FIX}"
        )
    if status.created_at != result.created_at:
        raise MonitorError(
            f"{about} is not the one the latest `creditops monitor` run wrote "
            f"(computed at {status.created_at}, window {status.window!r}): {FIX}"
        )
