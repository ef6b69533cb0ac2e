"""Sending a simulated calendar to the scoring service over HTTP, and posting its outcomes.

:func:`send_calendar` scores a :class:`~creditops.simulation.calendar.Calendar`
in chronological order through ``POST /predict`` (``batch_rows`` applicants a
request, ``concurrency`` requests at a time), each applicant with its
``application_at``; then posts to ``POST /feedback`` (with the feedback key,
``X-Feedback-Key``) the outcomes a lender has observed by the calendar's end,
each with its ``observed_at``, as :func:`~creditops.simulation.outcomes.outcome_events`
says: granted loans only, bads at their default month, goods when the window
closes. The transport is injectable, so tests run it against an in-process stand-in.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd

from creditops import schema
from creditops.config import SimulateConfig
from creditops.errors import SimulationError
from creditops.secrets import redact_url
from creditops.simulation.calendar import Calendar, calendar_of_traffic
from creditops.simulation.outcomes import OutcomeEvents, outcome_events
from creditops.simulation.scenarios import Traffic, original_outcomes

log = logging.getLogger(__name__)
# The header POST /feedback reads [serve] feedback_api_key from.
FEEDBACK_KEY_HEADER = "X-Feedback-Key"


@dataclass
class SimulationSummary:
    """What one simulation sent, what came back, the outcomes posted, and how long it took."""

    scenario: str
    seed: int
    rows: int
    months: int = 1
    scored: int = 0
    refused: int = 0
    declined: int = 0
    approved: int = 0  # granted loans, explored ones included
    explored: int = 0
    outcomes_posted: int = 0
    outcomes_pending: int = 0  # granted, not matured by the calendar's end
    outcomes_never: int = 0
    feedback_failed: int = 0
    seconds: float = 0.0
    model_versions: dict[int, int] = field(default_factory=dict)
    bad_rate: float = float("nan")  # true, through the door (declined applicants included)
    accuracy: float = float("nan")
    as_of: str = ""  # the simulation's "now": the calendar's end
    ground_truth: str = ""  # the file of every applicant's true outcome

    @property
    def decline_rate(self) -> float:
        """The share of scored applicants the service declined (NaN when none was scored)."""
        return self.declined / self.scored if self.scored else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """Every field and the decline rate, for ``creditops simulate --json``."""
        out = dict(self.__dict__)
        out["decline_rate"] = self.decline_rate
        return out


@dataclass(frozen=True)
class SentCalendar:
    """A calendar as sent: the service's answers per applicant and the outcomes posted.

    Attributes:
        calendar: the calendar, its true outcomes set (``original``: after scoring).
        summary: the counts.
        request_ids: each applicant's request id (``None`` if refused).
        decisions: ``approve`` | ``decline`` | ``None`` (refused).
        explored: declined by the model, granted anyway.
        events: the outcomes posted (or meant to be: see ``summary.feedback_failed``).
    """

    calendar: Calendar
    summary: SimulationSummary
    request_ids: list[str | None]
    decisions: list[str | None]
    explored: np.ndarray
    events: OutcomeEvents


def _records(frame: pd.DataFrame, application_at: pd.Series) -> list[dict[str, Any]]:
    records = []
    stamps = application_at.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").tolist()
    for row, stamp in zip(frame.to_dict(orient="records"), stamps, strict=True):
        clean: dict[str, Any] = {}
        for key, value in row.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                clean[str(key)] = None
            elif str(key) in schema.NUMERIC:
                spec = schema.FIELDS[str(key)]
                number = float(value)
                integer = isinstance(spec, schema.NumericField) and spec.integer
                clean[str(key)] = int(number) if integer else number
            else:
                clean[str(key)] = str(value)
        clean["application_at"] = stamp
        records.append(clean)
    return records


def parse_predictions(body: object) -> list[dict[str, Any]]:
    """The per-applicant results of a ``POST /predict`` response body.

    Accepts a bare list, or an object holding the list under
    ``predictions``, ``results`` or ``items``.
    """
    items = body
    if isinstance(body, dict):
        for key in ("predictions", "results", "items"):
            if isinstance(body.get(key), list):
                items = body[key]
                break
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise SimulationError(f"unexpected /predict response: {str(body)[:200]}")
    return items


async def _send_batches(
    client: httpx.AsyncClient,
    records: list[dict[str, Any]],
    config: SimulateConfig,
    progress: Callable[[int], None],
) -> list[dict[str, Any] | None]:
    results: list[dict[str, Any] | None] = [None] * len(records)
    starts = list(range(0, len(records), config.batch_rows))
    semaphore = asyncio.Semaphore(config.concurrency)
    errors: list[str] = []

    async def one(start: int) -> None:
        batch = records[start : start + config.batch_rows]
        async with semaphore:
            try:
                response = await client.post("/predict", json=batch, params={"reasons": "false"})
            except httpx.TransportError as exc:
                raise SimulationError(
                    f"scoring service at {redact_url(config.service_url)} is unreachable "
                    f"({type(exc).__name__}: "
                    f"{exc}): start it with `creditops serve`"
                ) from exc
        if response.status_code != 200:
            errors.append(
                f"rows {start + 1}-{start + len(batch)}: "
                f"HTTP {response.status_code} {response.text[:200]}"
            )
        else:
            for offset, item in enumerate(parse_predictions(response.json())):
                if start + offset < len(results):
                    results[start + offset] = item
        progress(len(batch))

    tasks = [asyncio.create_task(one(start)) for start in starts]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for message in errors[:5]:
        log.warning("refused: %s", message)
    return results


async def _post_feedback(
    client: httpx.AsyncClient,
    triples: Sequence[tuple[str, str, str]],
    concurrency: int,
    key: str,
) -> int:
    semaphore = asyncio.Semaphore(concurrency)
    headers = {FEEDBACK_KEY_HEADER: key} if key else {}
    failed = 0

    async def one(request_id: str, outcome: str, observed_at: str) -> None:
        nonlocal failed
        body = {"request_id": request_id, "outcome": outcome, "observed_at": observed_at}
        async with semaphore:
            try:
                response = await client.post("/feedback", json=body, headers=headers)
            except httpx.TransportError as exc:
                log.warning("feedback for %s not delivered: %s", request_id, exc)
                failed += 1
                return
        if response.status_code >= 300:
            failed += 1
            if failed <= 5:
                log.warning(
                    "feedback for %s refused: HTTP %s %s",
                    request_id,
                    response.status_code,
                    response.text[:200],
                )

    await asyncio.gather(*(one(*triple) for triple in triples))
    return failed


async def probe_service(
    config: SimulateConfig, transport: httpx.AsyncBaseTransport | None = None
) -> None:
    """Make sure the service answers ``GET /health``.

    Raises:
        SimulationError: unreachable, or not healthy.
    """
    timeout = httpx.Timeout(config.timeout_seconds)
    async with httpx.AsyncClient(
        base_url=config.service_url, timeout=timeout, transport=transport
    ) as client:
        await _check_health(client, config)


async def _check_health(client: httpx.AsyncClient, config: SimulateConfig) -> None:
    try:
        health = await client.get("/health")
    except httpx.TransportError as exc:
        raise SimulationError(
            f"scoring service at {redact_url(config.service_url)} is unreachable "
            f"({type(exc).__name__}): "
            "start it with `creditops serve` or set [simulate] service_url"
        ) from exc
    if health.status_code != 200:
        raise SimulationError(
            f"scoring service at {redact_url(config.service_url)} is not ready: "
            "GET /health answered "
            f"{health.status_code} {health.text[:200]}"
        )


async def send_calendar(
    calendar: Calendar,
    config: SimulateConfig,
    seed: int,
    *,
    as_of: datetime | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Callable[[int], None] | None = None,
) -> SentCalendar:
    """Score ``calendar`` on the service, then post the outcomes observed by ``as_of``.

    Args:
        calendar: the applicants, in chronological order.
        config: the ``[simulate]`` section (service, batching, performance window).
        seed: the draw of the never-posted outcomes (and of ``original``'s outcomes).
        as_of: the simulation's "now"; default the calendar's end (at most now).
        transport: an httpx transport to send through (tests); default the network.
        progress: called with the number of applicants each finished request held.

    Raises:
        SimulationError: the service is unreachable or answers nonsense.
    """
    summary = SimulationSummary(calendar.scenario, seed, len(calendar), months=calendar.months)
    moment = as_of or min(calendar.end, datetime.now(UTC))
    summary.as_of = moment.isoformat()
    started = time.perf_counter()
    records = _records(calendar.features, calendar.application_at)
    timeout = httpx.Timeout(config.timeout_seconds)
    async with httpx.AsyncClient(
        base_url=config.service_url, timeout=timeout, transport=transport
    ) as client:
        await _check_health(client, config)
        results = await _send_batches(client, records, config, progress or (lambda _: None))
        calendar = _tally(summary, calendar, results, config.accuracy)
        ids = [
            str(r["request_id"]) if r is not None and "request_id" in r else None for r in results
        ]
        decisions = [None if r is None else str(r.get("decision")) for r in results]
        explored = np.array([bool(r is not None and r.get("explored")) for r in results])
        assert calendar.outcomes is not None  # set by _tally
        events = outcome_events(
            calendar.application_at,
            calendar.outcomes,
            calendar.default_month,
            np.array([d == "approve" for d in decisions]),
            moment,
            performance_months=config.performance_months,
            never_share=config.never_share,
            seed=seed,
        )
        await _post_outcomes(client, summary, ids, events, config)
    summary.seconds = time.perf_counter() - started
    return SentCalendar(calendar, summary, ids, decisions, explored, events)


async def send_traffic(
    traffic: Traffic,
    config: SimulateConfig,
    seed: int,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Callable[[int], None] | None = None,
) -> SimulationSummary:
    """One window of traffic, sent as a one-month calendar in ``start_date``'s month.

    Its outcomes are posted as far as they have matured by now.

    Raises:
        SimulationError: the service is unreachable or answers nonsense.
    """
    calendar = calendar_of_traffic(traffic, config, seed)
    sent = await send_calendar(
        calendar, config, seed, as_of=datetime.now(UTC), transport=transport, progress=progress
    )
    return sent.summary


def _tally(
    summary: SimulationSummary,
    calendar: Calendar,
    results: list[dict[str, Any] | None],
    accuracy: float,
) -> Calendar:
    """Count what came back into ``summary``; the calendar with its outcomes (``original``: now)."""
    scored = np.array([r is not None for r in results])
    summary.scored = int(scored.sum())
    summary.refused = len(results) - summary.scored
    decision = np.array([None if r is None else r.get("decision") for r in results])
    explored = np.array([bool(r is not None and r.get("explored")) for r in results])
    summary.declined = int((decision == "decline").sum())
    summary.approved = int((decision == "approve").sum())
    summary.explored = int(explored.sum())
    for r in results:
        if r is not None and r.get("model_version") is not None:
            version = int(r["model_version"])
            summary.model_versions[version] = summary.model_versions.get(version, 0) + 1
    model_declined = (decision == "decline") | explored  # the model's own verdict
    if calendar.outcomes is None:
        calendar = calendar.with_outcomes(original_outcomes(model_declined, accuracy, summary.seed))
    outcomes = calendar.outcomes
    assert outcomes is not None
    if summary.scored:
        summary.bad_rate = float(outcomes[scored].mean())
        summary.accuracy = float(np.mean(model_declined[scored] == outcomes[scored].astype(bool)))
    return calendar


async def _post_outcomes(
    client: httpx.AsyncClient,
    summary: SimulationSummary,
    ids: list[str | None],
    events: OutcomeEvents,
    config: SimulateConfig,
) -> None:
    """Post the observed outcomes, oldest first, each with its ``observed_at``; count them."""
    triples = []
    stamps = events.observed_at.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").tolist()
    for position, outcome, stamp in zip(events.position, events.outcome, stamps, strict=True):
        request_id = ids[int(position)]
        if request_id is not None:
            label = schema.POSITIVE_LABEL if outcome else schema.NEGATIVE_LABEL
            triples.append((request_id, label, stamp))
    key = config.feedback_api_key.get_secret_value()
    if not key and triples:
        log.warning(
            "no feedback key: the service refuses outcomes without one; set [simulate] "
            "feedback_api_key or [serve] feedback_api_key (CREDITOPS_SERVE__FEEDBACK_API_KEY)"
        )
    summary.feedback_failed += await _post_feedback(client, triples, config.concurrency, key)
    summary.outcomes_posted = len(triples)
    summary.outcomes_pending = events.pending
    summary.outcomes_never = events.never
