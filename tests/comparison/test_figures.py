"""Champion vs challenger figures on a hand-made log whose answers are counted by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from creditops.comparison.figures import compare, equal_rate_threshold

# ten applicants; the champion declines PD >= 0.5, the challenger (its own cut-off 0.4)
CHAMPION_PD = [0.10, 0.20, 0.30, 0.45, 0.55, 0.60, 0.70, 0.15, 0.35, 0.80]
CHALLENGER_PD = [0.12, 0.50, 0.25, 0.30, 0.35, 0.65, 0.75, 0.45, 0.20, 0.85]
OUTCOMES = ["good", "bad", "good", None, None, None, None, "bad", "good", None]


def frame() -> pd.DataFrame:
    champion = np.array(CHAMPION_PD)
    return pd.DataFrame(
        {
            "month": ["2024-01"] * 5 + ["2024-02"] * 5,
            "champion_version": 1,
            "challenger_version": 2,
            "champion_pd": champion,
            "champion_decision": np.where(champion < 0.5, "approve", "decline"),
            "champion_threshold": 0.5,
            "challenger_pd": CHALLENGER_PD,
            "challenger_threshold": 0.4,
            "Income": [100.0, 120, 140, 90, 60, 50, 40, 130, 110, 30],
            "outcome": OUTCOMES,
        }
    )


def test_swap_sets_at_each_rule_match_the_hand_count() -> None:
    result = compare(frame(), min_rows=3)
    served, at_champion, equal_rate = result.swaps
    # champion approves 0,1,2,3,7,8 (6). Challenger at 0.4 approves 0,2,3,4,8.
    assert (served.swap_in, served.swap_out) == (1, 2)  # in: 4; out: 1, 7
    assert served.agreement == pytest.approx(7 / 10)
    # at the champion's 0.5 the challenger approves 0,2,3,4,7,8: in 4, out 1
    assert (at_champion.swap_in, at_champion.swap_out) == (1, 1)
    # equal approval rate: its 6 lowest PDs (0,2,3,4,7,8) are approved: in 4, out 1
    assert equal_rate.challenger_threshold == pytest.approx(0.50)
    assert (equal_rate.swap_in, equal_rate.swap_out) == (1, 1)
    assert served.swap_in_profile["rows"] == 1
    assert served.swap_in_profile["mean_champion_pd"] == pytest.approx(0.55)
    assert served.swap_out_profile["mean_challenger_pd"] == pytest.approx((0.50 + 0.45) / 2)


def test_realised_figures_use_the_matured_overlap_only() -> None:
    result = compare(frame(), min_rows=3)
    matured = frame().dropna(subset=["outcome"])
    y = (matured["outcome"] == "bad").astype(int)
    assert result.realised["rows"] == 5
    assert result.realised["champion_roc_auc"] == pytest.approx(
        roc_auc_score(y, matured["champion_pd"])
    )
    assert result.realised["challenger_roc_auc"] == pytest.approx(
        roc_auc_score(y, matured["challenger_pd"])
    )
    assert "only for applicants the champion approved" in str(result.realised["note"])
    assert result.estimated["rows"] == 5 and result.estimated["champion_roc_auc"] is not None


def test_too_few_matured_rows_leave_realised_absent_with_the_reason() -> None:
    result = compare(frame(), min_rows=50)
    assert result.realised["champion_roc_auc"] is None
    assert result.realised["absent"] == "5 matured rows < min 50"
    assert "realised" not in result.headline


def test_rank_correlation_and_headline() -> None:
    result = compare(frame(), min_rows=3)
    assert result.spearman == pytest.approx(stats.spearmanr(CHAMPION_PD, CHALLENGER_PD).statistic)
    assert result.months == ["2024-01", "2024-02"]
    assert "agreement 70.0%" in result.headline and "swap-in 1, swap-out 2" in result.headline


def test_equal_rate_threshold_approves_as_many() -> None:
    pds = np.array([0.3, 0.1, 0.2, 0.4])
    assert int((pds < equal_rate_threshold(pds, 2)).sum()) == 2
    assert int((pds < equal_rate_threshold(pds, 4)).sum()) == 4
    assert int((pds < equal_rate_threshold(pds, 0)).sum()) == 0


def test_an_empty_or_mixed_frame_is_refused() -> None:
    with pytest.raises(ValueError, match="no applicant"):
        compare(frame().iloc[:0], min_rows=1)
    mixed = frame()
    mixed.loc[0, "challenger_version"] = 3
    with pytest.raises(ValueError, match="challenger_version"):
        compare(mixed, min_rows=1)
