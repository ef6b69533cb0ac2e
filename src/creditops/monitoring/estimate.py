"""Performance estimated before the labels arrive, from calibrated PDs alone.

If a month's PDs are calibrated, each applicant's outcome is a Bernoulli draw
with its PD, and the performance the model will show on that month once the
outcomes are known follows from the PDs and the threshold (the
confidence-based performance estimation made known by NannyML, written here as
pure functions):

* ROC AUC: the expected pair count over the expected pairs,
  ``sum p_i (1 - p_j) 1[s_i > s_j] / sum_{i != j} p_i (1 - p_j)`` (a tie counts
  one half), computed in O(n log n) by sorting (:func:`expected_roc_auc`);
* the bad-class F1 at the threshold (decline when PD >= threshold), from the
  expected confusion counts;
* the approval rate and the expected bad rate among the approved loans.

Each figure has a band from the sampling error of the month's size: outcomes
are drawn from the PDs ``draws`` times with a seeded generator and the band is
the central ``level`` share of the realised figures (the approval rate, known
without labels, gets the Jeffreys interval of its binomial proportion).

The estimate assumes P(bad | applicant) has not changed since the model was
calibrated. Under concept shift or a downturn it cannot see the change: the
backtest (:mod:`creditops.monitoring.backtest`) catches those once outcomes
mature.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from creditops.monitoring.table import MonitoringRow, MonthContext

DRAWS = 200
LEVEL = 0.95
KIND = "estimated"
METRICS = ("est_roc_auc", "est_f1_bad", "est_approval_rate", "est_bad_rate_approved")


@dataclass(frozen=True)
class Estimated:
    """One estimated figure and its band; None where it cannot be computed.

    Attributes:
        value: the expected figure.
        lower: the lower end of the band.
        upper: the upper end of the band.
        detail: why ``value`` is None, else "".
    """

    value: float | None
    lower: float | None = None
    upper: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class PerformanceEstimate:
    """The label-free figures of one set of scored applicants.

    Attributes:
        rows: how many applicants the figures come from.
        roc_auc: the expected ROC AUC.
        f1_bad: the expected bad-class F1 at the threshold.
        approval_rate: the share of approved applicants.
        bad_rate_approved: the expected bad rate among the approved.
    """

    rows: int
    roc_auc: Estimated
    f1_bad: Estimated
    approval_rate: Estimated
    bad_rate_approved: Estimated


def expected_roc_auc(pds: np.ndarray, scores: np.ndarray | None = None) -> float:
    """The ROC AUC expected when each outcome is bad with probability ``pds``.

    Args:
        pds: calibrated probabilities of bad.
        scores: the ranking score (default ``pds``); ties count one half.

    Returns:
        The expected pair count over the expected pairs; NaN for fewer than two
        rows or when every PD is 0 or every PD is 1 (no pair can be formed).
    """
    p = np.asarray(pds, dtype=np.float64)
    s = p if scores is None else np.asarray(scores, dtype=np.float64)
    if p.size < 2:
        return math.nan
    q = 1.0 - p
    pairs = p.sum() * q.sum() - float(np.dot(p, q))  # i != j
    if pairs <= 0:
        return math.nan
    order = np.argsort(s, kind="stable")
    s_sorted, p_sorted, q_sorted = s[order], p[order], q[order]
    _, starts = np.unique(s_sorted, return_index=True)
    group_q = np.add.reduceat(q_sorted, starts)
    group_p = np.add.reduceat(p_sorted, starts)
    group_pq = np.add.reduceat(p_sorted * q_sorted, starts)
    goods_below = np.cumsum(group_q) - group_q
    # within a tie group, pairs i != j count one half
    ties = group_p * group_q - group_pq
    wins = float(np.dot(group_p, goods_below) + 0.5 * ties.sum())
    return float(wins / pairs)


def _draw_outcomes(pds: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """``draws`` x n outcomes (True = bad), each row one possible month."""
    rng = np.random.default_rng(seed)
    return rng.random((draws, pds.size)) < pds


def _realised_aucs(scores: np.ndarray, outcomes: np.ndarray) -> np.ndarray:
    """ROC AUC of each draw (rank-sum form; NaN where a draw has one class only)."""
    ranks = stats.rankdata(scores)  # ties get the mean rank: a tie counts one half
    bads = outcomes.sum(axis=1).astype(np.float64)
    goods = outcomes.shape[1] - bads
    rank_sums = outcomes.astype(np.float64) @ ranks
    with np.errstate(divide="ignore", invalid="ignore"):
        aucs = (rank_sums - bads * (bads + 1) / 2) / (bads * goods)
    return np.where((bads > 0) & (goods > 0), aucs, np.nan)


def _band(point: float, realised: np.ndarray, level: float, what: str) -> Estimated:
    """The point estimate with the central ``level`` share of the realised figures."""
    known = realised[np.isfinite(realised)]
    if not math.isfinite(point) or known.size == 0:
        return Estimated(None, detail=f"{what} cannot be formed from these PDs")
    tail = (1.0 - level) / 2 * 100
    lower, upper = np.percentile(known, [tail, 100 - tail])
    return Estimated(float(point), float(min(lower, point)), float(max(upper, point)))


def _f1(tp: np.ndarray | float, fp: np.ndarray | float, fn: np.ndarray | float) -> np.ndarray:
    """Bad-class F1 from confusion counts (0 where there is nothing to find or flag)."""
    denominator = 2 * np.asarray(tp) + np.asarray(fp) + np.asarray(fn)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, 2 * np.asarray(tp) / denominator, 0.0)


def estimate_performance(
    pds: np.ndarray,
    threshold: float,
    approved: np.ndarray | None = None,
    *,
    draws: int = DRAWS,
    level: float = LEVEL,
    seed: int = 0,
) -> PerformanceEstimate:
    """The label-free ROC AUC, F1 of bad, approval rate and bad rate of approved.

    Args:
        pds: calibrated probabilities of bad of the month's applicants.
        threshold: decline when PD >= threshold.
        approved: which applicants were granted (default: PD < threshold).
        draws: Monte-Carlo draws of the outcomes for the bands.
        level: the band's coverage (0.95: the 2.5 % and 97.5 % percentiles).
        seed: seeds the draws, so a re-run gives the same band.

    Returns:
        The four figures, each with its band.
    """
    p = np.asarray(pds, dtype=np.float64)
    granted = p < threshold if approved is None else np.asarray(approved, dtype=bool)
    declined = p >= threshold
    outcomes = _draw_outcomes(p, draws, seed)
    auc = _band(expected_roc_auc(p), _realised_aucs(p, outcomes), level, "ROC AUC")
    tp = outcomes[:, declined].sum(axis=1)
    fn = outcomes[:, ~declined].sum(axis=1)
    fp = declined.sum() - tp
    expected_f1 = float(_f1(p[declined].sum(), (1 - p[declined]).sum(), p[~declined].sum()))
    f1 = _band(expected_f1, _f1(tp, fp, fn), level, "F1 of bad")
    approved_count = int(granted.sum())
    tail = (1.0 - level) / 2
    jeffreys = stats.beta(approved_count + 0.5, p.size - approved_count + 0.5)
    approval = Estimated(
        approved_count / p.size if p.size else None,
        float(jeffreys.ppf(tail)),
        float(jeffreys.ppf(1 - tail)),
        "" if p.size else "no applicants",
    )
    if approved_count == 0:
        bad_rate = Estimated(None, detail="0 approved rows")
    else:
        realised = outcomes[:, granted].mean(axis=1)
        bad_rate = _band(float(p[granted].mean()), realised, level, "bad rate of approved")
    return PerformanceEstimate(int(p.size), auc, f1, approval, bad_rate)


def _month_seed(month: str, model_version: int) -> int:
    """A seed fixed by the (month, version), so every run draws the same outcomes."""
    return int(month.replace("-", "")) * 1_000 + model_version


def _absent_rows(ctx: MonthContext, rows: int, reason: str) -> list[MonitoringRow]:
    return [
        MonitoringRow(ctx.month, ctx.model_version, metric, KIND, None, rows=rows, detail=reason)
        for metric in METRICS
    ]


def estimate_rows(
    frame: pd.DataFrame,
    ctx: MonthContext,
    *,
    calibrated: bool | None = None,
    draws: int = DRAWS,
    level: float = LEVEL,
) -> list[MonitoringRow]:
    """The month provider: ``est_*`` rows (kind ``estimated``) of one (month, version).

    Args:
        frame: the month's log rows (``probability``, ``decision``).
        ctx: the month's context (threshold, ``min_rows``).
        calibrated: whether the version's PDs are calibrated; None reads
            ``ctx.calibrated`` where the context carries it, else assumes so.
        draws: Monte-Carlo draws for the bands.
        level: the bands' coverage.

    Returns:
        One row per figure in :data:`METRICS`; value None with the reason when
        the month has fewer than ``ctx.min_rows`` scored rows or the version
        has no calibrator (its probability is then not a PD to estimate from).
    """
    is_calibrated = bool(getattr(ctx, "calibrated", True)) if calibrated is None else calibrated
    scored = frame["probability"].dropna().to_numpy(dtype=np.float64)
    if not is_calibrated:
        reason = (
            f"version {ctx.model_version} has no calibrator: its probability is not "
            "a calibrated PD, so no estimate is made (register a calibrated version)"
        )
        return _absent_rows(ctx, int(scored.size), reason)
    if scored.size < ctx.min_rows:
        return _absent_rows(ctx, int(scored.size), f"{scored.size} rows < min {ctx.min_rows}")
    known = frame["probability"].notna()
    approved = None
    if "decision" in frame.columns:
        approved = (frame.loc[known, "decision"] == "approve").to_numpy()
    estimate = estimate_performance(
        scored,
        ctx.threshold,
        approved,
        draws=draws,
        level=level,
        seed=_month_seed(ctx.month, ctx.model_version),
    )
    return _estimated_rows(ctx, estimate, json.dumps({"draws": draws, "level": level}))


def _estimated_rows(
    ctx: MonthContext, estimate: PerformanceEstimate, extras: str
) -> list[MonitoringRow]:
    """One row per figure; the detail is the reason where absent, else the draws' settings."""
    figures = (
        estimate.roc_auc,
        estimate.f1_bad,
        estimate.approval_rate,
        estimate.bad_rate_approved,
    )
    return [
        MonitoringRow(
            ctx.month,
            ctx.model_version,
            metric,
            KIND,
            figure.value,
            figure.lower,
            figure.upper,
            rows=estimate.rows,
            detail=figure.detail if figure.value is None else extras,
        )
        for metric, figure in zip(METRICS, figures, strict=True)
    ]
