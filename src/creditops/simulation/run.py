"""Simulated production traffic: scenario generators, and sending them to the service.

Generators are pure functions of a :class:`ScenarioSource` (the rows they may
draw from), the ``[simulate]`` config and a seed; they return a
:class:`Traffic` (applicants in natural values, and their true outcomes,
1 = bad). Every generated row satisfies the applicant contract: values are
clipped to the validity limits, so the service never refuses one.

Scenarios:

* ``none``: rows the champion did **not** train on (its test split),
  resampled, lightly jittered. The jitter swaps a share of cells with the
  same column of another source row, which keeps every marginal distribution
  as it was: resampling cannot create drift, and rows stop being exact copies.
* ``covariate``: the ``none`` rows with the applicant mix shifted (Income x
  ``income_factor``, Age + ``age_shift``, renters up to ``renter_share``,
  Amount x ``amount_factor``); outcomes stay the real ones.
* ``concept``: the ``none`` applicants, unchanged; among applicants whose
  ``concept_feature`` equals ``concept_value`` (home owners by default) a
  share ``concept_flip_share`` of the good outcomes turn bad: the feature's
  effect reverses (owners were the safest group, now they are among the
  riskiest). The change is learnable, so retraining can recover from it.
* ``original``: the original student pipeline's method: every feature drawn
  from a clipped normal (numbers) or uniformly (categories), and outcomes
  made by flipping the model's own decisions so that its accuracy is
  ``accuracy`` (see :func:`original_outcomes`, applied after scoring).
* ``ordered-tail``: the raw file is not in random order (Expenses shifts
  between its halves), so its second half is real drift. To be honest, the
  traffic must be rows the model never saw, measured against a reference it
  was trained on: the tail rows that are in the champion's training frame are
  left out, and for the full effect the champion should be trained on the
  head only (:func:`ordered_halves`; the drift benchmark does exactly that).

Outcomes reach the service through ``POST /feedback``: a share
``never_share`` never arrives, a share ``late_share`` arrives after
``late_seconds``, the rest right after scoring.
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

log = logging.getLogger(__name__)

SCENARIOS = ("none", "covariate", "concept", "original", "ordered-tail")

# The original pipeline's per-feature (minimum, maximum, mean, std) draws.
ORIGINAL_NUMERIC: dict[str, tuple[float, float, float, float]] = {
    "Seniority": (0, 48, 5, 8),
    "Time": (1, 72, 48, 14),
    "Age": (18, 80, 36, 10),
    "Expenses": (35, 180, 51, 19),
    "Income": (6, 959, 125, 80),
    "Assets": (0, 300_000, 3_000, 11_574),
    "Debt": (0, 30_000, 0, 1_245),
    "Amount": (100, 5_000, 1_000, 474),
    "Price": (100, 12_000, 1_400, 628),
}


@dataclass(frozen=True)
class ScenarioSource:
    """The labelled rows generators draw from (13 features + ``Status``).

    Attributes:
        unseen: rows the served model did not train on (its test split).
        tail: the raw file's second half, less any row the model trained on.
    """

    unseen: pd.DataFrame
    tail: pd.DataFrame


@dataclass(frozen=True)
class Traffic:
    """Generated applicants and their true outcomes (1 = bad).

    ``outcomes`` is ``None`` for ``original``: its outcomes depend on the
    model's decisions and are made after scoring by :func:`original_outcomes`.
    """

    scenario: str
    features: pd.DataFrame
    outcomes: np.ndarray | None

    def __len__(self) -> int:
        return len(self.features)


@dataclass(frozen=True)
class FeedbackPlan:
    """When each row's outcome is posted: 0 now, 1 late, 2 never."""

    timing: np.ndarray

    @property
    def now(self) -> np.ndarray:
        return np.flatnonzero(self.timing == 0)

    @property
    def late(self) -> np.ndarray:
        return np.flatnonzero(self.timing == 1)

    @property
    def never(self) -> np.ndarray:
        return np.flatnonzero(self.timing == 2)


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
    errors: list[str] = field(default_factory=list)

    @property
    def decline_rate(self) -> float:
        return self.declined / self.scored if self.scored else float("nan")

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["decline_rate"] = self.decline_rate
        out["errors"] = self.errors[:20]
        return out


# --- pure generators ----------------------------------------------------------


