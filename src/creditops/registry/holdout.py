"""The gate's rows must be new to both models: none of them trained on any.

A row is identified by its contract columns and ``Status`` as canonical text
(:func:`row_keys`); the rows a version trained on are those its training run
recorded (``data/train.csv``, read by :func:`~creditops.registry.client.load_training_frames`).
After a retraining on production rows, a champion may have trained on rows a
later retraining holds out: scoring it on them would flatter it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from creditops import schema
from creditops.config import PromoteConfig
from creditops.errors import NoTrainingDataError
from creditops.registry.client import ModelRef, load_training_frames

if TYPE_CHECKING:
    from creditops.tracking import TrackingClient

log = logging.getLogger(__name__)


def row_keys(frame: pd.DataFrame) -> list[str]:
    """One key per row: its contract columns and ``Status`` as canonical text.

    Numbers are written with 10 significant digits, so a row read back from a
    CSV artifact and the same row read from the inference log get one key.
    """
    columns = [*schema.FEATURES, schema.TARGET]
    text = frame.loc[:, columns].to_csv(
        index=False, header=False, float_format="%.10g", lineterminator="\n"
    )
    return text.splitlines()


def shared_rows(holdout: pd.DataFrame, training: pd.DataFrame) -> int:
    """How many ``holdout`` rows (repeats counted) also are ``training`` rows."""
    seen = set(row_keys(training))
    return sum(key in seen for key in row_keys(holdout))


def check_holdout(
    client: TrackingClient,
    holdout: pd.DataFrame,
    models: dict[str, ModelRef],
    config: PromoteConfig,
    known: dict[int, pd.DataFrame] | None = None,
) -> str:
    """Why ``holdout`` must not judge ``models`` ("" when it may).

    Args:
        client: the store the versions' training data is read from.
        holdout: the rows the gate would score both models on.
        models: the models by role ("challenger", "champion").
        config: ``[promote]``: ``allow_unverified_holdout`` lets a version that
            records no training data (:func:`register_fitted`) through, with a warning.
        known: training rows already read, by version.

    Raises:
        RegistryUnavailableError: the store failed while reading training data.
        RegistryError: a version's training data no longer matches its hash.
    """
    reasons = []
    for role, ref in models.items():
        training = (known or {}).get(ref.version)
        if training is None:
            try:
                training, _ = load_training_frames(client, ref)
            except NoTrainingDataError as exc:
                if config.allow_unverified_holdout:
                    log.warning("gate: holdout NOT checked against %s: %s", role, exc)
                    continue
                reasons.append(
                    f"{role} v{ref.version} records no training data to check the holdout "
                    f"against ({exc}); [promote] allow_unverified_holdout = true gates it anyway"
                )
                continue
        shared = shared_rows(holdout, training)
        if shared:
            reasons.append(
                f"{shared} of {len(holdout)} holdout rows are in {role} v{ref.version}'s "
                "training data"
            )
    return "; ".join(reasons)


def describe_rows(holdout: pd.DataFrame) -> str:
    """The gate's rows in a few words: ``"120 rows (31 bad, 89 good)"``."""
    labels = holdout[schema.TARGET].astype(str)
    bad = int((labels == schema.POSITIVE_LABEL).sum())
    return f"{len(holdout)} rows ({bad} bad, {len(holdout) - bad} good)"
