"""Metrics on hand-made arrays, threshold policies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from creditops import evaluate
from creditops.config import ThresholdConfig

Y = np.array([0, 0, 1, 1, 0, 1])
P = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])


def test_auc_gini_ks_by_hand() -> None:
    # pairs (bad, good) ranked right: 8 of 9
    assert evaluate.roc_auc(Y, P) == pytest.approx(8 / 9)
    assert evaluate.gini(Y, P) == pytest.approx(2 * 8 / 9 - 1)
    # at threshold 0.8: 2/3 of bads vs 0 goods declined
    assert evaluate.ks_statistic(Y, P) == pytest.approx(2 / 3)


def test_single_class_gives_nan_not_an_exception() -> None:
    assert math.isnan(evaluate.roc_auc([1, 1], [0.2, 0.3]))
    assert math.isnan(evaluate.ks_statistic([0, 0], [0.2, 0.3]))


def test_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        evaluate.roc_auc([0, 1], [0.5])


def test_confusion_and_class_report() -> None:
    c = evaluate.confusion(Y, P, 0.5)
    assert c == {"tp": 2, "fp": 0, "fn": 1, "tn": 3}
    r = evaluate.class_report(Y, P, 0.5)
    assert r["accuracy"] == pytest.approx(5 / 6)
    assert r["precision_bad"] == 1.0
    assert r["recall_bad"] == pytest.approx(2 / 3)
    assert r["f1_bad"] == pytest.approx(0.8)
    assert r["precision_good"] == pytest.approx(0.75)
    assert r["f1_good"] == pytest.approx(2 * 0.75 / 1.75)


def test_binary_metrics_brier_and_log_loss() -> None:
    m = evaluate.binary_metrics([0, 1], [0.25, 0.5], 0.5)
    assert m["brier"] == pytest.approx((0.25**2 + 0.5**2) / 2)
    assert m["log_loss"] == pytest.approx(-(math.log(0.75) + math.log(0.5)) / 2)
    assert m["threshold"] == 0.5


def test_max_f1_threshold_declines_exactly_the_best_set() -> None:
    threshold = evaluate.choose_threshold(Y, P, ThresholdConfig(policy="max_f1", f1_class="bad"))
    # declining {0.9, 0.8, 0.4, 0.35} gives F1 = 6/7, the best achievable
    assert 0.2 < threshold < 0.35
    assert evaluate.class_report(Y, P, threshold)["f1_bad"] == pytest.approx(6 / 7)


def test_max_f1_of_good_class() -> None:
    config = ThresholdConfig(policy="max_f1", f1_class="good")
    threshold = evaluate.choose_threshold(Y, P, config)
    best = max(evaluate.class_report(Y, P, t)["f1_good"] for t in np.r_[P, 1.01])
    assert evaluate.class_report(Y, P, threshold)["f1_good"] == pytest.approx(best)


def test_min_cost_threshold_follows_the_costs() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(y * 0.3 + rng.normal(0.35, 0.2, 500), 0, 1)
    cheap_bads = evaluate.choose_threshold(
        y, p, ThresholdConfig(policy="min_cost", cost_approve_bad=1, cost_decline_good=5)
    )
    dear_bads = evaluate.choose_threshold(
        y, p, ThresholdConfig(policy="min_cost", cost_approve_bad=5, cost_decline_good=1)
    )
    assert dear_bads < cheap_bads
    config = ThresholdConfig(policy="min_cost", cost_approve_bad=5, cost_decline_good=1)
    chosen = evaluate.expected_cost(y, p, dear_bads, config)
    assert all(
        chosen <= evaluate.expected_cost(y, p, t, config) + 1e-12 for t in np.linspace(0, 1, 101)
    )
