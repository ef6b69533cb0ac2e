"""What a retraining trains and gates on: the rows a lender really has, pure.

A lender knows an outcome only for a loan it granted (decision ``approve``,
the explored ones included), and only once the loan's performance window
closed: a default can be posted early, a good only at the end, so a vintage
whose window is still open holds its early defaults and none of its goods
(a biased sample). Production rows are therefore the granted applicants of
closed vintages with a posted outcome, never a declined applicant.

Reject inference (``[check] reject_inference``, fuzzy augmentation): each
declined applicant of the same vintages enters the training rows twice, as
bad with weight PD and as good with weight 1 - PD, the PD the model served
it; the holdout holds granted, matured rows only.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from creditops import schema
from creditops.data import Split
from creditops.errors import TrainingError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProductionCounts:
    """How many log rows of each kind a retraining used or left out, and up to when."""

    granted: int  # granted, matured, labelled: the production rows
    explored: int  # of which granted only by the explore share
    declined: int  # declined applicants of the same vintages (never trained on as labelled)
    immature: int  # granted rows whose vintage's window is still open (left out)
    unlabelled: int  # granted rows of closed vintages with no outcome posted (left out)
    applications_up_to: str  # the newest application date a production row has
    outcomes_up_to: str  # the newest outcome date used
    performance_months: int

    def as_dict(self) -> dict[str, object]:
        """The counts as a JSON-safe dict (decision record, training run params)."""
        return asdict(self)


@dataclass(frozen=True)
class ProductionData:
    """The production rows (features + ``Status``, oldest application first) and the declines."""

    rows: pd.DataFrame
    declined: pd.DataFrame  # features + ``probability``
    counts: ProductionCounts


def _times(frame: pd.DataFrame, column: str, fallback: str = "created_at") -> pd.Series:
    name = column if column in frame else fallback
    if name not in frame:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    times = pd.to_datetime(frame[name], utc=True)
    if name != fallback and fallback in frame:
        times = times.fillna(pd.to_datetime(frame[fallback], utc=True))
    return times


def _stamp(times: pd.Series) -> str:
    newest = times.max()
    return "" if pd.isna(newest) else pd.Timestamp(newest).isoformat()


def production_data(
    frame: pd.DataFrame, *, as_of: datetime | None = None, performance_months: int = 0
) -> ProductionData:
    """The inference log's granted, matured, labelled rows, and its declined applicants.

    Args:
        frame: inference-log rows (contract columns, ``outcome``, ``decision``,
            ``application_at``, ``observed_at``, ``explored``, ``probability``).
        as_of: the "now": outcomes observed later are not known (default: all).
        performance_months: months on book after which a vintage's outcomes are
            final; 0 takes every posted outcome.
    """
    applied = _times(frame, "application_at")
    granted = (
        frame["decision"].astype(str).eq("approve").to_numpy()
        if "decision" in frame
        else np.ones(len(frame), dtype=bool)
    )
    closed = np.ones(len(frame), dtype=bool)
    if as_of is not None and performance_months > 0:
        cutoff = pd.Timestamp(as_of) - pd.DateOffset(months=performance_months)
        closed = (applied <= cutoff).to_numpy()
    known = frame["outcome"].notna().to_numpy()
    if as_of is not None and "observed_at" in frame:
        observed = pd.to_datetime(frame["observed_at"], utc=True)
        known &= (observed.isna() | (observed <= pd.Timestamp(as_of))).to_numpy()
    use = granted & closed & known
    chosen = frame.loc[use].assign(_applied=applied[use]).sort_values("_applied", kind="stable")
    rows = schema.coerce_features(chosen.reset_index(drop=True))
    rows[schema.TARGET] = chosen["outcome"].astype(str).to_numpy()
    declined = frame.loc[~granted & closed]
    counts = ProductionCounts(
        granted=int(use.sum()),
        explored=int(chosen["explored"].fillna(False).astype(bool).sum())
        if "explored" in chosen
        else 0,
        declined=len(declined),
        immature=int((granted & ~closed).sum()),
        unlabelled=int((granted & closed & ~known).sum()),
        applications_up_to=_stamp(applied[use]),
        outcomes_up_to=_stamp(_times(chosen, "observed_at")),
        performance_months=performance_months,
    )
    out = schema.coerce_features(declined.reset_index(drop=True))
    out["probability"] = (
        declined["probability"].astype(float).to_numpy() if "probability" in declined else np.nan
    )
    return ProductionData(rows, out, counts)


def production_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Granted, labelled inference-log rows as training rows: features + ``Status``, oldest first."""
    return production_data(frame).rows


