"""What a finalist is judged by: its refit, test metrics, fairness, importance and model card.

No MLflow in here: :mod:`creditops.training.tracking` logs what these return.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from creditops import evaluate, schema
from creditops.config import TrainConfig
from creditops.data import Split
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


def fairness_metrics(
    X: pd.DataFrame, y: np.ndarray, proba: np.ndarray, threshold: float
) -> dict[str, float]:
    """Approval rate, TPR, FPR by Age band and by Marital status, with min/max ratios."""
    out = evaluate.group_metrics(y, proba, threshold, evaluate.age_band(X["Age"]), label="age")
    out.update(evaluate.group_metrics(y, proba, threshold, X["Marital"], label="marital"))
    return out


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


def fit_finalist(best: TrialResult, split: Split, config: TrainConfig) -> FinalistFit:
    """Refit ``best`` on the whole training split; its threshold from its out-of-fold predictions.

    The refit uses the split's sample weights, as the search's folds did; the
    threshold and the test metrics are unweighted.
    """
    threshold = evaluate.choose_threshold(split.y_train, best.oof, config.threshold)
    # n_jobs=1: the served model scores one applicant at a time; threads only cost there.
    pipeline = build_pipeline(best.family, best.params, config.seed, monotone=config.monotone)
    weights = check_weights(split.weights, len(split.train))
    pipeline.fit(split.X_train, split.y_train, **weight_params(pipeline, weights))
    proba = pipeline.predict_proba(split.X_test)[:, 1]
    return FinalistFit(
        pipeline=pipeline,
        threshold=threshold,
        proba=proba,
        metrics=evaluate.binary_metrics(split.y_test, proba, threshold),
        fairness=fairness_metrics(split.X_test, split.y_test, proba, threshold),
        importance=permutation_importance(pipeline, split.X_test, split.y_test, config.seed),
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
) -> str:
    """A short Markdown model card for one finalist."""
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
        "## Fairness (test split, at the threshold)",
        f"- approval-rate ratio lowest/highest, Age bands: {fairness.get('fair_age_approval_ratio', float('nan')):.3f}",
        f"- approval-rate ratio lowest/highest, Marital: {fairness.get('fair_marital_approval_ratio', float('nan')):.3f}",
        "- per-group approval rate, TPR and FPR are logged as `fair_*` metrics.",
        "",
        "## Limits",
        "- Trained on 4,454 applicants of one lender; not validated on other populations.",
        "- Marital status and Age are model inputs: review the fairness metrics before use.",
        "",
    ]
    return "\n".join(lines)
