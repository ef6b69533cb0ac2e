"""The simulated calendar, pure: applicants over months, each with its true outcome.

:func:`build_calendar` spreads the applicants evenly over ``[simulate] months``
months from ``start_date``; each gets an ``application_at`` inside its month
(uniformly, UTC), its features and its TRUE outcome (1 = bad), known for
everyone, declined applicants included; a bad one also gets its default month
on book (uniform over 1..``performance_months``). Positions are in
chronological order.

Before ``drift_start_month`` every scenario draws the same applicants (the
``none`` rows: unseen, resampled, jittered); from that month on:

* ``covariate``: the applicant mix shifts a little more each month, reaching
  the full shift of :func:`~creditops.simulation.scenarios.generate_covariate`
  in the last month (strength ``(month - start + 1) / (months - start + 1)``);
* ``concept``: goods of the concept segment turn bad (``concept_flip_share``);
* ``downturn``: at fixed features the bad rate is multiplied by ``downturn_factor``;
* ``ordered-tail``: applicants come from the raw file's unseen second half.

``original`` draws every applicant as the original pipeline did; its outcomes
depend on the model's decisions, so they are set after scoring
(:meth:`Calendar.with_outcomes`). What a lender observes of these outcomes, and
when, is :mod:`creditops.simulation.outcomes`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd

from creditops.config import SCENARIOS, SimulateConfig
from creditops.errors import SimulationError
from creditops.simulation.scenarios import (
    ScenarioSource,
    Traffic,
    check_scenario,
    clip_to_contract,
    concept_segment,
    downturn_flip_probability,
    flip_goods,
    generate_original,
    jitter_rows,
    labels,
    resample_rows,
    shift_mix,
)


@dataclass(frozen=True)
class Calendar:
    """Applicants over months, in chronological order, with their true outcomes.

    Attributes:
        scenario: the scenario's name.
        start: the calendar's first moment (00:00 UTC of ``start_date``).
        months: how many months it spans.
        features: the 13 contract features, one row per applicant.
        application_at: each applicant's application time (UTC).
        month: each applicant's month of the calendar, 1-based.
        outcomes: the true outcomes (1 = bad); ``None`` for ``original`` until scored.
        default_draw: the month on book a bad defaults at (1..performance window),
            drawn for everyone so that outcomes set after scoring keep their draws.
    """

    scenario: str
    start: datetime
    months: int
    features: pd.DataFrame
    application_at: pd.Series
    month: np.ndarray
    outcomes: np.ndarray | None
    default_draw: np.ndarray

    def __len__(self) -> int:
        return len(self.features)

    @property
    def end(self) -> datetime:
        """The first moment after the calendar (its last month's end)."""
        return month_start(self.start, self.months)

    @property
    def default_month(self) -> np.ndarray:
        """Each applicant's default month on book: 0 for a good (or an unknown) outcome."""
        if self.outcomes is None:
            return np.zeros(len(self), dtype=np.int64)
        return np.where(self.outcomes == 1, self.default_draw, 0)

    def with_outcomes(self, outcomes: np.ndarray) -> Calendar:
        """This calendar with its true outcomes set (``original``, after scoring)."""
        return replace(self, outcomes=np.asarray(outcomes, dtype=np.int64))

    def month_labels(self) -> np.ndarray:
        """Each applicant's application month as ``YYYY-MM``."""
        labels: np.ndarray = self.application_at.dt.strftime("%Y-%m").to_numpy()
        return labels


def month_start(start: datetime, months: int) -> datetime:
    """The first moment of the month ``months`` after ``start``'s month (UTC)."""
    index = start.year * 12 + start.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def calendar_start(day: date) -> datetime:
    """00:00 UTC of the first day of ``day``'s month (a calendar starts on a month)."""
    return datetime(day.year, day.month, 1, tzinfo=UTC)


def applicant_months(n: int, months: int) -> np.ndarray:
    """The 1-based month of each of ``n`` applicants spread evenly over ``months``."""
    return 1 + (np.arange(n) * months) // max(n, 1)


def application_times(start: datetime, month: np.ndarray, rng: np.random.Generator) -> pd.Series:
    """A uniform moment inside each applicant's month, sorted within the month."""
    out = np.empty(month.size, dtype="datetime64[us]")
    for m in np.unique(month):
        where = np.flatnonzero(month == m)
        first = month_start(start, int(m) - 1)
        length = (month_start(start, int(m)) - first).total_seconds()
        offsets = np.sort(rng.random(where.size)) * length * 1e6
        base = np.datetime64(first.replace(tzinfo=None), "us")
        out[where] = base + offsets.astype("timedelta64[us]")
    return pd.Series(pd.to_datetime(out).tz_localize(UTC))


def drift_strength(month: np.ndarray, start_month: int, months: int) -> np.ndarray:
    """0 before ``start_month``; then rising linearly to 1 in the calendar's last month."""
    span = max(months - start_month + 1, 1)
    strength: np.ndarray = np.clip((month - start_month + 1) / span, 0.0, 1.0)
    return strength


def build_calendar(
    scenario: str,
    source: ScenarioSource | None,
    config: SimulateConfig,
    seed: int,
    *,
    total: int | None = None,
) -> Calendar:
    """The calendar of ``scenario``: applicants, application times, true outcomes.

    Args:
        scenario: one of :data:`creditops.config.SCENARIOS`.
        source: the rows drawn from (``None`` for ``original`` only).
        config: the ``[simulate]`` section (calendar, scenario shapes).
        seed: the same seed builds the same calendar.
        total: applicants in all; default ``samples`` if set, else
            ``months x applications_per_month``.

    Raises:
        SimulationError: unknown scenario, or no source rows for one that needs them.
    """
    check_scenario(scenario)
    n = total or config.samples or config.months * config.applications_per_month
    start = calendar_start(config.start_date)
    month = applicant_months(n, config.months)
    rng = np.random.default_rng([seed, SCENARIOS.index(scenario), 7])
    times = application_times(start, month, rng)
    draws = rng.integers(1, config.performance_months + 1, size=n)
    if scenario == "original":
        features = generate_original(config, n, seed).features
        return Calendar(scenario, start, config.months, features, times, month, None, draws)
    if source is None:
        raise SimulationError(
            f"scenario {scenario!r} needs source rows (the champion's unseen data)"
        )
    traffic = _drifted(scenario, source, config, month, seed)
    return Calendar(
        scenario, start, config.months, traffic.features, times, month, traffic.outcomes, draws
    )


def _drifted(
    scenario: str, source: ScenarioSource, config: SimulateConfig, month: np.ndarray, seed: int
) -> Traffic:
    """The ``none`` rows, changed by ``scenario`` from ``drift_start_month`` on."""
    base_rng = np.random.default_rng([seed, SCENARIOS.index("none")])
    rows = jitter_rows(resample_rows(source.unseen, month.size, base_rng), config.jitter, base_rng)
    outcomes = labels(rows)
    rng = np.random.default_rng([seed, SCENARIOS.index(scenario), 8])
    drifted = month >= config.drift_start_month
    if scenario == "covariate":
        strength = drift_strength(month, config.drift_start_month, config.months)
        rows = shift_mix(rows, config, strength, rng)
    elif scenario == "concept":
        eligible = drifted & concept_segment(rows, config)
        outcomes = flip_goods(outcomes, eligible, config.concept_flip_share, rng)
    elif scenario == "downturn":
        share = downturn_flip_probability(
            float(labels(source.unseen).mean()), config.downturn_factor
        )
        outcomes = flip_goods(outcomes, drifted, share, rng)
    elif scenario == "ordered-tail" and drifted.any():
        # months ascend with the position, so the drifted rows are the calendar's tail
        kept = int((~drifted).sum())
        tail = jitter_rows(resample_rows(source.tail, month.size - kept, rng), config.jitter, rng)
        rows = pd.concat([rows.iloc[:kept], tail.loc[:, rows.columns]], ignore_index=True)
        outcomes = labels(rows)
    return Traffic(scenario, clip_to_contract(rows), outcomes)


def calendar_of_traffic(traffic: Traffic, config: SimulateConfig, seed: int) -> Calendar:
    """A one-month calendar (``start_date``'s month) of already generated traffic."""
    start = calendar_start(config.start_date)
    month = np.ones(len(traffic), dtype=np.int64)
    rng = np.random.default_rng([seed, 97])
    times = application_times(start, month, rng)
    draws = rng.integers(1, config.performance_months + 1, size=len(traffic))
    return Calendar(
        traffic.scenario, start, 1, traffic.features, times, month, traffic.outcomes, draws
    )
