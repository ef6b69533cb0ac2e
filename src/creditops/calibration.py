"""Calibrated probabilities of default: the calibrator, its choice, and its figures.

A model's raw score ranks applicants well but need not be a probability: a
random forest's vote share or a class-weighted booster is systematically off.
The calibration step maps the raw score to a probability of default (PD)
that matches the observed bad rate. It is fitted on the out-of-fold
predictions of the training split (never on the test split) and saved with
the fitted pipeline in one :class:`CalibratedModel`, the model that is logged
and registered, so serving and batch apply the same map.

Two methods: ``isotonic`` (a monotone step function, sklearn's
``IsotonicRegression``) and ``sigmoid`` (Platt scaling: a logistic
regression on the logit of the raw score). Both are monotone, so the ranking
of applicants (ROC AUC, the reasons' order) is kept; :func:`choose_method`
picks the one with the lower Brier score by cross-validation on the
out-of-fold predictions.

A version registered before calibration existed is a plain sklearn
``Pipeline``; :func:`unwrap` lets every caller treat both alike.

Figures on a labelled sample: :func:`expected_calibration_error` (10
equal-frequency bins), :func:`brier_score` and :func:`reliability_curve`;
:func:`ece_noise_floor`, the ECE a perfectly calibrated PD shows on as many
rows, to read a test-split ECE against.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from sklearn.base import BaseEstimator, ClassifierMixin

if TYPE_CHECKING:
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

Method = Literal["isotonic", "sigmoid"]
METHODS: tuple[Method, ...] = ("isotonic", "sigmoid")
_METHOD_NAMES: dict[str, Method] = {m: m for m in METHODS}
Calibrate = Callable[[np.ndarray], np.ndarray]
"""A vectorised map from raw probabilities of bad to calibrated PDs."""

# the version tag naming a registered version's calibration ("none": a plain pipeline)
CALIBRATION_TAG = "calibration"
ECE_BINS = 10
# raw scores of exactly 0 or 1 have an infinite logit: sigmoid calibration clips them first
_LOGIT_EPS = 1e-12


class CalibratedModel(BaseEstimator, ClassifierMixin):  # type: ignore[misc]
    """A fitted pipeline and the calibrator of its probability of bad: the registered model.

    Attributes:
        pipeline: the fitted preprocessing + estimator pipeline (raw scores).
        method: ``isotonic`` or ``sigmoid``.
        calibrator: the fitted sklearn ``IsotonicRegression`` or
            ``LogisticRegression`` (on the logit of the raw score).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        method: Method,
        calibrator: IsotonicRegression | LogisticRegression,
    ) -> None:
        self.pipeline = pipeline
        self.method = method
        self.calibrator = calibrator

    @property
    def classes_(self) -> np.ndarray:
        """The pipeline's classes (``[0, 1]``: 1 = bad)."""
        return np.asarray(self.pipeline.classes_)

    def raw_proba(self, X: pd.DataFrame) -> np.ndarray:
        """The pipeline's own, uncalibrated probability of bad for each row."""
        return np.asarray(self.pipeline.predict_proba(X)[:, 1], dtype=np.float64)

    def calibrate(self, p: np.ndarray) -> np.ndarray:
        """Calibrated PDs of raw probabilities of bad (any shape; monotone non-decreasing)."""
        return calibrator_map(self.method, self.calibrator)(p)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """``[P(good), P(bad)]`` per row, P(bad) calibrated (the shape of the pipeline's)."""
        pd_bad = self.calibrate(self.raw_proba(X))
        return np.column_stack([1.0 - pd_bad, pd_bad])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """The more likely class of each row (decisions use the version's threshold instead)."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)]


def calibrator_map(method: str, calibrator: IsotonicRegression | LogisticRegression) -> Calibrate:
    """The fitted calibrator as a numpy function (what serving applies, row by row or in bulk).

    Isotonic: linear interpolation between the fitted thresholds, clipped at
    both ends (exactly ``IsotonicRegression.predict`` with ``out_of_bounds="clip"``,
    without its per-call overhead). Sigmoid: ``expit(a * logit(p) + b)``.
    """
    if method == "isotonic":
        xs = np.asarray(calibrator.X_thresholds_, dtype=np.float64)
        ys = np.asarray(calibrator.y_thresholds_, dtype=np.float64)
        return lambda p: np.interp(np.asarray(p, dtype=np.float64), xs, ys)
    if method == "sigmoid":
        slope = float(calibrator.coef_[0, 0])
        intercept = float(calibrator.intercept_[0])

        def sigmoid(p: np.ndarray) -> np.ndarray:
            raw = np.clip(np.asarray(p, dtype=np.float64), _LOGIT_EPS, 1.0 - _LOGIT_EPS)
            return np.asarray(expit(slope * logit(raw) + intercept), dtype=np.float64)

        return sigmoid
    raise ValueError(f"calibration method {method!r}: use one of {', '.join(METHODS)}")


def unwrap(model: Pipeline | CalibratedModel) -> tuple[Pipeline, Calibrate | None]:
    """The pipeline of a registered model and its calibration (None: a plain pipeline)."""
    if isinstance(model, CalibratedModel):
        return model.pipeline, model.calibrate
    return model, None


def method_of(model: object) -> str:
    """``isotonic``, ``sigmoid``, or ``none`` for a plain (uncalibrated) pipeline."""
    return str(model.method) if isinstance(model, CalibratedModel) else "none"


# --- fitting -----------------------------------------------------------------------------


def fit_calibrator(
    method: str, raw: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> IsotonicRegression | LogisticRegression:
    """Fit ``method`` mapping raw probabilities of bad to the observed outcomes (1 = bad).

    Raises:
        ValueError: an unknown method, or outcomes of one class only.
    """
    p = np.asarray(raw, dtype=np.float64).ravel()
    target = np.asarray(y, dtype=np.int64).ravel()
    if np.unique(target).size < 2:
        raise ValueError("calibration needs both good and bad outcomes")
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
        return iso.fit(p, target, sample_weight=weights)
    if method == "sigmoid":
        from sklearn.linear_model import LogisticRegression

        # unpenalised: a two-parameter fit on thousands of rows needs no shrinkage
        x = logit(np.clip(p, _LOGIT_EPS, 1.0 - _LOGIT_EPS))[:, None]
        return LogisticRegression(C=np.inf).fit(x, target, sample_weight=weights)
    raise ValueError(f"calibration method {method!r}: use one of {', '.join(METHODS)}")


@dataclass(frozen=True)
class MethodChoice:
    """The calibration method chosen and each candidate's cross-validated figures.

    ``cv_ece``: the ECE of each candidate's held-out calibrated PDs over the
    whole training split, read against ``cv_ece_noise_floor`` (the ECE a
    perfect PD shows on as many rows): a tighter check than the test split's.
    """

    method: Method
    cv_brier: dict[str, float]
    cv_ece: dict[str, float] = field(default_factory=dict)
    cv_ece_noise_floor: dict[str, float] = field(default_factory=dict)


def choose_method(
    raw: np.ndarray,
    y: np.ndarray,
    folds: int,
    seed: int,
    weights: np.ndarray | None = None,
    candidates: tuple[Method, ...] = METHODS,
) -> MethodChoice:
    """The candidate with the lowest Brier score, by K-fold CV on the out-of-fold predictions.

    Each method is fitted on K-1 folds of ``raw`` and scored on the held-out
    one; ties go to ``sigmoid`` (two parameters, the smoother map).
    """
    from sklearn.model_selection import StratifiedKFold

    p = np.asarray(raw, dtype=np.float64).ravel()
    target = np.asarray(y, dtype=np.int64).ravel()
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores: dict[str, float] = {}
    eces: dict[str, float] = {}
    floors: dict[str, float] = {}
    for method in candidates:
        held_out = np.empty_like(p)
        for train_idx, test_idx in splitter.split(p.reshape(-1, 1), target):
            fold_weights = None if weights is None else weights[train_idx]
            fitted = fit_calibrator(method, p[train_idx], target[train_idx], fold_weights)
            held_out[test_idx] = calibrator_map(method, fitted)(p[test_idx])
        scores[method] = brier_score(target, held_out)
        eces[method] = expected_calibration_error(target, held_out)
        floors[method] = ece_noise_floor(held_out)
    best = min(candidates, key=lambda m: (scores[m], m != "sigmoid"))
    return MethodChoice(best, scores, eces, floors)


def calibrated_model(
    pipeline: Pipeline,
    method: str,
    oof: np.ndarray,
    y: np.ndarray,
    *,
    folds: int,
    seed: int,
    weights: np.ndarray | None = None,
) -> tuple[CalibratedModel, MethodChoice]:
    """``pipeline`` with a calibrator fitted on its out-of-fold predictions ``oof``.

    Args:
        method: ``isotonic``, ``sigmoid``, or ``auto`` (:func:`choose_method`).
        oof: out-of-fold raw probabilities of bad of the training rows.
        y: their outcomes; ``weights`` their sample weights, if any.
    """
    if method == "auto":
        choice = choose_method(oof, y, folds, seed, weights)
    elif method in METHODS:
        choice = MethodChoice(_METHOD_NAMES[method], {})
    else:
        raise ValueError(f"calibration method {method!r}: use auto, {', '.join(METHODS)}")
    calibrator = fit_calibrator(choice.method, oof, y, weights)
    return CalibratedModel(pipeline, choice.method, calibrator), choice


# --- figures -----------------------------------------------------------------------------


def _arrays(y: object, p: object) -> tuple[np.ndarray, np.ndarray]:
    target = np.asarray(y, dtype=np.float64).ravel()
    proba = np.asarray(p, dtype=np.float64).ravel()
    if target.shape != proba.shape or target.size == 0:
        raise ValueError(f"{target.size} outcome(s) and {proba.size} probabilities: need as many")
    return target, proba


def expected_calibration_error(y: object, p: object, bins: int = ECE_BINS) -> float:
    """ECE over ``bins`` equal-frequency bins: sum of |observed - mean predicted| weighted by rows.

    Rows are sorted by predicted probability and cut into ``bins`` groups of
    (nearly) equal size; each group contributes its share of rows times the gap
    between its bad rate and its mean PD.
    """
    target, proba = _arrays(y, p)
    order = np.argsort(proba, kind="stable")
    total = 0.0
    for group in np.array_split(order, min(bins, proba.size)):
        total += group.size * abs(float(target[group].mean()) - float(proba[group].mean()))
    return total / proba.size


def brier_score(y: object, p: object) -> float:
    """Mean squared gap between the PD and the outcome (sklearn's ``brier_score_loss``)."""
    from sklearn.metrics import brier_score_loss

    target, proba = _arrays(y, p)
    return float(brier_score_loss(target.astype(np.int64), proba, pos_label=1))


def reliability_curve(y: object, p: object, bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Observed bad rate and mean PD per equal-frequency bin (sklearn's ``calibration_curve``)."""
    from sklearn.calibration import calibration_curve

    target, proba = _arrays(y, p)
    observed, predicted = calibration_curve(
        target.astype(np.int64), proba, n_bins=bins, strategy="quantile"
    )
    return np.asarray(predicted), np.asarray(observed)


def _perfect_eces(p: object, draws: int, seed: int, bins: int) -> np.ndarray:
    """The ECE of ``draws`` seeded samples of outcomes drawn from the PDs ``p`` themselves."""
    proba = np.asarray(p, dtype=np.float64).ravel()
    if proba.size == 0 or draws < 1:
        raise ValueError(f"{proba.size} probabilities and {draws} draw(s): need at least one each")
    rng = np.random.default_rng(seed)
    outcomes = rng.random((draws, proba.size)) < proba
    return np.array([expected_calibration_error(row, proba, bins) for row in outcomes])


def ece_noise_floor(p: object, draws: int = 200, seed: int = 0, bins: int = ECE_BINS) -> float:
    """The mean ECE that perfectly calibrated PDs ``p`` show on a sample of their size.

    Outcomes are drawn from ``p`` itself, ``draws`` times (seeded), and each
    draw is scored like the real outcomes (the "consistency resampling" of
    Broecker and Smith, 2007). On a few hundred rows the ECE of a perfect PD
    is far from 0 (about 0.03 on 900 rows at a 28 % bad rate): a test-split
    ECE is judged against this figure, not against 0.
    """
    return float(np.mean(_perfect_eces(p, draws, seed, bins)))


def ece_noise_share(
    p: object, ece: float, draws: int = 200, seed: int = 0, bins: int = ECE_BINS
) -> float:
    """The share of perfectly calibrated draws (as :func:`ece_noise_floor`) whose ECE is >= ``ece``.

    A one-sided p-value of "these PDs are exactly right": a test-split ECE
    above the noise floor that perfect PDs still reach in, say, 20 % of draws
    is no evidence of miscalibration; one they reach in 1 % is.
    """
    return float(np.mean(_perfect_eces(p, draws, seed, bins) >= ece))


def calibration_figures(y: object, raw: object, calibrated: object) -> dict[str, float]:
    """ECE and Brier score before (raw) and after calibration, as logged metric names.

    ``ece_noise_floor``: :func:`ece_noise_floor` of the calibrated PDs, what
    ``ece_calibrated`` would be on average if they were exactly right;
    ``ece_noise_share``: :func:`ece_noise_share`, how often perfect PDs show
    ``ece_calibrated`` or more on these rows (the same 200 draws).
    """
    ece = expected_calibration_error(y, calibrated)
    return {
        "ece_uncalibrated": expected_calibration_error(y, raw),
        "ece_calibrated": ece,
        "ece_noise_floor": ece_noise_floor(calibrated),
        "ece_noise_share": ece_noise_share(calibrated, ece),
        "brier_uncalibrated": brier_score(y, raw),
        "brier_calibrated": brier_score(y, calibrated),
    }
