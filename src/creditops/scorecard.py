"""The points scorecard family: binned characteristics, weight of evidence, logistic regression.

:class:`ScorecardClassifier` wraps optbinning's ``BinningProcess`` and
``Scorecard`` as one sklearn estimator, the last step of the family's
pipeline (``features.build_pipeline("scorecard", ...)``):

* each characteristic (model input) is cut into optimal bins, monotonic in
  the event (bad) rate where the risk direction is known
  (``monotonic_trends``); categories are grouped the same way; a missing
  value has a bin of its own, weighed by its own bad rate;
* a logistic regression on the bins' weights of evidence gives the PD;
* points are scaled by points-to-double-the-odds: ``base_points`` at odds
  ``odds``:1 (good:bad), ``pdo`` more points for twice the odds. An
  applicant's total is ``offset - factor x log-odds(bad)``, a decreasing
  transform of the PD: more points, less risk.

Reasons are points lost: for each characteristic, the most points it can give
minus the points the applicant's bin gives (0 for the best bin). They are
measured against the best attainable bin, as an adverse-action notice asks
("what kept you from the best score"), and are additive in log-odds
(``points lost / factor``).

This module imports only the contract, so ``features`` can build it;
optbinning is imported when a scorecard is fitted or unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin

from creditops import schema
from creditops.errors import TrainingError

if TYPE_CHECKING:
    from optbinning import Scorecard
    from sklearn.pipeline import Pipeline

    from creditops.tracking import TrackingClient

# Where a finalist run keeps the points table.
POINTS_TABLE_ARTIFACTS = "scorecard"

# The table a points-table artifact holds, in its column order.
TABLE_COLUMNS = (
    "characteristic",
    "bin_id",
    "bin",
    "count",
    "event_rate",
    "woe",
    "coefficient",
    "points",
    "max_points",
)


def _plain_name(column: object) -> str:
    """``num__Income`` -> ``Income``: the preprocessor's prefix is not part of a characteristic."""
    return str(column).split("__", 1)[-1]


class ScorecardClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A points scorecard as a binary sklearn classifier (class 1 = bad).

    Args:
        C: inverse L2 strength of the logistic regression on weights of evidence.
        max_n_bins: the most bins a characteristic is cut into.
        min_prebin_size: the smallest share of rows a pre-bin may hold.
        monotonic_trends: characteristic -> optbinning ``monotonic_trend``
            ("ascending": the bad rate rises with the value; "descending").
        pdo: points that double the odds.
        odds: the good:bad odds at ``base_points``.
        base_points: the total score at ``odds``.
    """

    def __init__(
        self,
        C: float = 1.0,
        max_n_bins: int = 8,
        min_prebin_size: float = 0.05,
        monotonic_trends: Mapping[str, str] | None = None,
        pdo: float = 20.0,
        odds: float = 50.0,
        base_points: float = 600.0,
    ) -> None:
        self.C = C
        self.max_n_bins = max_n_bins
        self.min_prebin_size = min_prebin_size
        self.monotonic_trends = monotonic_trends
        self.pdo = pdo
        self.odds = odds
        self.base_points = base_points

    # --- fitting ---------------------------------------------------------------------

    def fit(
        self, X: pd.DataFrame, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> ScorecardClassifier:
        """Bin every column of ``X``, fit the regression and scale the points.

        A characteristic whose coefficient comes out with the wrong sign (its
        points would fall as its own bad rate falls: a collinear partner took
        its weight) is dropped and the scorecard refitted, until every sign
        agrees with the bins: a reviewer can read each row of the points table
        on its own, and monotone bins give monotone points.

        Raises:
            TrainingError: ``X`` is not a frame, a target that is not 0/1, or
                no characteristic left.
        """
        frame = self._frame(X)
        target = np.asarray(y)
        if not set(np.unique(target)) <= {0, 1}:
            raise TrainingError("scorecard: the target must be 0 (good) / 1 (bad)")
        self.inputs_: tuple[str, ...] = tuple(frame.columns)
        kept = list(self.inputs_)
        while kept:
            card = self._scorecard(kept)
            # a missing value weighs as its own bin's bad rate (a missing Income is a risk)
            card.fit(frame[kept], target, sample_weight=sample_weight, metric_missing="empirical")
            selected = list(card.binning_process_.get_support(names=True))
            coef = np.asarray(card.estimator_.coef_, dtype=np.float64).ravel()
            # a higher weight of evidence is a lower bad rate: its coefficient must be <= 0
            wrong = {name for name, c in zip(selected, coef, strict=True) if c > 0}
            if not wrong:
                break
            kept = [name for name in kept if name not in wrong]
        else:
            raise TrainingError(
                "scorecard: no characteristic keeps a coefficient of the right sign"
            )
        self.scorecard_: Scorecard = card
        self.characteristics_: tuple[str, ...] = tuple(selected)
        self.dropped_: tuple[str, ...] = tuple(n for n in self.inputs_ if n not in selected)
        self.classes_ = np.asarray([0, 1])
        self._store_points(card.table(style="detailed"))
        return self

    def _scorecard(self, names: list[str]) -> Scorecard:
        """The unfitted optbinning scorecard over ``names``."""
        from optbinning import BinningProcess, Scorecard
        from sklearn.linear_model import LogisticRegression

        trends = dict(self.monotonic_trends or {})
        binning = BinningProcess(
            names,
            categorical_variables=[n for n in names if n in schema.CATEGORICAL],
            max_n_bins=self.max_n_bins,
            min_prebin_size=self.min_prebin_size,
            binning_fit_params={n: {"monotonic_trend": trends[n]} for n in names if n in trends},
        )
        return Scorecard(
            binning_process=binning,
            estimator=LogisticRegression(C=self.C, max_iter=2_000),
            scaling_method="pdo_odds",
            scaling_method_params={
                "pdo": self.pdo,
                "odds": self.odds,
                "scorecard_points": self.base_points,
            },
        )

    def _store_points(self, detailed: pd.DataFrame) -> None:
        """Each characteristic's points per bin (bin-id order), its maximum, and the table."""
        self.bin_points_: dict[str, np.ndarray] = {}
        # the points of a neutral weight of evidence (the "Special" bin's): what the
        # regression gives a category unseen in training
        self.neutral_points_: dict[str, float] = {}
        rows = []
        for name in self.characteristics_:
            part = detailed[detailed["Variable"] == name].sort_values("Bin id")
            points = part["Points"].to_numpy(dtype=np.float64)
            self.bin_points_[name] = points
            self.neutral_points_[name] = float(points[part["Bin"].astype(str) == "Special"][0])
            for (_, row), value in zip(part.iterrows(), points, strict=True):
                rows.append(
                    (
                        name,
                        int(row["Bin id"]),
                        _bin_label(row["Bin"]),
                        int(row["Count"]),
                        float(row["Event rate"]) if pd.notna(row["Event rate"]) else np.nan,
                        float(row["WoE"]),
                        float(row["Coefficient"]),
                        float(value),
                        float(points.max()),
                    )
                )
        # per input column (a dropped characteristic gives no points and loses none)
        self.max_points_ = np.asarray(
            [self.bin_points_[n].max() if n in self.bin_points_ else 0.0 for n in self.inputs_],
            dtype=np.float64,
        )
        self.points_table_ = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TrainingError(
                "scorecard: needs a named frame (the preprocessor's pandas output), "
                f"got {type(X).__name__}"
            )
        return X.rename(columns=_plain_name)

    # --- scoring ---------------------------------------------------------------------

    @property
    def factor(self) -> float:
        """Points per unit of log-odds: ``pdo / ln 2``."""
        return float(self.pdo / np.log(2.0))

    @property
    def offset(self) -> float:
        """The total score at log-odds(bad) 0."""
        return float(self.base_points - self.factor * np.log(self.odds))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Rows x 2: P(good), P(bad), the scorecard regression's probability."""
        return np.asarray(self.scorecard_.predict_proba(self._frame(X)), dtype=np.float64)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 (bad) where P(bad) >= 0.5, else 0."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)

    def points(self, X: pd.DataFrame) -> np.ndarray:
        """Rows x input columns: the points each applicant's bin gives (0: a dropped column)."""
        frame = self._frame(X)
        bins = self.scorecard_.binning_process_.transform(
            frame[list(self.characteristics_)],
            metric="indices",
            metric_special="empirical",
            metric_missing="empirical",
        )
        out = np.zeros((len(frame), len(self.inputs_)), dtype=np.float64)
        for j, name in enumerate(self.inputs_):
            if name in self.bin_points_:
                index = bins[name].to_numpy(dtype=np.int64)  # -1: a category unseen in training
                looked_up = self.bin_points_[name][np.maximum(index, 0)]
                out[:, j] = np.where(index < 0, self.neutral_points_[name], looked_up)
        return out

    def total_points(self, X: pd.DataFrame) -> np.ndarray:
        """Each applicant's score: the sum of its characteristics' points."""
        return self.points(X).sum(axis=1)  # type: ignore[no-any-return]

    def points_lost(self, X: pd.DataFrame) -> np.ndarray:
        """Rows x characteristics: points below each characteristic's maximum (>= 0)."""
        return self.max_points_ - self.points(X)  # type: ignore[no-any-return]


