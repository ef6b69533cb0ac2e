"""Which contributions become an applicant's reasons: the largest ones that raise the risk.

The service's JSON reasons and batch scoring's reasons column both rank a
row's contributions with :func:`top_contributions`, so the same applicant gets
the same reasons in the same order from either path.
"""

from __future__ import annotations

import numpy as np


def top_contributions(contributions: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_k`` largest contributions of each row, strongest first.

    Ties keep the sources' order (a stable sort). Only positive entries are
    reasons: a caller stops at the first value that is not above zero, since
    every later one in the row is smaller.

    Args:
        contributions: rows x sources.
        top_k: how many per row at most (capped at the number of sources).

    Returns:
        ``(order, values)``, both rows x k: the source index and the value of
        each row's k largest contributions.
    """
    k = max(0, min(top_k, contributions.shape[1]))
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(contributions, order, axis=1)