def fuzzy_augmented(declined: pd.DataFrame, weight: float = 1.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Each declined applicant twice: bad with weight PD, good with weight 1 - PD (x ``weight``).

    Args:
        declined: features + ``probability`` (the PD the applicant was served).
        weight: the production weight both copies are scaled by.

    Returns:
        The rows (features + ``Status``: all bads, then all goods) and their weights.
    """
    # a row logged without its PD (an old log) cannot be weighted: left out
    declined = declined.loc[np.isfinite(declined["probability"].to_numpy(dtype=np.float64))]
    pd_bad = np.clip(declined["probability"].to_numpy(dtype=np.float64), 0.0, 1.0)
    features = declined.loc[:, list(schema.FEATURES)]
    bads = features.assign(**{schema.TARGET: schema.POSITIVE_LABEL})
    goods = features.assign(**{schema.TARGET: schema.NEGATIVE_LABEL})
    rows = pd.concat([bads, goods], ignore_index=True)
    return rows, np.concatenate([pd_bad, 1.0 - pd_bad]) * weight


def _repeats(older: pd.DataFrame, holdout: pd.DataFrame) -> np.ndarray:
    """Which ``older`` rows repeat a holdout applicant (left out of the training rows).

    An applicant seen again in the holdout must not also be trained on: it
    would flatter the challenger at the gate.
    """
    features = list(schema.FEATURES)
    held = set(pd.util.hash_pandas_object(holdout.loc[:, features], index=False).tolist())
    keys = pd.util.hash_pandas_object(older.loc[:, features], index=False)
    repeated: np.ndarray = keys.isin(held).to_numpy()
    if repeated.any():
        log.info(
            "retraining: %d older production row(s) repeat a holdout applicant and are left out",
            int(repeated.sum()),
        )
    return repeated


def build_retraining_split(
    reference: pd.DataFrame,
    production: pd.DataFrame,
    holdout_share: float,
    *,
    min_holdout: int = 20,
    production_weight: float = 1.0,
    declined: pd.DataFrame | None = None,
) -> Split:
    """Training rows (reference + older production rows) and the holdout (the most recent ones).

    Args:
        reference: the champion's training rows (features + ``Status``).
        production: labelled production rows, oldest first.
        holdout_share: the share of production rows, newest, kept for the gate.
        production_weight: the sample weight of each production training row;
            reference rows weigh 1 (``[check] production_weight``). At 1 (and
            no reject inference) the split carries no weights.
        declined: declined applicants for reject inference (:func:`fuzzy_augmented`);
            never in the holdout.

    Returns:
        The split: ``train`` the training rows, reference first, ``test`` the
        holdout, ``weights`` one per training row (``None`` at weight 1).

    Raises:
        TrainingError: too few production rows, or a holdout with a single class.
    """
    n_holdout = math.ceil(len(production) * holdout_share)
    if n_holdout < min_holdout or len(production) - n_holdout < 1:
        raise TrainingError(
            f"retraining needs more labelled production rows: {len(production)} give a holdout of "
            f"{n_holdout} (minimum {min_holdout}); wait for more outcomes"
        )
    holdout = production.iloc[len(production) - n_holdout :].reset_index(drop=True)
    if holdout[schema.TARGET].nunique() < 2:
        raise TrainingError(
            "the holdout of recent labelled rows holds one class only: "
            "the gate cannot compare ROC AUC"
        )
    columns = [*schema.FEATURES, schema.TARGET]
    older = production.iloc[: len(production) - n_holdout].loc[:, columns]
    repeated = _repeats(older, holdout)
    parts = [reference.loc[:, columns], older.loc[~repeated]]
    weights = [np.ones(len(reference)), np.full(int((~repeated).sum()), production_weight)]
    if declined is not None and len(declined):
        augmented, augmented_weights = fuzzy_augmented(declined, production_weight)
        parts.append(augmented)
        weights.append(augmented_weights)
    train = pd.concat(parts, ignore_index=True)
    if production_weight == 1.0 and len(parts) == 2:
        return Split(train, holdout)
    return Split(train, holdout, np.concatenate(weights).astype(np.float64))
