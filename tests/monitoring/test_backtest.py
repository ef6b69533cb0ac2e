"""PD backtesting: the tests against independent sums, the grades, maturity and the reasons."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditops.config import MonitorConfig
from creditops.monitoring.backtest import (
    backtest,
    backtest_png,
    backtest_rows,
    backtest_table,
    binomial_p,
    configured,
    grade_edges,
    hosmer_lemeshow,
    jeffreys_p,
    traffic_light,
)
from creditops.monitoring.estimate import estimate_rows
from creditops.monitoring.table import MonitoringRow, MonthContext
from creditops.monitoring.vintage import compute_rows

AS_OF = datetime(2027, 6, 1, tzinfo=UTC)


def _context(reference_scores: np.ndarray | None) -> MonthContext:
    return MonthContext(
        month="2026-03",
        model_version=1,
        as_of=AS_OF,
        threshold=0.5,
        reference=pd.DataFrame(),
        reference_scores=reference_scores,
        performance_months=12,
        min_rows=100,
    )


@pytest.mark.parametrize(("bads", "rows", "pd_"), [(3, 40, 0.05), (12, 100, 0.08), (0, 25, 0.02)])
def test_binomial_p_is_the_upper_tail_of_the_binomial(bads: int, rows: int, pd_: float) -> None:
    tail = sum(math.comb(rows, k) * pd_**k * (1 - pd_) ** (rows - k) for k in range(bads, rows + 1))
    assert binomial_p(bads, rows, pd_) == pytest.approx(tail, rel=1e-9)


@pytest.mark.parametrize(("bads", "rows", "pd_"), [(3, 40, 0.05), (12, 100, 0.08), (7, 30, 0.1)])
def test_jeffreys_p_is_the_beta_posterior_below_the_pd(bads: int, rows: int, pd_: float) -> None:
    # the Beta(bads + 1/2, rows - bads + 1/2) density integrated numerically from 0 to the PD
    a, b = bads + 0.5, rows - bads + 0.5
    x = np.linspace(0.0, pd_, 200_001)
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    density = np.exp(log_norm + (a - 1) * np.log(np.maximum(x, 1e-300)) + (b - 1) * np.log1p(-x))
    integral = float(np.sum((density[1:] + density[:-1]) / 2 * np.diff(x)))
    assert jeffreys_p(bads, rows, pd_) == pytest.approx(integral, rel=1e-5)


def test_hosmer_lemeshow_on_a_hand_example() -> None:
    # (10 - 12)^2 / (12 * 0.88) + (30 - 25)^2 / (25 * 0.75) = 1.712121...; chi2(2) sf = exp(-x / 2)
    statistic, p_value = hosmer_lemeshow(
        np.array([10, 30]), np.array([100, 100]), np.array([12, 25])
    )
    assert statistic == pytest.approx(4 / 10.56 + 25 / 18.75)
    assert p_value == pytest.approx(math.exp(-statistic / 2))


def test_the_traffic_light_turns_at_95_and_99_9_percent() -> None:
    assert [traffic_light(p, 0.05, 0.001) for p in (0.2, 0.05, 0.049, 0.001, 0.0009)] == [
        "green",
        "green",
        "yellow",
        "yellow",
        "red",
    ]


def test_grades_are_the_reference_quantiles_and_too_small_ones_say_why() -> None:
    edges = grade_edges(np.linspace(0.0, 1.0, 1001), 4)
    assert edges == pytest.approx([0.25, 0.5, 0.75])
    pds = np.array([0.1] * 30 + [0.3] * 12 + [0.6] * 30 + [0.9] * 30)
    result = backtest(pds, np.zeros(pds.size, dtype=bool), edges, MonitorConfig())
    assert [(b.band, b.rows) for b in result.bands] == [
        ("g01", 30),
        ("g02", 12),
        ("g03", 30),
        ("g04", 30),
    ]
    assert result.bands[1].predicted is None and result.bands[1].detail == "12 rows < min 20"
    assert result.tested == 3 and result.hosmer_lemeshow_p is not None


def _log(rows: int, pd_: float, bad_rate: float, seed: int, applied: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    application_at = pd.Timestamp(applied, tz="UTC")
    bad = rng.random(rows) < bad_rate
    return pd.DataFrame(
        {
            "probability": np.full(rows, pd_),
            "decision": "approve",
            "outcome": np.where(bad, "bad", "good"),
            "application_at": application_at,
            "observed_at": application_at + pd.DateOffset(months=12),
            "explored": False,
        }
    )


def test_a_doubled_bad_rate_is_red_and_counted() -> None:
    frame = _log(400, 0.10, 0.25, seed=1, applied="2026-03-10")
    rows = {r.metric: r for r in backtest_rows(frame, _context(np.linspace(0.01, 0.5, 200)))}
    tested = [r for m, r in rows.items() if m.startswith("backtest:g") and r.value is not None]
    assert len(tested) == 1 and tested[0].kind == "backtest" and tested[0].rows == 400
    detail = json.loads(tested[0].detail)
    assert detail["light"] == "red" and detail["predicted"] == pytest.approx(0.10)
    assert detail["bads"] == round(tested[0].value * 400)  # type: ignore[operator]
    assert rows["backtest:red_bands"].value == 1.0
    assert rows["backtest:hosmer_lemeshow_p"].value is not None
    assert rows["backtest:hosmer_lemeshow_p"].value < 0.001


def test_only_matured_outcomes_of_granted_loans_count() -> None:
    matured = _log(100, 0.10, 0.10, seed=2, applied="2026-03-10")
    declined = _log(50, 0.10, 1.0, seed=3, applied="2026-03-10").assign(decision="decline")
    # applied later: the window closes after AS_OF, so early defaults are left out
    immature = _log(50, 0.10, 1.0, seed=4, applied="2026-07-10").assign(
        observed_at=pd.Timestamp("2026-10-10", tz="UTC")  # early defaults, posted by AS_OF
    )
    posted_later = _log(50, 0.10, 1.0, seed=5, applied="2026-03-10").assign(
        observed_at=pd.Timestamp("2027-07-01", tz="UTC")
    )
    frame = pd.concat([matured, declined, immature, posted_later], ignore_index=True)
    rows = backtest_rows(frame, _context(np.array([0.5])))
    assert {r.rows for r in rows if r.metric == "backtest:hosmer_lemeshow_p"} == {100}


def test_a_month_without_matured_outcomes_says_why() -> None:
    frame = _log(300, 0.10, 0.1, seed=6, applied="2027-01-10")
    rows = {r.metric: r for r in backtest_rows(frame, _context(np.linspace(0.01, 0.5, 200)))}
    assert all(r.value is None for r in rows.values())
    assert json.loads(rows["backtest:g01"].detail)["reason"] == "0 rows < min 20"
    assert "0 matured rows" in rows["backtest:red_bands"].detail


def test_no_reference_pds_and_no_edges_give_the_reason() -> None:
    rows = backtest_rows(_log(300, 0.10, 0.1, seed=7, applied="2026-03-10"), _context(None))
    assert [r.metric for r in rows] == [
        "backtest:hosmer_lemeshow_p",
        "backtest:red_bands",
        "backtest:yellow_bands",
    ]
    assert all(r.value is None and "no reference PDs" in r.detail for r in rows)


def test_explicit_edges_replace_the_quantiles() -> None:
    frame = _log(300, 0.10, 0.1, seed=8, applied="2026-03-10")
    config = MonitorConfig(backtest_edges=[0.05, 0.2])
    rows = backtest_rows(frame, _context(None), config=config)
    bands = [r for r in rows if r.metric.startswith("backtest:g")]
    assert [r.metric for r in bands] == ["backtest:g01", "backtest:g02", "backtest:g03"]
    assert json.loads(bands[1].detail)["pd_from"] == 0.05 and bands[1].rows == 300


def test_well_calibrated_grades_stay_green() -> None:
    rng = np.random.default_rng(9)
    p = rng.beta(1.2, 6.0, 2_000)
    bad = rng.random(p.size) < p
    result = backtest(p, bad, grade_edges(p, 10), MonitorConfig())
    assert result.count("red") == 0 and result.count("yellow") <= 2
    assert result.hosmer_lemeshow_p is not None and result.hosmer_lemeshow_p > 0.01


def test_edges_must_increase_inside_zero_one() -> None:
    with pytest.raises(ValueError, match="must increase"):
        MonitorConfig(backtest_edges=[0.2, 0.1])
    with pytest.raises(ValueError, match=r"inside \(0, 1\)"):
        MonitorConfig(backtest_edges=[0.0, 0.1])


def test_configured_providers_read_the_config_and_keep_the_others() -> None:
    frame = _log(300, 0.10, 0.1, seed=10, applied="2026-03-10")

    def other(_frame: pd.DataFrame, _ctx: MonthContext) -> list[MonitoringRow]:
        return []

    providers = configured((other, backtest_rows), MonitorConfig(backtest_edges=[0.05, 0.2]))
    assert providers[0] is other
    bands = [
        r.metric for r in providers[1](frame, _context(None)) if r.metric.startswith("backtest:g")
    ]
    assert bands == ["backtest:g01", "backtest:g02", "backtest:g03"]


def test_the_table_and_figure_show_the_latest_tested_month(tmp_path: Path) -> None:
    old = backtest_rows(
        _log(300, 0.10, 0.25, seed=11, applied="2026-02-10"), _context(np.array([0.5]))
    )
    old = [replace(r, month="2026-02") for r in old]
    new = backtest_rows(
        _log(300, 0.10, 0.10, seed=12, applied="2026-03-10"), _context(np.array([0.5]))
    )
    table = backtest_table(old + new)
    assert list(table["month"]) == ["2026-02", "2026-03"]  # one tested grade each; g02 is empty
    assert table.iloc[0]["light"] == "red" and table.iloc[0]["rows"] == 300
    path = backtest_png(old + new, tmp_path / "reports" / "backtest.png")
    assert path is not None and path.stat().st_size > 1_000
    immature = backtest_rows(_log(300, 0.1, 0.1, seed=13, applied="2027-01-10"), _context(None))
    assert backtest_png(immature, tmp_path / "none.png") is None


def test_the_estimate_and_backtest_providers_run_in_the_monthly_computation() -> None:
    log = pd.concat(
        [
            _log(300, 0.10, 0.1, seed=14, applied="2026-02-10"),
            _log(300, 0.10, 0.1, seed=15, applied="2026-03-10"),
        ],
        ignore_index=True,
    ).assign(created_at=lambda f: f["application_at"], model_version=1)
    config = MonitorConfig(backtest_edges=[0.05, 0.2])

    def context_for(month: str, version: int) -> MonthContext:
        return replace(_context(None), month=month, model_version=version)

    providers = configured((estimate_rows, backtest_rows), config)
    rows = compute_rows(log, context_for, providers)
    for month in ("2026-02", "2026-03"):
        metrics = {r.metric for r in rows if r.month == month}
        assert {"est_roc_auc", "backtest:g02", "backtest:hosmer_lemeshow_p"} <= metrics
