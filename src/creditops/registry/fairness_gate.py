"""The gate's fairness floor: the challenger's approval-rate ratio on the gate's rows.

The challenger is scored on the same rows the ROC AUC gate uses, declining at
its own threshold; :func:`creditops.fairness.fairness_figures` gives each
protected attribute's approval-rate ratio (lowest group over the
most-approved). A ratio below ``[fairness] min_approval_ratio`` refuses the
challenger (rule ``fairness``) unless ``enforce = false``, which promotes it
with a warning; either way the figures go into the decision record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from creditops import schema
from creditops.config import FairnessConfig
from creditops.fairness import FairnessReport, fairness_figures
from creditops.registry.client import ModelRef, load_pipeline

if TYPE_CHECKING:
    import pandas as pd

    from creditops.tracking import TrackingClient


def challenger_fairness(
    client: TrackingClient, challenger: ModelRef, holdout: pd.DataFrame, config: FairnessConfig
) -> FairnessReport:
    """The fairness figures of the challenger's decisions on the gate's rows, at its threshold."""
    from creditops.data import label_vector

    model = load_pipeline(client, challenger)
    proba = model.predict_proba(schema.coerce_features(holdout))[:, 1]
    y = label_vector(holdout[schema.TARGET])
    return fairness_figures(holdout, proba < challenger.threshold, y, config)


def floor_verdict(report: FairnessReport, config: FairnessConfig) -> tuple[bool, str]:
    """(refuse, sentence): whether the floor refuses the challenger, and why or the warning.

    The sentence is empty when every attribute with a figure is at or above the floor.
    """
    breaches = report.breaches(config.min_approval_ratio)
    if not breaches:
        return False, ""
    named = ", ".join(f"{attribute} {ratio:.3f}" for attribute, ratio in breaches)
    sentence = (
        f"approval-rate ratio below the floor {config.min_approval_ratio:.3f} "
        f"([fairness] min_approval_ratio): {named} ({report.summary()})"
    )
    if config.enforce:
        return True, "refused by the fairness floor: " + sentence
    return False, "WARNING, not enforced ([fairness] enforce = false): " + sentence
