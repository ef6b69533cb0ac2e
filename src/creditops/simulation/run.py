"""The ``simulate`` stage: a scenario's calendar, sent to the running service.

:mod:`~creditops.simulation.calendar` makes the applicants over months and
their true outcomes, :mod:`~creditops.simulation.outcomes` what a lender sees
of them and when (both pure); :mod:`~creditops.simulation.sender` scores them
over HTTP and posts the observed outcomes. This module finds the rows a
scenario draws from (the champion's unseen data, through the registry), ties
them together and writes the ground truth (every applicant's true outcome,
declined ones included) to ``[simulate] ground_truth_path``: the service never
sees it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from creditops import schema
from creditops.config import DataConfig, MlflowConfig, SimulateConfig
from creditops.errors import SimulationError
from creditops.secrets import redact_url
from creditops.simulation.calendar import Calendar, build_calendar, calendar_start, month_start
from creditops.simulation.scenarios import (
    ScenarioSource,
    check_scenario,
    exclude_rows,
    ordered_halves,
)
from creditops.simulation.sender import (
    SentCalendar,
    SimulationSummary,
    probe_service,
    send_calendar,
)

log = logging.getLogger(__name__)


def load_scenario_source(
    mlflow: MlflowConfig, data: DataConfig, scenario: str
) -> ScenarioSource | None:
    """The rows ``scenario`` draws from: the champion's test split, and the file's unseen tail.

    Args:
        mlflow: where the champion and its training data are registered.
        data: the raw file whose second half ``ordered-tail`` sends.
        scenario: the scenario to draw for (``original`` draws from no rows).

    Raises:
        NoChampionError: no champion to simulate traffic for.
        SimulationError: ``ordered-tail`` and every tail row is in the champion's training data.
    """
    if scenario == "original":
        return None
    from creditops import registry
    from creditops.data import load_dataset

    client = registry.connect(mlflow)
    champion = registry.resolve_alias(client, mlflow.registered_model, registry.CHAMPION)
    train, test = registry.load_training_frames(client, champion)
    tail = pd.DataFrame(columns=[*schema.FEATURES, schema.TARGET])
    if scenario == "ordered-tail":
        _, raw_tail = ordered_halves(load_dataset(data).frame)
        tail = exclude_rows(raw_tail, train)
        seen = len(raw_tail) - len(tail)
        if seen:
            log.warning(
                "ordered-tail: %d of the tail's %d rows are in champion v%s's training data "
                "and are "
                "left out; train the champion on the head for the full drift",
                seen,
                len(raw_tail),
                champion.version,
            )
        if tail.empty:
            raise SimulationError("ordered-tail: every tail row is in the champion's training data")
    return ScenarioSource(unseen=test, tail=tail)


def run_simulation(
    config: SimulateConfig,
    mlflow: MlflowConfig,
    data: DataConfig,
    scenario: str | None = None,
    *,
    samples: int | None = None,
    seed: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    show_progress: bool = True,
) -> SimulationSummary:
    """Build ``scenario``'s calendar, send it to the service, write its ground truth.

    Args:
        config: the ``[simulate]`` section (service, calendar, scenario shapes).
        mlflow: where the champion whose unseen rows are drawn from is registered.
        data: the raw file (read for ``ordered-tail`` only).
        scenario: default ``[simulate] scenario``.
        samples: applicants in all; default ``[simulate] samples``, else
            ``months x applications_per_month``.
        seed: default ``[simulate] seed``.
        transport: an httpx transport to send through (tests); default the network.
        show_progress: draw a progress bar on the console.

    Raises:
        SimulationError: unknown scenario, a calendar reaching into the future, or an
            unreachable service.
        NoChampionError: no champion whose unseen rows to draw from.
    """
    scenario = scenario or config.scenario
    check_scenario(scenario)
    seed = config.seed if seed is None else seed
    check_calendar_in_past(config, datetime.now(UTC))
    # fail fast on an unreachable service, before loading any data
    asyncio.run(probe_service(config, transport))
    source = load_scenario_source(mlflow, data, scenario)
    calendar = build_calendar(scenario, source, config, seed, total=samples)
    log.info(
        "simulate %s: %d applicants over %d months from %s (seed %d) -> %s",
        scenario,
        len(calendar),
        calendar.months,
        calendar.start.date().isoformat(),
        seed,
        redact_url(config.service_url),
    )
    sent = asyncio.run(_send(calendar, config, seed, transport, show_progress))
    sent.summary.ground_truth = str(write_ground_truth(ground_truth_frame(sent), config))
    _log_summary(sent.summary)
    return sent.summary


def check_calendar_in_past(config: SimulateConfig, now: datetime) -> None:
    """Refuse a calendar whose months reach past ``now``: the service refuses future dates.

    Raises:
        SimulationError: naming the start date, the months and the fix.
    """
    end = month_start(calendar_start(config.start_date), config.months)
    if end > now:
        raise SimulationError(
            f"[simulate] start_date {config.start_date.isoformat()} + months {config.months} "
            f"ends {end.date().isoformat()}, after today ({now.date().isoformat()}): the "
            "service refuses application dates in the future; move start_date back or "
            "lower months"
        )


def ground_truth_frame(sent: SentCalendar) -> pd.DataFrame:
    """Every applicant's truth: application, true outcome, default month, what was posted.

    ``default_month`` is the month on book a bad defaulted at (0 for a good);
    ``observed_at`` is empty for an outcome that was not posted.
    """
    calendar = sent.calendar
    assert calendar.outcomes is not None  # set once scored
    observed = pd.Series(pd.NaT, index=range(len(calendar)), dtype="datetime64[us, UTC]")
    observed.iloc[sent.events.position] = sent.events.observed_at.to_numpy()
    return pd.DataFrame(
        {
            "request_id": sent.request_ids,
            "month": calendar.month_labels(),
            "application_at": calendar.application_at.to_numpy(),
            "outcome": np.where(
                calendar.outcomes == 1, schema.POSITIVE_LABEL, schema.NEGATIVE_LABEL
            ),
            "default_month": calendar.default_month,
            "decision": sent.decisions,
            "explored": sent.explored,
            "observed_at": observed.to_numpy(),
        }
    )


def write_ground_truth(frame: pd.DataFrame, config: SimulateConfig) -> Path:
    """Write the ground truth to ``[simulate] ground_truth_path`` (whole or not at all).

    Raises:
        SimulationError: the file cannot be written.
    """
    path = Path(config.ground_truth_path)
    partial = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(partial, index=False)
        partial.replace(path)
    except OSError as exc:
        raise SimulationError(f"cannot write the ground truth to {path}: {exc}") from exc
    return path


async def _send(
    calendar: Calendar,
    config: SimulateConfig,
    seed: int,
    transport: httpx.AsyncBaseTransport | None,
    show_progress: bool,
) -> SentCalendar:
    """:func:`send_calendar`, under a progress bar when asked."""
    if not show_progress:
        return await send_calendar(calendar, config, seed, transport=transport)
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"scoring {calendar.scenario}", total=len(calendar))
        return await send_calendar(
            calendar, config, seed, transport=transport, progress=lambda k: bar.advance(task, k)
        )


def _log_summary(summary: SimulationSummary) -> None:
    log.info(
        "simulate %s: %d months, %d applications (%d refused), %d approved (%d explored), "
        "%d declined, true bad rate %.3f; outcomes as of %s: %d posted, %d pending, "
        "%d never, %d failed; ground truth -> %s (%.1f s)",
        summary.scenario,
        summary.months,
        summary.scored,
        summary.refused,
        summary.approved,
        summary.explored,
        summary.declined,
        summary.bad_rate,
        summary.as_of[:10],
        summary.outcomes_posted,
        summary.outcomes_pending,
        summary.outcomes_never,
        summary.feedback_failed,
        summary.ground_truth,
        summary.seconds,
    )
