"""Pure metric functions on labels (1 = bad) and predicted probabilities of bad.

No I/O here: training, promotion and monitoring all share these.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from creditops.config import ThresholdConfig


def _arrays(y_true: object, proba: object) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(proba, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels ({y.size}) and probabilities ({p.size}) differ in length")
    return y, p


def roc_auc(y_true: object, proba: object) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y, p = _arrays(y_true, proba)
    if y.size == 0 or np.unique(y).size < 2:
        return float("nan")
    return float(skm.roc_auc_score(y, p))


def gini(y_true: object, proba: object) -> float:
    """Gini coefficient = 2 * AUC - 1."""
    return 2.0 * roc_auc(y_true, proba) - 1.0


def ks_statistic(y_true: object, proba: object) -> float:
    """Kolmogorov-Smirnov: the largest gap between the score CDFs of bads and goods."""
    y, p = _arrays(y_true, proba)
    if np.unique(y).size < 2:
        return float("nan")
    fpr, tpr, _ = skm.roc_curve(y, p)
    return float(np.max(tpr - fpr))


def ks_curve(y_true: object, proba: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds with the cumulative share of bads and of goods at or above each."""
    y, p = _arrays(y_true, proba)
    fpr, tpr, thresholds = skm.roc_curve(y, p)
    return thresholds, tpr, fpr


def confusion(y_true: object, proba: object, threshold: float) -> dict[str, int]:
    """Counts at ``threshold`` (decline when probability of bad >= threshold).

    ``tp`` = bad declined, ``fp`` = good declined, ``fn`` = bad approved, ``tn`` = good approved.
    """
    y, p = _arrays(y_true, proba)
    pred = p >= threshold
    return {
        "tp": int(np.sum(pred & (y == 1))),
        "fp": int(np.sum(pred & (y == 0))),
        "fn": int(np.sum(~pred & (y == 1))),
        "tn": int(np.sum(~pred & (y == 0))),
    }


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def class_report(y_true: object, proba: object, threshold: float) -> dict[str, float]:
    """Accuracy and precision / recall / F1 of both classes at ``threshold``."""
    c = confusion(y_true, proba, threshold)
    total = sum(c.values())
    out = {"accuracy": (c["tp"] + c["tn"]) / total if total else float("nan")}
    for name, (tp, fp, fn) in {
        "bad": (c["tp"], c["fp"], c["fn"]),
        "good": (c["tn"], c["fn"], c["fp"]),
    }.items():
        precision, recall, f1 = _prf(tp, fp, fn)
        out[f"precision_{name}"] = precision
        out[f"recall_{name}"] = recall
        out[f"f1_{name}"] = f1
    return out


def expected_cost(
    y_true: object, proba: object, threshold: float, config: ThresholdConfig
) -> float:
    """Mean cost per applicant: approving a bad and declining a good, as configured."""
    c = confusion(y_true, proba, threshold)
    total = sum(c.values())
    cost = c["fn"] * config.cost_approve_bad + c["fp"] * config.cost_decline_good
    return cost / total if total else float("nan")


def choose_threshold(y_true: object, proba: object, config: ThresholdConfig) -> float:
    """The decision threshold by the configured policy, on out-of-fold predictions.

    ``max_f1``: the threshold maximising F1 of ``config.f1_class``;
    ``min_cost``: the one minimising :func:`expected_cost`. Candidates are the
    distinct predicted probabilities (midpoints between them), so the result
    does not depend on a grid.
    """
    y, p = _arrays(y_true, proba)
    if y.size == 0:
        raise ValueError("cannot choose a threshold on no predictions")
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    # declining everything at or above each distinct score
    distinct = np.r_[np.flatnonzero(np.diff(p_sorted) != 0), p_sorted.size - 1]
    tp = np.cumsum(y_sorted)[distinct].astype(np.float64)
    fp = np.cumsum(1 - y_sorted)[distinct].astype(np.float64)
    positives, negatives = float(y.sum()), float(y.size - y.sum())
    fn, tn = positives - tp, negatives - fp
    candidates = p_sorted[distinct]
    if config.policy == "max_f1":
        if config.f1_class == "bad":
            score = np.divide(
                2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp), where=(2 * tp + fp + fn) > 0
            )
        else:
            score = np.divide(
                2 * tn, 2 * tn + fn + fp, out=np.zeros_like(tn), where=(2 * tn + fn + fp) > 0
            )
        best = int(np.argmax(score))
    else:
        cost = fn * config.cost_approve_bad + fp * config.cost_decline_good
        best = int(np.argmin(cost))
    threshold = candidates[best]
    # midway to the next lower score, so ties at the chosen score are declined
    if best + 1 < candidates.size:
        threshold = (candidates[best] + candidates[best + 1]) / 2.0
    return float(threshold)


def binary_metrics(y_true: object, proba: object, threshold: float) -> dict[str, float]:
    """Everything reported for a finalist: ranking, calibration and decision metrics."""
    y, p = _arrays(y_true, proba)
    clipped = np.clip(p, 1e-15, 1 - 1e-15)
    two_classes = np.unique(y).size == 2
    out = {
        "roc_auc": roc_auc(y, p),
        "gini": gini(y, p),
        "ks": ks_statistic(y, p),
        "pr_auc": float(skm.average_precision_score(y, p)) if two_classes else float("nan"),
        "brier": float(np.mean((p - y) ** 2)) if y.size else float("nan"),
        "log_loss": float(skm.log_loss(y, clipped, labels=[0, 1])) if y.size else float("nan"),
        "threshold": float(threshold),
    }
    out.update(class_report(y, p, threshold))
    return out
