"""Champion against shadowed challenger on the same applicants: the pure figures.

Input: one row per applicant both models scored (the champion's answer and the
challenger's shadow score, linked by request id), with the applicant's
features and, where it has matured, the outcome. Outcomes exist only for
applicants the champion approved (the challenger's approvals were never
granted), so realised figures are computed on that overlap only and say so;
for the rest the comparison uses each model's calibrated PDs
(:func:`creditops.monitoring.estimate.estimate_performance`).

Swap sets: *swap-in* applicants the challenger would approve and the champion
declined; *swap-out* the reverse. They are counted at the challenger's own
threshold (as it was served in the shadow), at the champion's threshold
(the PDs are calibrated, so the same cut-off means the same risk appetite),
and at an equal approval rate (the challenger's cut-off moved until it
approves as many applicants as the champion did).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from creditops import evaluate, schema
from creditops.monitoring.estimate import estimate_performance
from creditops.monitoring.psi import psi_numeric

PROFILE_FEATURES = 3


@dataclass(frozen=True)
class SwapSet:
    """The applicants on whom the two models' decisions differ, at one cut-off rule."""

    rule: str
    challenger_threshold: float
    agreement: float
    swap_in: int
    swap_out: int
    # for each set: its size, mean PD of each model, and the features that set it apart
    swap_in_profile: dict[str, object] = field(default_factory=dict)
    swap_out_profile: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """Everything ``creditops compare`` reports."""

    champion_version: int
    challenger_version: int
    rows: int
    months: list[str]
    champion_approval_rate: float
    challenger_approval_rate: float
    swaps: list[SwapSet]
    score_psi: float
    spearman: float
    realised: dict[str, object]
    estimated: dict[str, object]

    @property
    def headline(self) -> str:
        """One line: what a promotion decision quotes."""
        served = self.swaps[0]
        line = (
            f"challenger v{self.challenger_version} vs champion v{self.champion_version} on "
            f"{self.rows} shadow-scored applicants: agreement {served.agreement:.1%}, "
            f"swap-in {served.swap_in}, swap-out {served.swap_out}"
        )
        if self.realised.get("champion_roc_auc") is not None:
            line += (
                f"; realised ROC AUC {self.realised['challenger_roc_auc']:.3f} vs "
                f"{self.realised['champion_roc_auc']:.3f} on {self.realised['rows']} matured"
            )
        if self.estimated.get("challenger_roc_auc") is not None:
            line += (
                f"; estimated ROC AUC {self.estimated['challenger_roc_auc']:.3f} vs "
                f"{self.estimated['champion_roc_auc']:.3f}"
            )
        return line

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready dict, the headline included."""
        return {**asdict(self), "headline": self.headline}


def equal_rate_threshold(challenger_pd: np.ndarray, approved: int) -> float:
    """The cut-off at which the challenger approves ``approved`` applicants (PD < it)."""
    ordered = np.sort(np.asarray(challenger_pd, dtype=np.float64))
    if approved >= ordered.size:
        return float(np.nextafter(ordered[-1], np.inf)) if ordered.size else 1.0
    return float(ordered[approved])


def profile(frame: pd.DataFrame, chosen: np.ndarray, reference: pd.DataFrame) -> dict[str, object]:
    """Size, mean PDs and the numeric features whose means differ most from all applicants."""
    subset = frame[chosen]
    if subset.empty:
        return {"rows": 0}
    shifts: dict[str, float] = {}
    for name in schema.NUMERIC:
        if name not in frame.columns:
            continue
        spread = float(np.nanstd(reference[name].to_numpy(dtype=float)))
        if spread > 0:
            shifts[name] = (float(subset[name].mean()) - float(reference[name].mean())) / spread
    main = sorted(shifts, key=lambda name: abs(shifts[name]), reverse=True)[:PROFILE_FEATURES]
    return {
        "rows": len(subset),
        "mean_champion_pd": float(subset["champion_pd"].mean()),
        "mean_challenger_pd": float(subset["challenger_pd"].mean()),
        "features": {
            name: {
                "mean": float(subset[name].mean()),
                "all_applicants_mean": float(reference[name].mean()),
                "standardised_difference": round(shifts[name], 4),
            }
            for name in main
        },
    }


def swap_set(frame: pd.DataFrame, rule: str, threshold: float) -> SwapSet:
    """Decisions of the challenger at ``threshold`` against the champion's as served."""
    champion = frame["champion_decision"].to_numpy() == "approve"
    challenger = frame["challenger_pd"].to_numpy(dtype=float) < threshold
    swap_in = challenger & ~champion
    swap_out = champion & ~challenger
    return SwapSet(
        rule=rule,
        challenger_threshold=float(threshold),
        agreement=float(np.mean(champion == challenger)),
        swap_in=int(swap_in.sum()),
        swap_out=int(swap_out.sum()),
        swap_in_profile=profile(frame, swap_in, frame),
        swap_out_profile=profile(frame, swap_out, frame),
    )


