"""The label-free performance estimate: known answers, its band's coverage, the provider's reasons."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from creditops.monitoring.estimate import (
    METRICS,
    estimate_performance,
    estimate_rows,
    expected_roc_auc,
)
from creditops.monitoring.table import MonthContext


def _context(min_rows: int = 100, threshold: float = 0.4) -> MonthContext:
    return MonthContext(
        month="2026-03",
        model_version=2,
        as_of=datetime(2026, 12, 1, tzinfo=UTC),
        threshold=threshold,
        reference=pd.DataFrame(),
        reference_scores=None,
        performance_months=12,
        min_rows=min_rows,
    )


def _brute_force_auc(p: np.ndarray, s: np.ndarray) -> float:
    """Every ordered pair (i bad, j good), weighted by its probability; a tie counts one half."""
    wins = pairs = 0.0
    for i in range(p.size):
        for j in range(p.size):
            if i != j:
                weight = p[i] * (1 - p[j])
                pairs += weight
                wins += weight * (1.0 if s[i] > s[j] else 0.5 if s[i] == s[j] else 0.0)
    return wins / pairs


def test_expected_auc_equals_the_brute_force_pair_count_with_ties() -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(1.0, 4.0, 120)
    scores = np.round(p, 2)  # many ties
    assert expected_roc_auc(p, scores) == pytest.approx(_brute_force_auc(p, scores), abs=1e-12)
    assert expected_roc_auc(p) == pytest.approx(_brute_force_auc(p, p), abs=1e-12)


def test_a_constant_score_has_an_expected_auc_of_one_half() -> None:
    assert expected_roc_auc(np.full(40, 0.25)) == pytest.approx(0.5)
    estimate = estimate_performance(np.full(400, 0.25), threshold=0.5, seed=1)
    # every draw ties every pair: the realised AUC is 0.5 whatever the outcomes
    assert (estimate.roc_auc.value, estimate.roc_auc.lower, estimate.roc_auc.upper) == (
        pytest.approx(0.5),
        pytest.approx(0.5),
        pytest.approx(0.5),
    )


def test_perfectly_calibrated_scores_put_the_realised_auc_inside_the_band_about_95_percent() -> (
    None
):
    rng = np.random.default_rng(11)
    inside = []
    for trial in range(300):
        p = rng.beta(1.2, 4.0, 300)
        estimate = estimate_performance(p, threshold=0.4, draws=200, seed=trial)
        realised = roc_auc_score(rng.random(p.size) < p, p)  # the month's outcomes, unseen
        band = estimate.roc_auc
        assert band.lower is not None and band.upper is not None
        inside.append(band.lower <= realised <= band.upper)
    assert 0.90 <= np.mean(inside) <= 0.99


def test_f1_approval_and_bad_rate_follow_the_expected_counts() -> None:
    # 100 declined at PD 0.9, 300 approved at PD 0.1: TP = 90, FP = 10, FN = 30
    p = np.array([0.9] * 100 + [0.1] * 300)
    estimate = estimate_performance(p, threshold=0.5, seed=0)
    assert estimate.f1_bad.value == pytest.approx(180 / (180 + 10 + 30))
    assert estimate.approval_rate.value == pytest.approx(0.75)
    assert estimate.bad_rate_approved.value == pytest.approx(0.1)
    for figure in (estimate.f1_bad, estimate.approval_rate, estimate.bad_rate_approved):
        assert figure.lower is not None and figure.upper is not None
        assert figure.lower <= figure.value <= figure.upper  # type: ignore[operator]


def test_no_approved_applicant_gives_no_bad_rate_and_says_why() -> None:
    estimate = estimate_performance(np.full(50, 0.8), threshold=0.5)
    assert estimate.bad_rate_approved.value is None
    assert estimate.bad_rate_approved.detail == "0 approved rows"


def _month_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    p = rng.beta(1.2, 4.0, rows)
    return pd.DataFrame(
        {"probability": p, "decision": np.where(p < 0.4, "approve", "decline"), "outcome": None}
    )


def test_the_provider_writes_estimated_rows_with_bands_and_repeats_itself() -> None:
    frame = _month_frame(500)
    rows = estimate_rows(frame, _context())
    assert [r.metric for r in rows] == list(METRICS)
    for row in rows:
        assert row.kind == "estimated" and row.rows == 500
        assert row.value is not None and row.lower is not None and row.upper is not None
        assert row.lower <= row.value <= row.upper
    assert estimate_rows(frame, _context()) == rows  # the draws are seeded by (month, version)


def test_the_provider_counts_explored_grants_as_approved() -> None:
    frame = _month_frame(500)
    frame.loc[frame.index[frame["decision"] == "decline"][:10], "decision"] = "approve"
    rows = {r.metric: r for r in estimate_rows(frame, _context())}
    assert rows["est_approval_rate"].value == pytest.approx(np.mean(frame["decision"] == "approve"))
    approved = frame.loc[frame["decision"] == "approve", "probability"]
    assert rows["est_bad_rate_approved"].value == pytest.approx(approved.mean())


def test_too_few_rows_give_absent_figures_with_the_reason() -> None:
    rows = estimate_rows(_month_frame(12), _context(min_rows=100))
    assert [r.metric for r in rows] == list(METRICS)
    assert all(r.value is None and r.detail == "12 rows < min 100" for r in rows)


def test_a_version_without_a_calibrator_gets_no_estimate_and_says_why() -> None:
    rows = estimate_rows(_month_frame(500), _context(), calibrated=False)
    assert all(r.value is None and r.lower is None for r in rows)
    assert all("no calibrator" in r.detail for r in rows)
