"""Figures a person would rather look at than read: ROC, KS, calibration, confusion, importance.

Each function writes one PNG and returns its path. matplotlib runs headless
(Agg), selected when a figure is drawn, not on import.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from creditops import calibration, evaluate


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path


def roc_curve_png(y: np.ndarray, p: np.ndarray, path: Path, title: str) -> Path:
    """ROC curve with its AUC and Gini."""
    from sklearn.metrics import roc_curve

    plt = _pyplot()
    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"AUC {evaluate.roc_auc(y, p):.3f}, Gini {evaluate.gini(y, p):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set(
        xlabel="false positive rate (goods declined)",
        ylabel="true positive rate (bads declined)",
        title=title,
    )
    ax.legend(loc="lower right")
    return _save(fig, path)


def ks_curve_png(y: np.ndarray, p: np.ndarray, path: Path, title: str) -> Path:
    """Cumulative shares of bads and goods by score, with the KS gap marked."""
    plt = _pyplot()
    thresholds, tpr, fpr = evaluate.ks_curve(y, p)
    thresholds = np.clip(thresholds, 0, 1)
    gap = int(np.argmax(tpr - fpr))
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(thresholds, tpr, label="bads declined")
    ax.plot(thresholds, fpr, label="goods declined")
    ax.vlines(
        thresholds[gap], fpr[gap], tpr[gap], colors="red", label=f"KS {tpr[gap] - fpr[gap]:.3f}"
    )
    ax.set(xlabel="decline threshold on P(bad)", ylabel="cumulative share", title=title)
    ax.invert_xaxis()
    ax.legend()
    return _save(fig, path)


def calibration_png(y: np.ndarray, p: np.ndarray, path: Path, title: str, bins: int = 10) -> Path:
    """Reliability diagram: observed bad rate per decile of predicted probability."""
    plt = _pyplot()
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    index = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    mean_p = [p[index == i].mean() for i in np.unique(index)]
    rate = [y[index == i].mean() for i in np.unique(index)]
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.plot(mean_p, rate, marker="o")
    ax.set(xlabel="mean predicted P(bad)", ylabel="observed bad rate", title=title)
    return _save(fig, path)


def reliability_png(
    y: np.ndarray, raw: np.ndarray, calibrated: np.ndarray | None, path: Path, title: str
) -> Path:
    """Reliability curve before and after calibration (10 equal-frequency bins), ECE in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.8))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    curves = [("raw score", raw), ("calibrated PD", calibrated)]
    for label, p in curves:
        if p is None:
            continue
        predicted, observed = calibration.reliability_curve(y, p)
        ece = calibration.expected_calibration_error(y, p)
        ax.plot(predicted, observed, marker="o", label=f"{label}, ECE {ece:.3f}")
    ax.set(xlabel="mean predicted P(bad)", ylabel="observed bad rate", title=title)
    ax.legend(loc="upper left")
    return _save(fig, path)


def confusion_png(y: np.ndarray, p: np.ndarray, threshold: float, path: Path, title: str) -> Path:
    """Confusion matrix at the decision threshold."""
    plt = _pyplot()
    c = evaluate.confusion(y, p, threshold)
    grid = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(grid, cmap="Blues")
    for (i, j), value in np.ndenumerate(grid):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=12)
    ax.set_xticks([0, 1], ["approve", "decline"])
    ax.set_yticks([0, 1], ["good", "bad"])
    ax.set(xlabel="decision", ylabel="outcome", title=f"{title}\nthreshold {threshold:.3f}")
    return _save(fig, path)


def importance_png(importance: Mapping[str, float], path: Path, title: str) -> Path:
    """Horizontal bars of feature importance, largest on top."""
    plt = _pyplot()
    items = sorted(importance.items(), key=lambda kv: kv[1])
    fig, ax = plt.subplots(figsize=(5, 0.3 * len(items) + 1.2))
    ax.barh([k for k, _ in items], [v for _, v in items])
    ax.set(xlabel="permutation importance (drop in ROC AUC)", title=title)
    return _save(fig, path)


def vintage_png(curves: Mapping[str, Mapping[int, float]], path: Path, title: str) -> Path:
    """Cumulative bad rate by months on book, one line per application month.

    Args:
        curves: application month (``YYYY-MM``) -> {months on book: cumulative bad rate}.
        path: the PNG to write.
        title: the figure's title.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colours = plt.get_cmap("viridis")
    for i, (month, curve) in enumerate(sorted(curves.items())):
        points = sorted(curve.items())
        ax.plot(
            [k for k, _ in points],
            [rate for _, rate in points],
            marker=".",
            color=colours(i / max(len(curves) - 1, 1)),
            label=month,
        )
    ax.set(xlabel="months on book", ylabel="cumulative bad rate", title=title)
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # months are whole
    if curves:
        ax.legend(loc="upper left", fontsize="x-small", ncol=2, title="application month")
    return _save(fig, path)


def backtest_png(
    bands: list[str],
    predicted: np.ndarray,
    observed: np.ndarray,
    interval: tuple[np.ndarray, np.ndarray],
    lights: list[str],
    path: Path,
    title: str,
) -> Path:
    """Predicted against observed bad rate by PD grade, the light as the marker's colour.

    Args:
        bands: the grades' names, lowest PDs first.
        predicted: their mean PDs.
        observed: their observed bad rates.
        interval: the lower and upper ends of each observed rate's interval.
        lights: green, yellow or red per grade.
        path: the PNG to write.
        title: the figure's title.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    x = np.arange(len(bands))
    ax.plot(
        x, predicted, marker="_", markersize=18, linestyle="none", color="black", label="predicted"
    )
    ax.errorbar(
        x,
        observed,
        yerr=[observed - interval[0], interval[1] - observed],
        fmt="none",
        ecolor="grey",
        capsize=3,
    )
    colours = {"green": "tab:green", "yellow": "gold", "red": "tab:red"}
    ax.scatter(
        x, observed, c=[colours.get(light, "grey") for light in lights], zorder=3, label="observed"
    )
    ax.set_xticks(x, bands)
    ax.set(xlabel="PD grade", ylabel="bad rate", title=title)
    ax.legend(loc="upper left")
    return _save(fig, path)