def _bin_label(value: object) -> str:
    """A bin as text: ``[1.50, 2.50)`` stays, a category group ``['owner']`` -> ``owner``."""
    if isinstance(value, list | tuple | np.ndarray):
        return ", ".join(str(v) for v in value)
    return str(value)


def monotonic_trends(directions: Mapping[str, int], inputs: Sequence[str]) -> dict[str, str]:
    """optbinning trends from risk directions (+1: risk rises with the value), numeric inputs only."""
    return {
        name: "ascending" if sign > 0 else "descending"
        for name, sign in directions.items()
        if sign and name in inputs and name not in schema.CATEGORICAL
    }


def find_scorecard(model: object) -> ScorecardClassifier | None:
    """The scorecard inside a fitted pipeline (or a wrapper holding one as ``pipeline``), if any."""
    pipeline: Pipeline | object = getattr(model, "pipeline", model)
    steps: Any = getattr(pipeline, "named_steps", None)
    if steps is None or "model" not in steps:
        return None
    found = steps["model"]
    return found if isinstance(found, ScorecardClassifier) else None


def applicant_points(model: object, frame: pd.DataFrame) -> np.ndarray | None:
    """Each applicant's total points, through the pipeline's own steps; None if not a scorecard."""
    card = find_scorecard(model)
    if card is None:
        return None
    pipeline: Any = getattr(model, "pipeline", model)
    transformed = pipeline[:-1].transform(frame)
    return card.total_points(transformed)


def write_points_table(card: ScorecardClassifier, folder: Path) -> list[Path]:
    """The points table as ``points_table.csv`` and ``points_table.png`` in ``folder``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = card.points_table_
    csv = folder / "points_table.csv"
    table.to_csv(csv, index=False)
    names = list(card.characteristics_)
    columns = 3
    rows = -(-len(names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(15, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        part = table[(table["characteristic"] == name) & (table["count"] > 0)]
        ax.barh(part["bin"], part["points"], color="#3b6ea5")
        ax.set_title(f"{name} (max {part['points'].max():.0f})", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.invert_yaxis()
    for ax in axes.ravel()[len(names) :]:
        ax.set_visible(False)
    figure.suptitle(
        f"Scorecard points per bin ({card.base_points:g} points at {card.odds:g}:1, "
        f"{card.pdo:g} points double the odds)"
    )
    figure.tight_layout()
    png = folder / "points_table.png"
    figure.savefig(png, dpi=90)
    plt.close(figure)
    return [csv, png]


def card_section(card: ScorecardClassifier) -> str:
    """The model card's scorecard section (Markdown): scaling and each characteristic's range."""
    table = card.points_table_
    lines = [
        "## Scorecard",
        f"- scaling: {card.base_points:g} points at good:bad odds {card.odds:g}:1; "
        f"{card.pdo:g} points double the odds (PD = 1 / (1 + exp((points - "
        f"{card.offset:.2f}) / {card.factor:.4f})))",
        "- reasons: the characteristics whose points are furthest below their maximum",
        "- points table: `scorecard/points_table.csv` and `scorecard/points_table.png`",
        "- left out (coefficient against their own bad rates): "
        + (", ".join(card.dropped_) or "none"),
        "",
        "| characteristic | bins | min points | max points |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in card.characteristics_:
        part = table[(table["characteristic"] == name) & (table["count"] > 0)]
        lines.append(
            f"| {name} | {len(part)} | {part['points'].min():.1f} | {part['points'].max():.1f} |"
        )
    return "\n".join([*lines, ""])


def log_points_table(client: TrackingClient, run_id: str, model: object) -> str:
    """Log a scorecard's points table (CSV + PNG) to ``run_id``; its model-card section.

    Returns:
        The Markdown section, or "" when ``model`` is not a scorecard (nothing logged).
    """
    import tempfile

    card = find_scorecard(model)
    if card is None:
        return ""
    with tempfile.TemporaryDirectory(prefix="creditops-scorecard-") as tmp:
        write_points_table(card, Path(tmp))
        client.log_artifacts(run_id, tmp, POINTS_TABLE_ARTIFACTS)
    return "\n" + card_section(card)
