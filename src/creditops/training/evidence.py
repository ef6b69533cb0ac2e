"""What a finalist is judged by: its refit, test metrics, fairness, importance and model card.

No MLflow in here: :mod:`creditops.training.tracking` logs what these return.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from creditops import calibration, evaluate, fairness, schema
from creditops.config import FairnessConfig, TrainConfig
from creditops.data import Split
from creditops.fairness import FairnessReport
from creditops.features import build_pipeline
from creditops.training.search import ParamValue, TrialResult, check_weights, weight_params

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

# the test-split metrics a model card lists, in its order
CARD_METRICS = (
    "roc_auc",
    "gini",
    "ks",
    "pr_auc",
    "brier",
    "log_loss",
    "accuracy",
    "precision_bad",
    "recall_bad",
    "f1_bad",
    "precision_good",
    "recall_good",
    "f1_good",
)


@dataclass(frozen=True)
class FinalistFit:
    """A best trial refit on the whole training split, with its evidence on the test split."""

    pipeline: Pipeline
    threshold: float
    proba: np.ndarray
    metrics: dict[str, float]
    fairness: dict[str, float]
    importance: dict[str, float]
    # what is logged and registered: the pipeline with its calibrator, or the
    # pipeline itself with [train] calibration = "none"
    model: Pipeline | calibration.CalibratedModel | None = None
    raw_proba: np.ndarray | None = None  # the pipeline's uncalibrated test-split scores
    calibration_method: str = "none"
    # ECE and Brier before/after on the test split, and each candidate's CV Brier
    calibration_metrics: dict[str, float] = field(default_factory=dict)

    # the fairness figures behind ``fairness`` (the metrics) and the proxy check
    fairness_report: FairnessReport | None = None
    proxy: dict[str, float | None] = field(default_factory=dict)

    @property
    def logged_model(self) -> Pipeline | calibration.CalibratedModel:
        """The model to log and register (the calibrated one when there is a calibrator)."""
        return self.pipeline if self.model is None else self.model


def fairness_report(
    X: pd.DataFrame, y: np.ndarray, proba: np.ndarray, threshold: float, config: FairnessConfig
) -> FairnessReport:
    """Approval rate, TPR, FPR by protected group at ``threshold`` (:mod:`creditops.fairness`)."""
    return fairness.fairness_figures(X, proba < threshold, y, config)


def permutation_importance(
    pipeline: Pipeline, X: pd.DataFrame, y: np.ndarray, seed: int
) -> dict[str, float]:
    """Mean drop in test ROC AUC when each contract column is shuffled (3 repeats)."""
    rng = np.random.default_rng(seed)
    base = evaluate.roc_auc(y, pipeline.predict_proba(X)[:, 1])
    out = {}
    for column in schema.FEATURES:
        drops = []
        for _ in range(3):
            shuffled = X.copy()
            shuffled[column] = rng.permutation(shuffled[column].to_numpy())
            drops.append(base - evaluate.roc_auc(y, pipeline.predict_proba(shuffled)[:, 1]))
        out[column] = float(np.mean(drops))
    return out


def fit_finalist(
    best: TrialResult,
    split: Split,
    config: TrainConfig,
    *,
    fairness_config: FairnessConfig | None = None,
    proxy: dict[str, float | None] | None = None,
) -> FinalistFit:
    """Refit ``best`` on the whole training split, calibrate it, choose its threshold.

    The calibrator is fitted on the trial's out-of-fold predictions of the
    training split (:func:`creditops.calibration.calibrated_model`), never on
    the test split; the threshold is chosen on the calibrated out-of-fold PDs,
    the scale the model serves. The refit and the calibrator use the split's
    sample weights, as the search's folds did; the threshold and the test
    metrics are unweighted. ``fairness_config`` (default: ``[fairness]``'s defaults) says
    which inputs the model may not see; ``proxy`` is the run's proxy check, for the card.
    """
    fair = fairness_config or FairnessConfig()
    # n_jobs=1: the served model scores one applicant at a time; threads only cost there.
    pipeline = build_pipeline(
        best.family, best.params, config.seed, monotone=config.monotone, exclude=fair.excluded()
    )
    weights = check_weights(split.weights, len(split.train))
    pipeline.fit(split.X_train, split.y_train, **weight_params(pipeline, weights))
    raw = pipeline.predict_proba(split.X_test)[:, 1]
    model: Pipeline | calibration.CalibratedModel = pipeline
    oof, proba, cv_brier = best.oof, raw, {}
    if config.calibration != "none":
        model, choice = calibration.calibrated_model(
            pipeline,
            config.calibration,
            best.oof,
            split.y_train,
            folds=config.cv_folds,
            seed=config.seed,
            weights=weights,
        )
        oof, proba = model.calibrate(best.oof), model.calibrate(raw)
        cv_brier = {
            **{f"cv_calibration_brier_{m}": v for m, v in choice.cv_brier.items()},
            **{f"cv_calibration_ece_{m}": v for m, v in choice.cv_ece.items()},
            **{
                f"cv_calibration_ece_noise_floor_{m}": v
                for m, v in choice.cv_ece_noise_floor.items()
            },
        }
    threshold = evaluate.choose_threshold(split.y_train, oof, config.threshold)
    report = fairness_report(split.X_test, split.y_test, proba, threshold, fair)
    return FinalistFit(
        pipeline=pipeline,
        threshold=threshold,
        proba=proba,
        metrics=evaluate.binary_metrics(split.y_test, proba, threshold),
        fairness=report.metrics(),
        fairness_report=report,
        proxy=dict(proxy or {}),
        importance=permutation_importance(pipeline, split.X_test, split.y_test, config.seed),
        model=model,
        raw_proba=raw,
        calibration_method=calibration.method_of(model),
        calibration_metrics={
            **calibration.calibration_figures(split.y_test, raw, proba),
            **cv_brier,
        },
    )


def model_card(
    family: str,
    params: dict[str, ParamValue],
    cv: tuple[float, float],
    metrics: dict[str, float],
    fairness: dict[str, float],
    importance: dict[str, float],
    data_hash: str,
    train_rows: int,
    test_rows: int,
    calibration_lines: Sequence[str] = (),
    fairness_lines: Sequence[str] = (),
) -> str:
    """A short Markdown model card for one finalist.

    ``calibration_lines``: :func:`calibration_card`; ``fairness_lines``:
    :func:`creditops.fairness.card_lines` (else the ratios of ``fairness`` alone).
    """
    top = sorted(importance.items(), key=lambda kv: -kv[1])[:5]
    lines = [
        f"# creditops model card: {family}",
        "",
        "Predicts the probability that a credit applicant turns out **bad** (defaults);",
        f"applicants at or above the threshold **{metrics['threshold']:.4f}** are declined.",
        "",
        "## Data",
        f"- training rows: {train_rows}, test rows: {test_rows} (stratified split)",
        f"- data hash: `{data_hash}`",
        "",
        "## Hyperparameters",
        *[f"- `{k}` = {v}" for k, v in params.items()],
        "",
        "## Performance",
        f"- CV ROC AUC on the training split: {cv[0]:.4f} ± {cv[1]:.4f}",
        "- held-out test split:",
        *[f"  - {k}: {metrics[k]:.4f}" for k in CARD_METRICS],
        "",
        "## Most important features (permutation, drop in test ROC AUC)",
        *[f"- {k}: {v:.4f}" for k, v in top],
        "",
        *(fairness_lines or _fairness_ratio_lines(fairness)),
        *calibration_lines,
        "## Limits",
        "- Trained on 4,454 applicants of one lender; not validated on other populations.",
        "- Fairness figures are a screen, not a finding: review them before use.",
        "",
    ]
    return "\n".join(lines)


def _fairness_ratio_lines(fairness: dict[str, float]) -> list[str]:
    """The fairness section from the metrics alone (no report at hand)."""
    ratios = {
        k: v for k, v in fairness.items() if k.endswith("_approval_ratio") and k.count("_") == 3
    }
    return [
        "## Fairness (test split, at the threshold)",
        *[
            f"- approval-rate ratio lowest/highest, {k.split('_')[1]}: {v:.3f}"
            for k, v in ratios.items()
        ],
        "- per-group approval rate, TPR and FPR are logged as `fair_*` metrics.",
        "",
    ]


def _cv_ece(figures: dict[str, float], method: str) -> str:
    """A method's cross-validated ECE and a perfect PD's for the card ("" if not logged)."""
    ece = figures.get(f"cv_calibration_ece_{method}")
    floor = figures.get(f"cv_calibration_ece_noise_floor_{method}")
    if ece is None or floor is None:
        return ""
    return f", ECE {ece:.4f} (a perfectly calibrated PD: {floor:.4f})"


def calibration_card(method: str, figures: dict[str, float]) -> list[str]:
    """The model card's calibration section: the method and ECE / Brier before and after."""
    if method == "none":
        return ["## Calibration", "- none: the PD is the model's raw score", ""]

    def figure(name: str) -> str:
        return f"{figures.get(name, float('nan')):.4f}"

    return [
        "## Calibration (PD)",
        f"- method: {method}, fitted on the out-of-fold predictions of the training split;",
        "  the threshold above is on the calibrated scale",
        "- test split, before -> after calibration:",
        f"  - ECE (10 equal-frequency bins): {figure('ece_uncalibrated')} -> {figure('ece_calibrated')}",
        f"  - Brier score: {figure('brier_uncalibrated')} -> {figure('brier_calibrated')}",
        f"  - ECE a perfectly calibrated PD would show on these rows (mean of 200 draws "
        f"of outcomes from the PDs): {figure('ece_noise_floor')}; it shows "
        f"{figure('ece_calibrated')} or more in {figures.get('ece_noise_share', float('nan')):.1%}"
        " of the draws",
        *[
            f"- CV on the out-of-fold predictions, {name.removeprefix('cv_calibration_brier_')}: "
            f"Brier {value:.4f}" + _cv_ece(figures, name.removeprefix("cv_calibration_brier_"))
            for name, value in figures.items()
            if name.startswith("cv_calibration_brier_")
        ],
        "",
    ]
