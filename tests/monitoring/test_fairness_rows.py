"""The monitoring table's monthly fairness rows against an independent groupby."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from creditops.config import FairnessConfig
from creditops.monitoring.fairness_rows import NO_ODDS, fairness_provider, fairness_rows
from creditops.monitoring.table import MonthContext
from creditops.monitoring.vintage import PROVIDERS


def _month(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 70, size=rows)
    approve = rng.random(rows) < np.where(age < 26, 0.45, 0.8)
    explored = ~approve & (rng.random(rows) < 0.2)
    return pd.DataFrame(
        {
            "Age": age,
            "Marital": rng.choice(["married", "single", "widow"], size=rows, p=[0.6, 0.39, 0.01]),
            "decision": np.where(approve | explored, "approve", "decline"),
            "explored": explored,
        }
    )


def _context() -> MonthContext:
    return MonthContext(
        month="2025-03",
        model_version=4,
        as_of=datetime(2025, 6, 1, tzinfo=UTC),
        threshold=0.4,
        reference=pd.DataFrame(),
        reference_scores=None,
        performance_months=12,
        min_rows=100,
    )


def test_monthly_approval_ratios_match_a_groupby() -> None:
    frame = _month(1_500, 5)
    rows = {r.metric: r for r in fairness_rows(frame, _context())}
    assert fairness_rows in PROVIDERS
    # the model's decisions: an explored grant was the model's decline
    approved = (frame["decision"] == "approve") & ~frame["explored"]
    rates = approved.groupby(frame["Marital"]).agg(["mean", "size"])
    kept = rates[rates["size"] >= 30]["mean"]
    for group, rate in kept.items():
        row = rows[f"fairness:approval_ratio:Marital:{group}"]
        assert row.value == pytest.approx(rate / kept.max(), abs=1e-12)
        assert row.kind == "fairness" and row.month == "2025-03" and row.model_version == 4
    assert rows["fairness:dp_ratio:Marital"].value == pytest.approx(
        kept.min() / kept.max(), abs=1e-12
    )
    widow = rows["fairness:approval_ratio:Marital:widow"]
    assert widow.value is None and widow.detail == f"{widow.rows} rows < min 30"
    assert rows["fairness:eo_diff:Age"].value is None
    assert rows["fairness:eo_diff:Age"].detail == NO_ODDS
    assert "fairness:approval_ratio:Age:62+" in rows


def test_a_small_month_has_no_ratio_but_the_reason() -> None:
    rows = fairness_provider(FairnessConfig(min_group_rows=200))(_month(150, 6), _context())
    dp = next(r for r in rows if r.metric == "fairness:dp_ratio:Age")
    assert dp.value is None and "no ratio between groups" in dp.detail
    assert all(r.value is None or np.isfinite(r.value) for r in rows)