def compare(frame: pd.DataFrame, *, min_rows: int, psi_bins: int = 10) -> Comparison:
    """The comparison of a joined champion/challenger frame.

    Args:
        frame: one row per applicant: ``month``, ``champion_version``,
            ``challenger_version``, ``champion_pd``, ``champion_decision``,
            ``champion_threshold``, ``challenger_pd``, ``challenger_threshold``,
            the features, ``outcome`` (``good``/``bad``/None).
        min_rows: the fewest matured outcomes realised figures are computed from.
        psi_bins: bins of the PSI between the two score distributions.

    Raises:
        ValueError: the frame is empty or mixes versions.
    """
    if frame.empty:
        raise ValueError("no applicant was scored by both models")
    champion_version = _single(frame, "champion_version")
    challenger_version = _single(frame, "challenger_version")
    champion_pd = frame["champion_pd"].to_numpy(dtype=float)
    challenger_pd = frame["challenger_pd"].to_numpy(dtype=float)
    approved = int((frame["champion_decision"] == "approve").sum())
    own = float(frame["challenger_threshold"].iloc[-1])
    swaps = [
        swap_set(frame, "challenger threshold (as shadowed)", own),
        swap_set(frame, "champion threshold", float(frame["champion_threshold"].iloc[-1])),
        swap_set(frame, "equal approval rate", equal_rate_threshold(challenger_pd, approved)),
    ]
    return Comparison(
        champion_version=champion_version,
        challenger_version=challenger_version,
        rows=len(frame),
        months=sorted(frame["month"].astype(str).unique()),
        champion_approval_rate=approved / len(frame),
        challenger_approval_rate=float(np.mean(challenger_pd < own)),
        swaps=swaps,
        score_psi=psi_numeric(champion_pd, challenger_pd, psi_bins),
        spearman=float(stats.spearmanr(champion_pd, challenger_pd).statistic),
        realised=_realised(frame, min_rows),
        estimated=_estimated(frame, own),
    )


def _realised(frame: pd.DataFrame, min_rows: int) -> dict[str, object]:
    matured = frame[frame["outcome"].isin(schema.LABELS)]
    note = (
        "outcomes exist only for applicants the champion approved: both models are "
        f"compared on those {len(matured)} matured loans only"
    )
    out: dict[str, object] = {"rows": len(matured), "note": note}
    y = (matured["outcome"] == schema.POSITIVE_LABEL).to_numpy(dtype=int)
    if len(matured) < min_rows or np.unique(y).size < 2:
        why = (
            f"{len(matured)} matured rows < min {min_rows}"
            if len(matured) < min_rows
            else ("the matured outcomes hold one class only")
        )
        return {**out, "champion_roc_auc": None, "challenger_roc_auc": None, "absent": why}
    return {
        **out,
        "bad_rate": float(y.mean()),
        "champion_roc_auc": evaluate.roc_auc(y, matured["champion_pd"]),
        "challenger_roc_auc": evaluate.roc_auc(y, matured["challenger_pd"]),
    }


def _estimated(frame: pd.DataFrame, challenger_threshold: float) -> dict[str, object]:
    rest = frame[~frame["outcome"].isin(schema.LABELS)]
    out: dict[str, object] = {
        "rows": len(rest),
        "note": "label-free: each model's ROC AUC implied by its own calibrated PDs",
    }
    if len(rest) < 2:
        return {**out, "champion_roc_auc": None, "challenger_roc_auc": None}
    champion = estimate_performance(
        rest["champion_pd"].to_numpy(dtype=float), float(rest["champion_threshold"].iloc[-1])
    )
    challenger = estimate_performance(
        rest["challenger_pd"].to_numpy(dtype=float), challenger_threshold
    )
    return {
        **out,
        "champion_roc_auc": champion.roc_auc.value,
        "champion_band": [champion.roc_auc.lower, champion.roc_auc.upper],
        "challenger_roc_auc": challenger.roc_auc.value,
        "challenger_band": [challenger.roc_auc.lower, challenger.roc_auc.upper],
    }


def _single(frame: pd.DataFrame, column: str) -> int:
    values = frame[column].unique()
    if len(values) != 1:
        raise ValueError(f"{column} takes {len(values)} values; compare one pair of versions")
    return int(values[0])
