"""Expected answers computed in the test, never taken from the service under test.

A registered version's sklearn pipeline is loaded from the registry and scored
here on the same rows; its decision is ``probability >= threshold`` with the
threshold read from the version's own ``threshold`` tag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from creditops.config import MlflowConfig


@dataclass(frozen=True)
class ExpectedScores:
    """What a version must answer for some rows."""

    version: int
    threshold: float
    probability: np.ndarray
    decisions: list[str]

    @property
    def labels(self) -> list[int]:
        """The MLflow-style answer: 1 = decline (predicted bad), 0 = approve."""
        return [1 if d == "decline" else 0 for d in self.decisions]


def expected_scores(
    mlflow: MlflowConfig, version: int, rows: Sequence[dict[str, Any]]
) -> ExpectedScores:
    """Score ``rows`` with ``version``'s registered pipeline, in this process."""
    from creditops import registry, schema

    client = registry.connect(mlflow)
    name = mlflow.registered_model
    threshold = float(client.get_model_version(name, str(version)).tags["threshold"])
    pipeline = registry.load_pipeline(client, registry.get_version(client, name, version))
    frame = schema.coerce_features(pd.DataFrame(list(rows)))
    probability = np.asarray(pipeline.predict_proba(frame)[:, 1], dtype=np.float64)
    decisions = ["decline" if p >= threshold else "approve" for p in probability]
    return ExpectedScores(version, threshold, probability, decisions)
