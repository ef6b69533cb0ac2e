"""The ``simulate`` stage: generate a scenario's traffic and send it to the running service.

:mod:`~creditops.simulation.scenarios` makes the applicants and their outcomes
(pure), :mod:`~creditops.simulation.sender` scores them over HTTP and posts
the outcomes; this module finds the rows a scenario draws from (the
champion's unseen data, through the registry) and ties the two together.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import pandas as pd

from creditops import schema
from creditops.config import DataConfig, MlflowConfig, SimulateConfig
from creditops.errors import SimulationError
from creditops.secrets import redact_url
from creditops.simulation.scenarios import (
    ScenarioSource,
    Traffic,
    check_scenario,
    exclude_rows,
    generate_traffic,
    ordered_halves,
)
from creditops.simulation.sender import SimulationSummary, probe_service, send_traffic

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
    """Generate ``scenario`` traffic and send it to the service.

    Args:
        config: the ``[simulate]`` section (service, scenario shapes, feedback timing).
        mlflow: where the champion whose unseen rows are drawn from is registered.
        data: the raw file (read for ``ordered-tail`` only).
        scenario: default ``[simulate] scenario``.
        samples: applicants to send; default ``[simulate] samples``.
        seed: default ``[simulate] seed``.
        transport: an httpx transport to send through (tests); default the network.
        show_progress: draw a progress bar on the console.

    Raises:
        SimulationError: unknown scenario or unreachable service.
        NoChampionError: no champion whose unseen rows to draw from.
    """
    scenario = scenario or config.scenario
    check_scenario(scenario)
    n = samples or config.samples
    seed = config.seed if seed is None else seed
    # fail fast on an unreachable service, before loading any data
    asyncio.run(probe_service(config, transport))
    source = load_scenario_source(mlflow, data, scenario)
    traffic = generate_traffic(scenario, source, config, n, seed)
    log.info(
        "simulate %s: %d applicants (seed %d) -> %s",
        scenario,
        n,
        seed,
        redact_url(config.service_url),
    )
    summary = asyncio.run(_send(traffic, config, seed, transport, show_progress))
    _log_summary(summary)
    return summary


async def _send(
    traffic: Traffic,
    config: SimulateConfig,
    seed: int,
    transport: httpx.AsyncBaseTransport | None,
    show_progress: bool,
) -> SimulationSummary:
    """:func:`send_traffic`, under a progress bar when asked."""
    if not show_progress:
        return await send_traffic(traffic, config, seed, transport=transport)
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"scoring {traffic.scenario}", total=len(traffic))
        return await send_traffic(
            traffic, config, seed, transport=transport, progress=lambda k: bar.advance(task, k)
        )


def _log_summary(summary: SimulationSummary) -> None:
    log.info(
        "simulate %s: %d scored, %d refused, decline rate %.3f, bad rate %.3f; outcomes: %d now, "
        "%d late, %d never, %d failed (%.1f s)",
        summary.scenario,
        summary.scored,
        summary.refused,
        summary.decline_rate,
        summary.bad_rate,
        summary.feedback_now,
        summary.feedback_late,
        summary.feedback_never,
        summary.feedback_failed,
        summary.seconds,
    )
