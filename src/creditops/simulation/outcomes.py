"""What a lender observes of the true outcomes, and when (pure).

The rules of credit, applied to a calendar's applicants:

* only a granted loan has an outcome (declined applicants never get one; an
  explored applicant was granted, so it does);
* a bad outcome is observed at its default month on book
  (``application_at`` + that many months), a good one when the performance
  window closes (``application_at`` + ``performance_months``);
* a share ``never_share`` of the granted loans is never posted;
* nothing is observed after ``as_of`` (the "now" of the simulation): those
  outcomes are still pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class OutcomeEvents:
    """The outcomes observed by ``as_of``, in the order they were observed.

    Attributes:
        position: the applicants' positions (indexes into the calendar).
        outcome: their outcomes (1 = bad).
        observed_at: when each was observed (UTC).
        pending: granted loans whose outcome is not observed yet at ``as_of``.
        never: granted loans whose outcome is never posted.
    """

    position: np.ndarray
    outcome: np.ndarray
    observed_at: pd.Series
    pending: int
    never: int

    def __len__(self) -> int:
        return int(self.position.size)


def add_months(moments: pd.Series, months: np.ndarray) -> pd.Series:
    """Each moment plus its own whole number of calendar months (day clipped to month end)."""
    out = moments.copy()
    for k in np.unique(months):
        where = months == k
        out[where] = moments[where] + pd.DateOffset(months=int(k))
    return out


def observation_dates(
    application_at: pd.Series,
    outcomes: np.ndarray,
    default_month: np.ndarray,
    performance_months: int,
) -> pd.Series:
    """When each applicant's outcome would be observed if its loan were granted.

    A bad one at its default month on book, a good one when the window closes.
    """
    months = np.where(outcomes == 1, default_month, performance_months)
    return add_months(application_at.reset_index(drop=True), np.asarray(months, dtype=np.int64))


def never_posted(n: int, share: float, seed: int) -> np.ndarray:
    """Which of ``n`` applicants' outcomes are never posted (deterministic by ``seed``)."""
    never: np.ndarray = np.random.default_rng([seed, 98]).random(n) < share
    return never


def outcome_events(
    application_at: pd.Series,
    outcomes: np.ndarray,
    default_month: np.ndarray,
    granted: np.ndarray,
    as_of: datetime,
    *,
    performance_months: int,
    never_share: float = 0.0,
    seed: int = 0,
) -> OutcomeEvents:
    """The outcomes a lender has observed by ``as_of``, for the ``granted`` loans.

    Args:
        application_at: each applicant's application time (UTC).
        outcomes: the true outcomes (1 = bad), known for everyone.
        default_month: a bad's default month on book (1..``performance_months``).
        granted: whether each applicant's loan was granted (decision approve).
        as_of: nothing observed after this moment is returned.
        performance_months: the performance window.
        never_share: the share of granted loans never posted.
        seed: the draw of the never-posted ones.
    """
    granted = np.asarray(granted, dtype=bool)
    observed = observation_dates(application_at, outcomes, default_month, performance_months)
    never = granted & never_posted(len(granted), never_share, seed)
    matured = (observed <= pd.Timestamp(as_of)).to_numpy()
    posted = granted & ~never & matured
    position = np.flatnonzero(posted)
    order = np.argsort(observed.to_numpy()[position], kind="stable")
    position = position[order]
    return OutcomeEvents(
        position=position,
        outcome=np.asarray(outcomes, dtype=np.int64)[position],
        observed_at=observed.iloc[position].reset_index(drop=True),
        pending=int((granted & ~never & ~matured).sum()),
        never=int(never.sum()),
    )
