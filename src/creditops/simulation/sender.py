"""Sending simulated traffic to the scoring service over HTTP, and posting its outcomes.

:func:`send_traffic` scores a :class:`~creditops.simulation.scenarios.Traffic`
through ``POST /predict`` (``batch_rows`` applicants a request,
``concurrency`` requests at a time), then posts each outcome to
``POST /feedback`` (with the feedback key, ``X-Feedback-Key``) as the
:class:`~creditops.simulation.scenarios.FeedbackPlan` says: now, after
``late_seconds``, or never. The transport is injectable, so
tests run it against an in-process stand-in.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pandas as pd

from creditops import schema
from creditops.config import SimulateConfig
from creditops.errors import SimulationError
from creditops.secrets import redact_url
from creditops.simulation.scenarios import Traffic, original_outcomes, plan_feedback

log = logging.getLogger(__name__)
# The header POST /feedback reads [serve] feedback_api_key from.
FEEDBACK_KEY_HEADER = "X-Feedback-Key"


@dataclass
class SimulationSummary:
    """What one simulation sent, what came back, and how long it took."""

    scenario: str
    seed: int
    rows: int
    scored: int = 0
    refused: int = 0
    declined: int = 0
    feedback_now: int = 0
    feedback_late: int = 0
    feedback_never: int = 0
    feedback_failed: int = 0
    seconds: float = 0.0
    model_versions: dict[int, int] = field(default_factory=dict)
    bad_rate: float = float("nan")
    accuracy: float = float("nan")

    @property
    def decline_rate(self) -> float:
        """The share of scored applicants the service declined (NaN when none was scored)."""
        return self.declined / self.scored if self.scored else float("nan")

    def as_dict(self) -> dict[str, Any]:
        """Every field and the decline rate, for ``creditops simulate --json``."""
        out = dict(self.__dict__)
        out["decline_rate"] = self.decline_rate
        return out


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records = []
    for row in frame.to_dict(orient="records"):
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
    pairs: Sequence[tuple[str, str]],
    concurrency: int,
    key: str,
) -> int:
    semaphore = asyncio.Semaphore(concurrency)
    headers = {FEEDBACK_KEY_HEADER: key} if key else {}
    failed = 0

    async def one(request_id: str, outcome: str) -> None:
        nonlocal failed
        async with semaphore:
            try:
                response = await client.post(
                    "/feedback",
                    json={"request_id": request_id, "outcome": outcome},
                    headers=headers,
                )
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

    await asyncio.gather(*(one(r, o) for r, o in pairs))
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


async def send_traffic(
    traffic: Traffic,
    config: SimulateConfig,
    seed: int,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: Callable[[int], None] | None = None,
) -> SimulationSummary:
    """Score ``traffic`` on the service, then post its outcomes as planned.

    Raises:
        SimulationError: the service is unreachable or answers nonsense.
    """
    summary = SimulationSummary(traffic.scenario, seed, len(traffic))
    started = time.perf_counter()
    records = _records(traffic.features)
    timeout = httpx.Timeout(config.timeout_seconds)
    async with httpx.AsyncClient(
        base_url=config.service_url, timeout=timeout, transport=transport
    ) as client:
        await _check_health(client, config)
        results = await _send_batches(client, records, config, progress or (lambda _: None))
        outcomes = _tally(summary, results, traffic.outcomes, config.accuracy)
        await _post_outcomes(client, summary, results, outcomes, config)
    summary.seconds = time.perf_counter() - started
    return summary


def _tally(
    summary: SimulationSummary,
    results: list[dict[str, Any] | None],
    outcomes: np.ndarray | None,
    accuracy: float,
) -> np.ndarray:
    """Count what came back into ``summary``; returns the outcomes (made now for ``original``)."""
    scored = np.array([r is not None for r in results])
    summary.scored = int(scored.sum())
    summary.refused = len(results) - summary.scored
    declined = np.array([bool(r is not None and r.get("decision") == "decline") for r in results])
    summary.declined = int(declined[scored].sum())
    for r in results:
        if r is not None and r.get("model_version") is not None:
            version = int(r["model_version"])
            summary.model_versions[version] = summary.model_versions.get(version, 0) + 1
    if outcomes is None:
        outcomes = original_outcomes(declined, accuracy, summary.seed)
    if summary.scored:
        summary.bad_rate = float(outcomes[scored].mean())
        summary.accuracy = float(np.mean(declined[scored] == outcomes[scored].astype(bool)))
    return outcomes


def _feedback_pairs(
    ids: list[str | None], outcomes: np.ndarray, positions: np.ndarray
) -> list[tuple[str, str]]:
    """(request id, outcome label) of the scored rows at ``positions``."""
    out = []
    for i in positions:
        request_id = ids[int(i)]
        if request_id is not None:
            label = schema.POSITIVE_LABEL if outcomes[int(i)] else schema.NEGATIVE_LABEL
            out.append((request_id, label))
    return out


async def _post_outcomes(
    client: httpx.AsyncClient,
    summary: SimulationSummary,
    results: list[dict[str, Any] | None],
    outcomes: np.ndarray,
    config: SimulateConfig,
) -> None:
    """Post the outcomes now, late or never, as :func:`plan_feedback` says; count them."""
    plan = plan_feedback(len(results), config, summary.seed)
    ids = [str(r["request_id"]) if r is not None and "request_id" in r else None for r in results]
    now = _feedback_pairs(ids, outcomes, plan.now)
    late = _feedback_pairs(ids, outcomes, plan.late)
    summary.feedback_never = len(_feedback_pairs(ids, outcomes, plan.never))
    key = config.feedback_api_key.get_secret_value()
    if not key and (now or late):
        log.warning(
            "no feedback key: the service refuses outcomes without one; set [simulate] "
            "feedback_api_key or [serve] feedback_api_key (CREDITOPS_SERVE__FEEDBACK_API_KEY)"
        )
    summary.feedback_failed += await _post_feedback(client, now, config.concurrency, key)
    summary.feedback_now = len(now)
    if late:
        log.info("waiting %.1f s before posting %d late outcome(s)", config.late_seconds, len(late))
        await asyncio.sleep(config.late_seconds)
        summary.feedback_failed += await _post_feedback(client, late, config.concurrency, key)
    summary.feedback_late = len(late)
