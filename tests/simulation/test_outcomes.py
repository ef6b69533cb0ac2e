"""The rules of credit for outcomes: granted loans only, at maturity, dated, some never posted."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from creditops.simulation.outcomes import add_months, outcome_events


def times(*stamps: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(stamps), utc=True, format="ISO8601"))


# four applicants of 2024-01-15: good, bad at month 3, bad at month 12, good
APPLIED = times("2024-01-15 10:00", "2024-01-15 10:00", "2024-01-15 10:00", "2024-01-15 10:00")
OUTCOMES = np.array([0, 1, 1, 0])
DEFAULT_MONTH = np.array([0, 3, 12, 0])
GRANTED = np.array([True, True, True, False])
LATE = datetime(2030, 1, 1, tzinfo=UTC)


def test_declined_applicants_never_get_an_outcome() -> None:
    found = outcome_events(
        APPLIED, OUTCOMES, DEFAULT_MONTH, np.zeros(4, bool), LATE, performance_months=12
    )
    assert len(found) == 0 and found.pending == 0 and found.never == 0
    mixed = outcome_events(APPLIED, OUTCOMES, DEFAULT_MONTH, GRANTED, LATE, performance_months=12)
    assert 3 not in set(mixed.position.tolist())
    assert sorted(mixed.position.tolist()) == [0, 1, 2]


def test_bad_at_its_default_month_good_when_the_window_closes() -> None:
    found = outcome_events(APPLIED, OUTCOMES, DEFAULT_MONTH, GRANTED, LATE, performance_months=12)
    observed = dict(zip(found.position.tolist(), found.observed_at.tolist(), strict=True))
    assert observed[1] == pd.Timestamp("2024-04-15 10:00", tz="UTC")  # 3 months on book
    assert observed[2] == pd.Timestamp("2025-01-15 10:00", tz="UTC")
    assert observed[0] == pd.Timestamp("2025-01-15 10:00", tz="UTC")  # the window closed
    # posted in the order observed: the early default first, then the two at month 12
    assert found.position.tolist() == [1, 0, 2] and found.outcome.tolist() == [1, 0, 1]


def test_nothing_is_observed_after_as_of_it_is_pending() -> None:
    just_before = datetime(2025, 1, 15, 9, 59, tzinfo=UTC)
    early = outcome_events(
        APPLIED, OUTCOMES, DEFAULT_MONTH, GRANTED, just_before, performance_months=12
    )
    assert early.position.tolist() == [1] and early.outcome.tolist() == [1]
    assert early.pending == 2
    at_maturity = outcome_events(
        APPLIED,
        OUTCOMES,
        DEFAULT_MONTH,
        GRANTED,
        datetime(2025, 1, 15, 10, tzinfo=UTC),
        performance_months=12,
    )
    assert len(at_maturity) == 3 and at_maturity.pending == 0
    assert (at_maturity.observed_at >= APPLIED.iloc[0]).all()


def test_a_share_of_granted_outcomes_is_never_posted() -> None:
    n = 20_000
    applied = pd.Series(pd.to_datetime(["2024-01-01"] * n, utc=True))
    outcomes = np.zeros(n, dtype=np.int64)
    granted = np.arange(n) % 2 == 0
    found = outcome_events(
        applied,
        outcomes,
        np.zeros(n, np.int64),
        granted,
        LATE,
        performance_months=12,
        never_share=0.1,
        seed=3,
    )
    assert found.never / granted.sum() == pytest.approx(0.1, abs=0.01)
    assert len(found) + found.never == granted.sum()
    assert granted[found.position].all()
    again = outcome_events(
        applied,
        outcomes,
        np.zeros(n, np.int64),
        granted,
        LATE,
        performance_months=12,
        never_share=0.1,
        seed=3,
    )
    np.testing.assert_array_equal(found.position, again.position)


def test_months_are_calendar_months_clipped_to_the_month_end() -> None:
    moved = add_months(times("2024-01-31", "2024-03-15 12:30"), np.array([1, 12]))
    assert moved.tolist() == [
        pd.Timestamp("2024-02-29", tz="UTC"),
        pd.Timestamp("2025-03-15 12:30", tz="UTC"),
    ]
