"""The calibration step: its figures against hand computations, its map, its choice, the wrapper."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from creditops import calibration
from creditops.data import Dataset, split_dataset
from creditops.features import build_pipeline


def test_ece_of_two_bins_by_hand() -> None:
    # bins by rank: {0.1, 0.2} (bad rate 1/2, mean PD 0.15) and {0.7, 0.9} (1, 0.8)
    y = [0, 1, 1, 1]
    p = [0.1, 0.2, 0.7, 0.9]
    assert calibration.expected_calibration_error(y, p, bins=2) == pytest.approx(
        0.5 * 0.35 + 0.5 * 0.2, abs=1e-12
    )


def test_ece_of_ten_equal_frequency_bins_by_hand() -> None:
    # one row per bin: the ECE is the mean of |outcome - PD|, whatever the rows' order
    p = np.array([0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85, 0.95])
    y = np.array([0, 0, 0, 1, 0, 1, 1, 0, 1, 1])
    gaps = [0.05, 0.15, 0.25, 0.65, 0.45, 0.45, 0.35, 0.75, 0.15, 0.05]
    order = np.random.default_rng(0).permutation(10)
    assert calibration.expected_calibration_error(y[order], p[order]) == pytest.approx(
        sum(gaps) / 10, abs=1e-12
    )


def test_ece_of_a_calibrated_score_is_zero() -> None:
    # 10 bins of 10 rows; in each, the bad rate equals the (constant) PD
    p = np.repeat(np.arange(1, 11) / 10.0, 10)
    y = np.concatenate([np.r_[np.ones(k), np.zeros(10 - k)] for k in range(1, 11)])
    assert calibration.expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)


def test_ece_noise_floor_matches_the_binomial_mean_absolute_deviation() -> None:
    # a constant PD of 1/2 on 1000 rows: 10 bins of 100 rows, each bin's gap is
    # |Binomial(100, 1/2) / 100 - 1/2|, whose mean scipy gives exactly
    from scipy.stats import binom

    counts = np.arange(101)
    expected = float(np.sum(np.abs(counts / 100 - 0.5) * binom.pmf(counts, 100, 0.5)))
    floor = calibration.ece_noise_floor(np.full(1000, 0.5), draws=2000, seed=1)
    assert floor == pytest.approx(expected, abs=0.002)


def test_ece_noise_floor_of_certain_pds_is_zero() -> None:
    # PDs of exactly 0 or 1 draw outcomes equal to themselves: no gap in any bin
    assert calibration.ece_noise_floor(np.r_[np.zeros(50), np.ones(50)]) == 0.0


def test_ece_noise_floor_refuses_an_empty_sample() -> None:
    with pytest.raises(ValueError, match="0 probabilities"):
        calibration.ece_noise_floor(np.array([]))


def test_brier_score_is_the_mean_squared_gap() -> None:
    assert calibration.brier_score([0, 1, 1], [0.2, 0.6, 1.0]) == pytest.approx(
        (0.04 + 0.16 + 0.0) / 3, abs=1e-12
    )


def test_figures_refuse_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 outcome"):
        calibration.expected_calibration_error([0, 1], [0.1, 0.2, 0.3])


def test_reliability_curve_is_sklearns_quantile_curve() -> None:
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(1)
    p = rng.uniform(size=500)
    y = (rng.uniform(size=500) < p).astype(int)
    predicted, observed = calibration.reliability_curve(y, p)
    expected_observed, expected_predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    assert np.array_equal(predicted, expected_predicted)
    assert np.array_equal(observed, expected_observed)


def _sample(n: int, truth: object, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores uniform on (0, 1) and outcomes drawn from ``truth(raw)``."""
    rng = np.random.default_rng(seed)
    raw = rng.uniform(0.01, 0.99, size=n)
    y = (rng.uniform(size=n) < truth(raw)).astype(np.int64)  # type: ignore[operator]
    return raw, y


def test_the_maps_are_sklearns_predictions() -> None:
    raw, y = _sample(2000, lambda r: r**2, 2)
    grid = np.linspace(-0.1, 1.1, 1001)
    iso = calibration.fit_calibrator("isotonic", raw, y)
    np.testing.assert_allclose(
        calibration.calibrator_map("isotonic", iso)(grid), iso.predict(grid), rtol=0, atol=1e-15
    )
    platt = calibration.fit_calibrator("sigmoid", raw, y)
    inner = np.clip(grid, 1e-12, 1 - 1e-12)
    np.testing.assert_allclose(
        calibration.calibrator_map("sigmoid", platt)(grid),
        platt.predict_proba(logit(inner)[:, None])[:, 1],
        rtol=0,
        atol=1e-12,
    )


