"""Fair-lending figures by protected group, computed with fairlearn's metrics.

The protected attributes (``[fairness] protected``: Age and Marital status,
bases under ECOA / Regulation B) are kept out of the model by default
(:func:`creditops.features.model_inputs`), but never out of the audit: every
stage that sees decisions (training, the promotion gate, monitoring) reports
by them through :func:`fairness_figures`:

* each group's approval rate and its ratio to the most-approved group (the
  four-fifths screen), with fairlearn's ``demographic_parity_ratio`` over the
  groups (the lowest of those ratios);
* with outcomes: TPR (share of bads declined) and FPR (share of goods
  declined) per group, and fairlearn's ``equalized_odds_difference``.

Age is reported by band, the last band starting at 62 (Regulation B's elderly
age). A group with fewer than ``min_group_rows`` applicants gets no figure,
only the reason: a ratio of two tiny counts says nothing.

:func:`proxy_strength` is the check that an excluded attribute does not come
back through a proxy: how well the model's inputs predict each group.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from creditops.config import FairnessConfig

log = logging.getLogger(__name__)

MISSING_GROUP = "missing"


def age_band_labels(edges: Sequence[int]) -> list[str]:
    """Band names for ``edges``: ``18-25``, ..., and the open last band ``62+``."""
    names = [f"{low}-{high - 1}" for low, high in itertools.pairwise(edges)]
    return [*names, f"{edges[-1]}+"]


def group_labels(frame: pd.DataFrame, attribute: str, config: FairnessConfig) -> pd.Series:
    """Each row's group for ``attribute`` (Age by band; missing values as ``missing``)."""
    values = frame[attribute]
    if attribute == "Age":
        edges = list(config.age_bands)
        banded = pd.cut(
            pd.to_numeric(values, errors="coerce"),
            bins=[*edges, math.inf],
            right=False,
            labels=age_band_labels(edges),
        ).astype("object")
        below = pd.to_numeric(values, errors="coerce") < edges[0]
        banded = banded.where(~below, f"<{edges[0]}")
        return banded.fillna(MISSING_GROUP).astype(str).rename(attribute)
    return values.astype("object").fillna(MISSING_GROUP).astype(str).rename(attribute)


@dataclass(frozen=True)
class GroupFigure:
    """One group's figures; ``None`` where absent, with the reason in ``reason``."""

    group: str
    rows: int
    approval_rate: float | None
    approval_ratio: float | None
    tpr: float | None = None
    fpr: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class AttributeFigures:
    """One protected attribute's figures over its groups."""

    attribute: str
    groups: tuple[GroupFigure, ...]
    # fairlearn demographic_parity_ratio over the groups with enough rows
    dp_ratio: float | None
    # fairlearn equalized_odds_difference (None without outcomes)
    eo_diff: float | None
    reason: str = ""
    reference_group: str = ""


@dataclass(frozen=True)
class FairnessReport:
    """The figures of every protected attribute on one set of decisions."""

    attributes: tuple[AttributeFigures, ...]
    rows: int
    min_group_rows: int
    policy: str = "exclude"
    proxy: dict[str, float | None] = field(default_factory=dict)

    def attribute(self, name: str) -> AttributeFigures:
        """The figures of one attribute (KeyError if it was not reported)."""
        for figures in self.attributes:
            if figures.attribute == name:
                return figures
        raise KeyError(name)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: absent figures are ``null`` with their reason."""
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metric names (``fair_age_62plus_approval_rate``); absent figures left out."""
        out: dict[str, float] = {}
        for figures in self.attributes:
            label = figures.attribute.lower()
            if figures.dp_ratio is not None:
                out[f"fair_{label}_approval_ratio"] = figures.dp_ratio
            if figures.eo_diff is not None:
                out[f"fair_{label}_eo_diff"] = figures.eo_diff
            for group in figures.groups:
                key = f"fair_{label}_{metric_token(group.group)}"
                out[f"{key}_rows"] = float(group.rows)
                for name in ("approval_rate", "approval_ratio", "tpr", "fpr"):
                    value = getattr(group, name)
                    if value is not None:
                        out[f"{key}_{name}"] = float(value)
        return out

    def breaches(self, floor: float) -> list[tuple[str, float]]:
        """(attribute, approval-rate ratio) for every attribute below ``floor``."""
        return [
            (f.attribute, f.dp_ratio)
            for f in self.attributes
            if f.dp_ratio is not None and f.dp_ratio < floor
        ]

    def summary(self) -> str:
        """One line: each attribute's approval-rate ratio and equalized-odds difference."""
        parts = []
        for f in self.attributes:
            ratio = f"{f.dp_ratio:.3f}" if f.dp_ratio is not None else f"absent ({f.reason})"
            lowest = min(
                (g for g in f.groups if g.approval_ratio is not None),
                key=lambda g: g.approval_ratio or 0.0,
                default=None,
            )
            worst = f", lowest group {lowest.group}" if lowest is not None else ""
            eo = f", EO difference {f.eo_diff:.3f}" if f.eo_diff is not None else ""
            parts.append(f"{f.attribute}: approval-rate ratio {ratio}{worst}{eo}")
        return "; ".join(parts)


