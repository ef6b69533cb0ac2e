"""Simulated production traffic, pure: scenario generators and the feedback plan.

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
* ``downturn``: the ``none`` applicants, unchanged; at fixed features the bad
  rate rises by ``downturn_factor`` (a recession): each good outcome turns bad
  with the probability that multiplies the source's bad rate by the factor
  (:func:`downturn_flip_probability`). Nothing in the applicants shows it: only
  matured outcomes can.
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

These generators make one window at full strength; the simulated calendar
(:mod:`creditops.simulation.calendar`) spreads applicants over months and
applies a scenario from its start month on, with the same pieces
(:func:`shift_mix`, :func:`flip_goods`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from creditops import schema
from creditops.config import SCENARIOS, SimulateConfig
from creditops.errors import SimulationError

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


def labels(frame: pd.DataFrame) -> np.ndarray:
    """The ``Status`` column as 1 (bad) / 0 (good)."""
    labels: np.ndarray = (frame[schema.TARGET].to_numpy() == schema.POSITIVE_LABEL).astype(np.int64)
    return labels


def generate_none(source: ScenarioSource, config: SimulateConfig, n: int, seed: int) -> Traffic:
    """Unseen rows, resampled and jittered; real outcomes."""
    rng = _rng(seed, "none")
    rows = jitter_rows(resample_rows(source.unseen, n, rng), config.jitter, rng)
    return Traffic("none", clip_to_contract(rows), labels(rows))


def generate_covariate(
    source: ScenarioSource, config: SimulateConfig, n: int, seed: int
) -> Traffic:
    """The ``none`` rows with a shifted applicant mix; real outcomes."""
    rng = _rng(seed, "covariate")
    rows = jitter_rows(resample_rows(source.unseen, n, rng), config.jitter, rng)
    shifted = shift_mix(rows, config, np.ones(len(rows)), rng)
    return Traffic("covariate", clip_to_contract(shifted), labels(rows))


def shift_mix(
    rows: pd.DataFrame, config: SimulateConfig, strength: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """``rows`` with the applicant mix shifted, each row by its ``strength`` (0 none, 1 full).

    At full strength Income is multiplied by ``income_factor``, Age shifted by
    ``age_shift``, Amount multiplied by ``amount_factor`` and the renters' share
    raised to ``renter_share``; in between, factors are taken to the power of the
    strength and shifts scaled by it.
    """
    shifted = rows.copy()
    shifted["Income"] = rows["Income"] * config.income_factor**strength
    shifted["Age"] = rows["Age"] + config.age_shift * strength
    shifted["Amount"] = rows["Amount"] * config.amount_factor**strength
    renters = (rows["Home"] == "rent").to_numpy()
    current = renters.mean()
    if config.renter_share > current:
        # turn just enough non-renters into renters to reach the row's target share
        convert = strength * (config.renter_share - current) / (1.0 - current)
        chosen = ~renters & (rng.random(len(rows)) < convert)
        home = shifted["Home"].to_numpy(copy=True)
        home[chosen] = "rent"
        shifted["Home"] = home
    return shifted


def flip_goods(
    outcomes: np.ndarray, eligible: np.ndarray, share: float, rng: np.random.Generator
) -> np.ndarray:
    """``outcomes`` with each good of an ``eligible`` row turned bad with probability ``share``."""
    flip = eligible & (outcomes == 0) & (rng.random(outcomes.size) < share)
    return np.where(flip, 1, outcomes)


def downturn_flip_probability(bad_rate: float, factor: float) -> float:
    """The share of goods to turn bad so that a bad rate ``bad_rate`` becomes ``factor`` times it.

    With ``p`` of the goods turned bad the rate is ``b + p (1 - b)``; solving
    ``b + p (1 - b) = factor b`` gives ``p = (factor - 1) b / (1 - b)``, capped at 1.
    """
    if bad_rate >= 1.0:
        return 0.0
    return float(min(1.0, (factor - 1.0) * bad_rate / (1.0 - bad_rate)))


def concept_segment(rows: pd.DataFrame, config: SimulateConfig) -> np.ndarray:
    """The rows whose ``concept_feature`` equals ``concept_value``."""
    values = rows[config.concept_feature].astype("object").astype(str)
    segment: np.ndarray = (values == config.concept_value).to_numpy()
    return segment


def generate_concept(source: ScenarioSource, config: SimulateConfig, n: int, seed: int) -> Traffic:
    """The ``none`` applicants; in the concept segment, good outcomes turn bad."""
    rng = _rng(seed, "concept")
    rows = jitter_rows(resample_rows(source.unseen, n, rng), config.jitter, rng)
    outcomes = flip_goods(
        labels(rows), concept_segment(rows, config), config.concept_flip_share, rng
    )
    return Traffic("concept", clip_to_contract(rows), outcomes)


def generate_downturn(source: ScenarioSource, config: SimulateConfig, n: int, seed: int) -> Traffic:
    """The ``none`` applicants; every good turns bad with the downturn's probability."""
    rng = _rng(seed, "downturn")
    rows = jitter_rows(resample_rows(source.unseen, n, rng), config.jitter, rng)
    share = downturn_flip_probability(float(labels(source.unseen).mean()), config.downturn_factor)
    outcomes = flip_goods(labels(rows), np.ones(len(rows), dtype=bool), share, rng)
    return Traffic("downturn", clip_to_contract(rows), outcomes)


def generate_original(config: SimulateConfig, n: int, seed: int) -> Traffic:
    """Features drawn as the original pipeline drew them; outcomes come after scoring."""
    rng = _rng(seed, "original")
    data: dict[str, np.ndarray] = {}
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
    return Traffic("ordered-tail", clip_to_contract(rows), labels(rows))


def check_scenario(scenario: str) -> None:
    """Refuse a name that is not one of :data:`creditops.config.SCENARIOS`.

    Raises:
        SimulationError: unknown scenario.
    """
    if scenario not in SCENARIOS:
        raise SimulationError(
            f"unknown scenario {scenario!r}: choose one of {', '.join(SCENARIOS)}"
        )


def generate_traffic(
    scenario: str, source: ScenarioSource | None, config: SimulateConfig, n: int, seed: int
) -> Traffic:
    """The traffic of ``scenario``: ``n`` applicants, deterministic by ``seed``.

    Raises:
        SimulationError: unknown scenario, or no source rows for one that needs them.
    """
    if scenario == "original":
        return generate_original(config, n, seed)
    check_scenario(scenario)
    if source is None:
        raise SimulationError(
            f"scenario {scenario!r} needs source rows (the champion's unseen data)"
        )
    generators: dict[str, Callable[[ScenarioSource, SimulateConfig, int, int], Traffic]] = {
        "none": generate_none,
        "covariate": generate_covariate,
        "concept": generate_concept,
        "ordered-tail": generate_ordered_tail,
        "downturn": generate_downturn,
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