def test_auto_picks_sigmoid_when_the_truth_is_a_logistic_distortion() -> None:
    raw, y = _sample(4000, lambda r: expit(0.5 * logit(r) - 1.0), 3)
    choice = calibration.choose_method(raw, y, folds=5, seed=0)
    assert choice.method == "sigmoid"
    assert choice.cv_brier["sigmoid"] < choice.cv_brier["isotonic"]


def test_auto_picks_isotonic_when_the_truth_is_a_step() -> None:
    raw, y = _sample(4000, lambda r: np.where(r < 0.6, 0.05, 0.7), 4)
    choice = calibration.choose_method(raw, y, folds=5, seed=0)
    assert choice.method == "isotonic"
    assert choice.cv_brier["isotonic"] < choice.cv_brier["sigmoid"]


def test_cv_ece_is_the_ece_of_each_methods_held_out_pds() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    raw, y = _sample(3000, lambda r: expit(0.7 * logit(r) + 0.3), 6)
    choice = calibration.choose_method(raw, y, folds=5, seed=2)
    held_out = np.empty_like(raw)  # Platt scaling by hand, on the same folds
    splits = StratifiedKFold(n_splits=5, shuffle=True, random_state=2).split(raw[:, None], y)
    for fit_rows, score_rows in splits:
        x = logit(np.clip(raw, 1e-12, 1 - 1e-12))[:, None]
        platt = LogisticRegression(C=np.inf).fit(x[fit_rows], y[fit_rows])
        held_out[score_rows] = platt.predict_proba(x[score_rows])[:, 1]
    order = np.argsort(held_out, kind="stable")
    gaps = [abs(y[g].mean() - held_out[g].mean()) * g.size for g in np.array_split(order, 10)]
    assert choice.cv_ece["sigmoid"] == pytest.approx(sum(gaps) / raw.size, abs=1e-9)
    assert set(choice.cv_ece) == set(choice.cv_ece_noise_floor) == {"isotonic", "sigmoid"}
    # the truth is a logistic distortion: Platt's held-out PDs are as right as a perfect PD's
    assert choice.cv_ece["sigmoid"] < 2 * choice.cv_ece_noise_floor["sigmoid"]


def test_ece_noise_share_is_the_binomial_tail_with_one_bin() -> None:
    from scipy.stats import binom

    # one bin of 100 rows at PD 0.5: ECE = |K/100 - 0.5| >= 0.095 when K <= 40 or K >= 60
    p = np.full(100, 0.5)
    share = calibration.ece_noise_share(p, 0.095, draws=4000, seed=3, bins=1)
    expected = binom.cdf(40, 100, 0.5) + binom.sf(59, 100, 0.5)
    assert share == pytest.approx(expected, abs=0.015)
    assert calibration.ece_noise_share(p, 0.0, draws=50) == 1.0
    assert calibration.ece_noise_share(p, 0.6, draws=50) == 0.0


def test_unknown_method_is_refused() -> None:
    raw, y = _sample(100, lambda r: r, 5)
    with pytest.raises(ValueError, match=r"'beta'.*isotonic, sigmoid"):
        calibration.fit_calibrator("beta", raw, y)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_the_calibrated_model_wraps_its_pipeline(credit_dataset: Dataset, method: str) -> None:
    split = split_dataset(credit_dataset, 0.2, 0)
    pipeline = build_pipeline("logreg", {"C": 1.0}, seed=0).fit(split.X_train, split.y_train)
    raw_train = pipeline.predict_proba(split.X_train)[:, 1]
    model, _ = calibration.calibrated_model(
        pipeline, method, raw_train, split.y_train, folds=3, seed=0
    )
    X = split.X_test
    raw = pipeline.predict_proba(X)[:, 1]
    proba = model.predict_proba(X)
    assert np.array_equal(model.raw_proba(X), raw)
    np.testing.assert_allclose(proba[:, 1], model.calibrate(raw), rtol=0, atol=0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    order = np.argsort(raw)
    assert np.all(np.diff(proba[order, 1]) >= -1e-12)  # monotone: the ranking holds
    assert list(model.classes_) == [0, 1] and model.method == method
    assert calibration.unwrap(model) == (pipeline, model.calibrate)
    assert calibration.unwrap(pipeline) == (pipeline, None)
    assert calibration.method_of(model) == method and calibration.method_of(pipeline) == "none"