def metric_token(group: str) -> str:
    """A group name as MLflow metric names allow it (``62+`` -> ``62plus``)."""
    return group.replace("+", "plus").replace("<", "lt").replace(" ", "_")


def approved_flags(decisions: object) -> np.ndarray:
    """``decisions`` as booleans (True = approved): booleans, or "approve"/"decline" strings."""
    values = np.asarray(decisions)
    if values.dtype.kind in "OUS":
        return np.asarray(values.astype(str) == "approve", dtype=bool)
    return values.astype(bool)


def fairness_figures(
    frame: pd.DataFrame,
    decisions: object,
    y_true: object | None,
    config: FairnessConfig,
) -> FairnessReport:
    """The fairness figures of ``decisions`` on ``frame``'s applicants, by protected attribute.

    Args:
        frame: the applicants (at least the protected columns).
        decisions: one per row, True (or "approve") = approved.
        y_true: outcomes (1 = bad) for TPR/FPR and equalized odds; ``None``: not reported.
        config: the protected attributes, the Age bands and ``min_group_rows``.
    """
    approved = approved_flags(decisions)
    if approved.shape != (len(frame),):
        raise ValueError(f"{approved.size} decisions for {len(frame)} rows")
    y = None if y_true is None else np.asarray(y_true, dtype=np.int64).ravel()
    attributes = tuple(
        _attribute_figures(group_labels(frame, name, config), approved, y, config.min_group_rows)
        for name in config.protected
    )
    return FairnessReport(attributes, len(frame), config.min_group_rows, config.policy)


def _approval_rates(
    labels: np.ndarray, approved: np.ndarray, eligible: list[str]
) -> tuple[dict[str, float], float | None]:
    """Approval rate of each eligible group (fairlearn ``MetricFrame``) and their DP ratio."""
    from fairlearn.metrics import MetricFrame, demographic_parity_ratio, selection_rate

    if not eligible:
        return {}, None
    keep = np.isin(labels, eligible)
    chosen = approved[keep].astype(np.int64)  # selection rate ignores y_true
    frame = MetricFrame(
        metrics=selection_rate, y_true=chosen, y_pred=chosen, sensitive_features=labels[keep]
    )
    rates = {str(k): float(v) for k, v in frame.by_group.items()}
    if len(eligible) < 2:
        return rates, None
    return rates, float(demographic_parity_ratio(chosen, chosen, sensitive_features=labels[keep]))


