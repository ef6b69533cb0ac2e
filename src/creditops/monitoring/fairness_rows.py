"""The monitoring table's fairness rows: each month's approval rates by protected group.

A month provider (:data:`creditops.monitoring.vintage.PROVIDERS`): from one
(month, version)'s log rows, :func:`creditops.fairness.fairness_figures` on
the model's own decisions (an explored row, granted against a decline, counts
as the decline the model made). Rows, for each protected attribute:

* ``fairness:approval_ratio:<attribute>:<group>``: the group's approval rate
  over the most-approved group's (``rows`` = the group's applicants);
* ``fairness:dp_ratio:<attribute>``: the lowest of those (the four-fifths screen);
* ``fairness:eo_diff:<attribute>``: always absent here: outcomes exist only for
  granted loans, so true/false positive rates by group cannot be measured on
  the traffic (the training and gate figures have them).

A group under ``min_group_rows`` applicants, or a month with fewer than two
such groups, gets value None with the reason in ``detail``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from creditops.config import FairnessConfig
from creditops.fairness import fairness_figures
from creditops.monitoring.table import MonitoringRow, MonthContext, Provider

NO_ODDS = "outcomes are known only for granted loans: no equalized odds on traffic"


def model_approvals(frame: pd.DataFrame) -> np.ndarray:
    """True where the model approved: decision "approve" and not explored."""
    approved = np.asarray(frame["decision"].astype(str).to_numpy() == "approve", dtype=bool)
    if "explored" in frame.columns:
        explored = frame["explored"].astype("boolean").fillna(False).to_numpy(dtype=bool)
        approved &= ~explored
    return approved


def fairness_provider(config: FairnessConfig) -> Provider:
    """The month provider for ``config``'s protected attributes, bands and group minimum."""

    def rows(frame: pd.DataFrame, ctx: MonthContext) -> list[MonitoringRow]:
        report = fairness_figures(frame, model_approvals(frame), None, config)
        out: list[MonitoringRow] = []

        def row(metric: str, value: float | None, rows: int, detail: str) -> MonitoringRow:
            return MonitoringRow(
                ctx.month, ctx.model_version, metric, "fairness", value, rows=rows, detail=detail
            )

        for figures in report.attributes:
            name = figures.attribute
            for group in figures.groups:
                out.append(
                    row(
                        f"fairness:approval_ratio:{name}:{group.group}",
                        group.approval_ratio,
                        group.rows,
                        group.reason if group.approval_ratio is None else "",
                    )
                )
            out.append(
                row(f"fairness:dp_ratio:{name}", figures.dp_ratio, len(frame), figures.reason)
            )
            out.append(row(f"fairness:eo_diff:{name}", None, len(frame), NO_ODDS))
        return out

    return rows


def fairness_rows(frame: pd.DataFrame, ctx: MonthContext) -> list[MonitoringRow]:
    """The month provider with ``[fairness]``'s defaults (the one :data:`PROVIDERS` runs)."""
    return fairness_provider(FairnessConfig())(frame, ctx)