def _rng(seed: int, scenario: str) -> np.random.Generator:
    # one independent stream per (seed, scenario): scenarios do not share draws
    return np.random.default_rng([seed, SCENARIOS.index(scenario)])


def resample_rows(source: pd.DataFrame, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """``n`` rows of ``source``, in successive random permutations.

    Unlike an i.i.d. bootstrap, every source row appears ``n // len`` or one
    more times, so a sample is as representative as its source allows.
    """
    if source.empty:
        raise SimulationError("no source rows to resample from")
    rounds = math.ceil(n / len(source))
    order = np.concatenate([rng.permutation(len(source)) for _ in range(rounds)])[:n]
    return source.iloc[order].reset_index(drop=True)


def jitter_rows(frame: pd.DataFrame, share: float, rng: np.random.Generator) -> pd.DataFrame:
    """Replace a ``share`` of each feature's cells by the same column of other rows.

    A swap within a column keeps its marginal distribution (spikes such as
    Time = 60 included), so jitter makes resampled rows distinct without
    looking like drift.
    """
    out = frame.copy()
    if share <= 0 or len(out) < 2:
        return out
    for name in schema.FEATURES:
        hit = np.flatnonzero(rng.random(len(out)) < share)
        donors = rng.integers(0, len(out), size=hit.size)
        column = out[name].to_numpy(copy=True)
        column[hit] = frame[name].to_numpy()[donors]
        out[name] = column
    return out


def clip_to_contract(frame: pd.DataFrame) -> pd.DataFrame:
    """Numbers clipped to the validity limits and integers rounded: rows the service accepts."""
    out = schema.coerce_features(frame)
    for name in schema.NUMERIC:
        spec = schema.FIELDS[name]
        assert isinstance(spec, schema.NumericField)
        low = spec.minimum
        if spec.exclusive_minimum:
            low = spec.minimum + (1.0 if spec.integer else 0.01)
        values = out[name].clip(lower=low, upper=spec.maximum)
        out[name] = values.round() if spec.integer else values.round(2)
    return out


def _labels(frame: pd.DataFrame) -> np.ndarray:
    labels: np.ndarray = (frame[schema.TARGET].to_numpy() == schema.POSITIVE_LABEL).astype(np.int64)
    return labels


def generate_none(source: ScenarioSource, config: SimulateConfig, n: int, seed: int) -> Traffic:
    """Unseen rows, resampled and jittered; real outcomes."""
    rng = _rng(seed, "none")
    rows = jitter_rows(resample_rows(source.unseen, n, rng), config.jitter, rng)
    return Traffic("none", clip_to_contract(rows), _labels(rows))


def generate_covariate(
    source: ScenarioSource, config: SimulateConfig, n: int, seed: int
) -> Traffic:
    """The ``none`` rows with a shifted applicant mix; real outcomes."""
    rng = _rng(seed, "covariate")
    rows = jitter_rows(resample_rows(source.unseen, n, rng), config.jitter, rng)
    shifted = rows.copy()
    shifted["Income"] = rows["Income"] * config.income_factor
    shifted["Age"] = rows["Age"] + config.age_shift
    shifted["Amount"] = rows["Amount"] * config.amount_factor
    renters = (rows["Home"] == "rent").to_numpy()
    current = renters.mean()
    if config.renter_share > current:
        # turn just enough non-renters into renters to reach the target share
        convert = (config.renter_share - current) / (1.0 - current)
        chosen = ~renters & (rng.random(len(rows)) < convert)
        home = shifted["Home"].to_numpy(copy=True)
        home[chosen] = "rent"
        shifted["Home"] = home
    return Traffic("covariate", clip_to_contract(shifted), _labels(rows))


def generate_concept(source: ScenarioSource, config: SimulateConfig, n: int, seed: int) -> Traffic:
    """The ``none`` applicants; in the concept segment, good outcomes turn bad."""
    rng = _rng(seed, "concept")
    rows = jitter_rows(resample_rows(source.unseen, n, rng), config.jitter, rng)
    outcomes = _labels(rows)
    segment = (
        rows[config.concept_feature].astype("object").astype(str) == config.concept_value
    ).to_numpy()
    flip = segment & (outcomes == 0) & (rng.random(len(rows)) < config.concept_flip_share)
    outcomes = np.where(flip, 1, outcomes)
    return Traffic("concept", clip_to_contract(rows), outcomes)


def generate_original(config: SimulateConfig, n: int, seed: int) -> Traffic:
    """Features drawn as the original pipeline drew them; outcomes come after scoring."""
    rng = _rng(seed, "original")
    data: dict[str, Any] = {}
    for name in schema.FEATURES:
        spec = schema.FIELDS[name]
        if isinstance(spec, schema.CategoricalField):
            data[name] = rng.choice(np.asarray(spec.categories, dtype=object), size=n)
        else:
            low, high, mean, std = ORIGINAL_NUMERIC[name]
            data[name] = np.clip(rng.normal(mean, std, size=n), low, high)
    return Traffic("original", clip_to_contract(pd.DataFrame(data)), None)


def generate_ordered_tail(
    source: ScenarioSource, config: SimulateConfig, n: int, seed: int
) -> Traffic:
    """Rows of the raw file's second half (unseen by the model), resampled and jittered."""
    rng = _rng(seed, "ordered-tail")
    rows = jitter_rows(resample_rows(source.tail, n, rng), config.jitter, rng)
    return Traffic("ordered-tail", clip_to_contract(rows), _labels(rows))


def generate_traffic(
    scenario: str, source: ScenarioSource | None, config: SimulateConfig, n: int, seed: int
) -> Traffic:
    """The traffic of ``scenario``: ``n`` applicants, deterministic by ``seed``.

    Raises:
        SimulationError: unknown scenario, or no source rows for one that needs them.
    """
    if scenario == "original":
        return generate_original(config, n, seed)
    if scenario not in SCENARIOS:
        raise SimulationError(
            f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}"
        )
    if source is None:
        raise SimulationError(
            f"scenario {scenario!r} needs source rows (the champion's unseen data)"
        )
    generators: dict[str, Callable[[ScenarioSource, SimulateConfig, int, int], Traffic]] = {
        "none": generate_none,
        "covariate": generate_covariate,
        "concept": generate_concept,
        "ordered-tail": generate_ordered_tail,
    }
    return generators[scenario](source, config, n, seed)