def _odds(
    labels: np.ndarray, approved: np.ndarray, y: np.ndarray, eligible: list[str]
) -> tuple[dict[str, tuple[float, float]], float | None]:
    """TPR and FPR of each eligible group with both outcomes, and the equalized-odds difference.

    The decline is the "positive" action: TPR = share of bads declined, FPR =
    share of goods declined.
    """
    from fairlearn.metrics import (
        MetricFrame,
        equalized_odds_difference,
        false_positive_rate,
        true_positive_rate,
    )

    both = [g for g in eligible if len(np.unique(y[labels == g])) == 2]
    if len(both) < 2:
        return {}, None
    mask = np.isin(labels, both)
    declined = 1 - approved[mask].astype(np.int64)
    frame = MetricFrame(
        metrics={"tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=y[mask],
        y_pred=declined,
        sensitive_features=labels[mask],
    )
    odds = {str(g): (float(r["tpr"]), float(r["fpr"])) for g, r in frame.by_group.iterrows()}
    return odds, float(
        equalized_odds_difference(y[mask], declined, sensitive_features=labels[mask])
    )


def _attribute_figures(
    groups: pd.Series, approved: np.ndarray, y: np.ndarray | None, min_rows: int
) -> AttributeFigures:
    labels = groups.to_numpy(dtype=object)
    counts = pd.Series(labels).value_counts()
    eligible = sorted(str(g) for g, n in counts.items() if n >= min_rows)
    rates, dp_ratio = _approval_rates(labels, approved, eligible)
    reason = ""
    if dp_ratio is None:
        reason = f"{len(eligible)} group(s) with >= {min_rows} rows: no ratio between groups"
    reference = max(rates, key=lambda g: rates[g]) if rates else ""
    highest = rates.get(reference, 0.0)
    odds, eo_diff = _odds(labels, approved, y, eligible) if y is not None else ({}, None)
    figures = []
    for group in sorted(str(g) for g in counts.index):
        rows = int(counts[group])
        if group not in rates:
            figures.append(
                GroupFigure(group, rows, None, None, reason=f"{rows} rows < min {min_rows}")
            )
            continue
        ratio = rates[group] / highest if highest > 0 else None
        tpr, fpr = odds.get(group, (None, None))
        why = ""
        if y is not None and group not in odds:
            single = len(np.unique(y[labels == group])) < 2
            why = "one outcome class only: no TPR/FPR" if single else "no other group to compare"
        figures.append(GroupFigure(group, rows, rates[group], ratio, tpr, fpr, why))
    return AttributeFigures(str(groups.name), tuple(figures), dp_ratio, eo_diff, reason, reference)


def proxy_strength(
    frame: pd.DataFrame, config: FairnessConfig, *, folds: int = 3, seed: int = 0
) -> dict[str, float | None]:
    """How well the model's other inputs predict each protected group: CV ROC AUC, one-vs-rest.

    A logistic regression on the inputs left once every protected attribute
    is dropped (the logistic family's preprocessing) predicts membership of
    each Age band and each Marital group; 0.5 = no proxy, 1.0 = a perfect one.
    A group with fewer than ``min_group_rows`` members is ``None``.

    Returns:
        ``{"Age:62+": 0.71, "Marital:single": 0.83, ...}``.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline

    from creditops.evaluate import roc_auc
    from creditops.features import add_derived_features, build_preprocessor

    protected = tuple(config.protected)
    inputs = add_derived_features(frame, protected)
    out: dict[str, float | None] = {}
    for attribute in protected:
        labels = group_labels(frame, attribute, config).to_numpy(dtype=object)
        for group in sorted({str(g) for g in labels}):
            target = (labels == group).astype(np.int64)
            members = int(target.sum())
            if min(members, target.size - members) < max(config.min_group_rows, folds):
                out[f"{attribute}:{group}"] = None
                continue
            model = make_pipeline(
                build_preprocessor("logreg", protected), LogisticRegression(max_iter=2_000)
            )
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
            proba = cross_val_predict(model, inputs, target, cv=splitter, method="predict_proba")
            out[f"{attribute}:{group}"] = roc_auc(target, proba[:, 1])
    return out


def proxy_metrics(proxy: dict[str, float | None]) -> dict[str, float]:
    """The proxy check as MLflow metrics (``proxy_auc_age_62plus``); absent groups left out."""
    out = {}
    for key, value in proxy.items():
        attribute, _, group = key.partition(":")
        if value is not None:
            out[f"proxy_auc_{attribute.lower()}_{metric_token(group)}"] = value
    return out


def included_warning(config: FairnessConfig) -> str:
    """The warning owed when the protected attributes are model inputs ("" when excluded)."""
    if config.policy != "include" or not config.protected:
        return ""
    return (
        f"WARNING: [fairness] policy = include: the protected attributes "
        f"{', '.join(config.protected)} are model inputs (for study only; never deploy this model)"
    )


def card_lines(report: FairnessReport | None, proxy: dict[str, float | None]) -> list[str]:
    """The model card's fairness section: figures by group, absent ones with their reason."""
    if report is None:
        return []
    lines = [
        "## Fairness (test split, at the threshold)",
        f"- model inputs: protected attributes {report.policy}d"
        + (" (WARNING: for study only)" if report.policy == "include" else ""),
        f"- approval-rate ratio to the most-approved group (four-fifths screen); groups under "
        f"{report.min_group_rows} applicants get no figure",
    ]
    for figures in report.attributes:
        ratio = "absent" if figures.dp_ratio is None else f"{figures.dp_ratio:.3f}"
        eo = "absent" if figures.eo_diff is None else f"{figures.eo_diff:.3f}"
        lines.append(
            f"- {figures.attribute}: approval-rate ratio {ratio}, equalized-odds difference {eo}"
            + (f" ({figures.reason})" if figures.reason else "")
        )
        for g in figures.groups:
            if g.approval_rate is None:
                lines.append(f"  - {g.group}: {g.rows} rows, absent ({g.reason})")
                continue
            odds = (
                f", TPR {g.tpr:.3f}, FPR {g.fpr:.3f}"
                if g.tpr is not None and g.fpr is not None
                else (f" ({g.reason})" if g.reason else "")
            )
            lines.append(
                f"  - {g.group}: {g.rows} rows, approval {g.approval_rate:.3f}, "
                f"ratio {g.approval_ratio or 0.0:.3f}{odds}"
            )
    if proxy:
        lines += [
            "",
            "## Proxy check (training split, CV ROC AUC of the other inputs predicting the group)",
            *[
                f"- {key}: " + ("absent (too few members)" if auc is None else f"{auc:.3f}")
                for key, auc in proxy.items()
            ],
        ]
    return [*lines, ""]
