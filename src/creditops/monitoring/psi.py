"""The monitor's pure figures: population stability and the quality of labelled rows.

No I/O here. PSI bins are the reference's quantiles; the credit-risk bands are
< ``psi_warn`` stable, < ``psi_alert`` watch, above: alert.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from creditops import evaluate, schema
from creditops.config import MonitorConfig

_EPSILON = 1e-4


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """Population stability index of a numeric column.

    Bins are the reference's quantiles (merged where values repeat, so
    spikes such as Time = 60 stay whole); missing values get a bin of their own.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cur = np.asarray(current, dtype=np.float64)
    ref_known = ref[~np.isnan(ref)]
    if ref_known.size == 0:
        edges = np.array([], dtype=np.float64)
    else:
        edges = np.unique(np.quantile(ref_known, np.linspace(0, 1, bins + 1)[1:-1]))

    def shares(values: np.ndarray) -> np.ndarray:
        missing = np.isnan(values)
        index = np.searchsorted(edges, values[~missing], side="left")
        counts = np.bincount(index, minlength=edges.size + 1).astype(np.float64)
        return np.append(counts, missing.sum()) / max(values.size, 1)

    return _psi(shares(ref), shares(cur))


def psi_categorical(reference: pd.Series, current: pd.Series) -> float:
    """Population stability index of a categorical column (missing is a level)."""
    ref = reference.astype("object").where(reference.notna(), "<missing>").astype(str)
    cur = current.astype("object").where(current.notna(), "<missing>").astype(str)
    levels = sorted(set(ref.unique()) | set(cur.unique()))
    ref_shares = ref.value_counts(normalize=True).reindex(levels, fill_value=0.0).to_numpy()
    cur_shares = cur.value_counts(normalize=True).reindex(levels, fill_value=0.0).to_numpy()
    return _psi(ref_shares, cur_shares)


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    r = np.maximum(ref, _EPSILON)
    c = np.maximum(cur, _EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def feature_psi(reference: pd.DataFrame, current: pd.DataFrame, bins: int) -> dict[str, float]:
    """PSI of every contract feature."""
    out = {}
    for name in schema.FEATURES:
        if name in schema.CATEGORICAL:
            out[name] = psi_categorical(reference[name], current[name])
        else:
            out[name] = psi_numeric(reference[name].to_numpy(), current[name].to_numpy(), bins)
    return out


def psi_band(value: float | None, config: MonitorConfig) -> str:
    """``stable`` below ``psi_warn``, ``watch`` below ``psi_alert``, else ``alert``."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value < config.psi_warn:
        return "stable"
    return "watch" if value < config.psi_alert else "alert"


def quality_figures(outcomes: pd.Series, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """ROC AUC, KS, F1 of bad, accuracy and bad rate of labelled rows."""
    y = (outcomes.to_numpy() == schema.POSITIVE_LABEL).astype(np.int64)
    report = evaluate.class_report(y, scores, threshold)
    return {
        "rows": float(y.size),
        "bad_rate": float(y.mean()) if y.size else float("nan"),
        "roc_auc": evaluate.roc_auc(y, scores),
        "ks": evaluate.ks_statistic(y, scores),
        "f1_bad": report["f1_bad"],
        "accuracy": report["accuracy"],
        "decline_rate": float(np.mean(scores >= threshold)) if y.size else float("nan"),
    }