def original_outcomes(declined: np.ndarray, accuracy: float, seed: int) -> np.ndarray:
    """Outcomes that make the model's decisions right with probability ``accuracy``.

    As in the original pipeline: each decision (decline = predicts bad) is
    kept as the outcome with probability ``accuracy``, else flipped.
    """
    rng = np.random.default_rng([seed, SCENARIOS.index("original"), 1])
    predicted_bad = np.asarray(declined, dtype=np.int64)
    keep = rng.random(predicted_bad.size) < accuracy
    return np.where(keep, predicted_bad, 1 - predicted_bad)


def plan_feedback(n: int, config: SimulateConfig, seed: int) -> FeedbackPlan:
    """Which outcomes are posted now, late or never (deterministic by ``seed``)."""
    rng = np.random.default_rng([seed, 99])
    draw = rng.random(n)
    timing = np.zeros(n, dtype=np.int64)
    timing[draw < config.never_share + config.late_share] = 1
    timing[draw < config.never_share] = 2
    return FeedbackPlan(timing)


def ordered_halves(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw file's first and second halves, in file order."""
    middle = len(frame) // 2
    return frame.iloc[:middle].reset_index(drop=True), frame.iloc[middle:].reset_index(drop=True)


def _row_keys(frame: pd.DataFrame) -> pd.Series:
    columns = [*schema.FEATURES, schema.TARGET]
    return frame.loc[:, columns].astype(str).agg("|".join, axis=1)


def exclude_rows(frame: pd.DataFrame, seen: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` whose content does not appear in ``seen``."""
    keep = ~_row_keys(schema_frame(frame)).isin(set(_row_keys(schema_frame(seen))))
    return frame.loc[keep.to_numpy()].reset_index(drop=True)


def schema_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Contract features in contract dtypes, plus ``Status``."""
    return pd.concat([schema.coerce_features(frame), frame[[schema.TARGET]]], axis=1)


# --- sending over HTTP ----------------------------------------------------------


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


def parse_predictions(body: Any) -> list[dict[str, Any]]:
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
                    f"scoring service at {config.service_url} is unreachable "
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
) -> int:
    semaphore = asyncio.Semaphore(concurrency)
    failed = 0

    async def one(request_id: str, outcome: str) -> None:
        nonlocal failed
        async with semaphore:
            try:
                response = await client.post(
                    "/feedback", json={"request_id": request_id, "outcome": outcome}
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
            f"scoring service at {config.service_url} is unreachable ({type(exc).__name__}): "
            "start it with `creditops serve` or set [simulate] service_url"
        ) from exc
    if health.status_code != 200:
        raise SimulationError(
            f"scoring service at {config.service_url} is not ready: GET /health answered "
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
        scored = np.array([r is not None for r in results])
        summary.scored = int(scored.sum())
        summary.refused = len(results) - summary.scored
        declined = np.array(
            [bool(r is not None and r.get("decision") == "decline") for r in results]
        )
        summary.declined = int(declined[scored].sum())
        for r in results:
            if r is not None and r.get("model_version") is not None:
                version = int(r["model_version"])
                summary.model_versions[version] = summary.model_versions.get(version, 0) + 1
        outcomes = traffic.outcomes
        if outcomes is None:
            outcomes = original_outcomes(declined, config.accuracy, seed)
        if summary.scored:
            summary.bad_rate = float(outcomes[scored].mean())
            summary.accuracy = float(np.mean(declined[scored] == outcomes[scored].astype(bool)))
        plan = plan_feedback(len(traffic), config, seed)
        ids = [
            str(r["request_id"]) if r is not None and "request_id" in r else None for r in results
        ]

        def pairs(positions: np.ndarray) -> list[tuple[str, str]]:
            out = []
            for i in positions:
                request_id = ids[int(i)]
                if request_id is not None:
                    label = schema.POSITIVE_LABEL if outcomes[int(i)] else schema.NEGATIVE_LABEL
                    out.append((request_id, label))
            return out

        now, late = pairs(plan.now), pairs(plan.late)
        summary.feedback_never = len(pairs(plan.never))
        summary.feedback_failed += await _post_feedback(client, now, config.concurrency)
        summary.feedback_now = len(now)
        if late:
            log.info(
                "waiting %.1f s before posting %d late outcome(s)", config.late_seconds, len(late)
            )
            await asyncio.sleep(config.late_seconds)
            summary.feedback_failed += await _post_feedback(client, late, config.concurrency)
        summary.feedback_late = len(late)
    summary.seconds = time.perf_counter() - started
    return summary


def load_scenario_source(settings: Any, scenario: str) -> ScenarioSource | None:
    """The rows ``scenario`` draws from: the champion's test split, and the file's unseen tail.

    Raises:
        NoChampionError: no champion to simulate traffic for.
    """
    if scenario == "original":
        return None
    from creditops import registry
    from creditops.data import load_dataset

    client = registry.connect(settings.mlflow)
    champion = registry.resolve_alias(client, settings.mlflow.registered_model, registry.CHAMPION)
    train, test = registry.load_training_frames(client, champion)
    tail = pd.DataFrame(columns=[*schema.FEATURES, schema.TARGET])
    if scenario == "ordered-tail":
        _, raw_tail = ordered_halves(load_dataset(settings.data).frame)
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
    settings: Any,
    scenario: str | None = None,
    *,
    samples: int | None = None,
    seed: int | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    show_progress: bool = True,
) -> SimulationSummary:
    """Generate ``scenario`` traffic and send it to the service (``[simulate]`` config).

    Raises:
        SimulationError: unknown scenario or unreachable service.
        NoChampionError: no champion whose unseen rows to draw from.
    """
    config: SimulateConfig = settings.simulate
    scenario = scenario or config.scenario
    if scenario not in SCENARIOS:
        raise SimulationError(
            f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}"
        )
    n = samples or config.samples
    seed = config.seed if seed is None else seed
    # fail fast on an unreachable service, before loading any data
    asyncio.run(probe_service(config, transport))
    source = load_scenario_source(settings, scenario)
    traffic = generate_traffic(scenario, source, config, n, seed)
    log.info("simulate %s: %d applicants (seed %d) -> %s", scenario, n, seed, config.service_url)

    async def go() -> SimulationSummary:
        if not show_progress:
            return await send_traffic(traffic, config, seed, transport=transport)
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(f"scoring {scenario}", total=n)
            return await send_traffic(
                traffic, config, seed, transport=transport, progress=lambda k: bar.advance(task, k)
            )

    summary = asyncio.run(go())
    log.info(
        "simulate %s: %d scored, %d refused, decline rate %.3f, bad rate %.3f; outcomes: %d now, "
        "%d late, %d never, %d failed (%.1f s)",
        scenario,
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
    return summary
