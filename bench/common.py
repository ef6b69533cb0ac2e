"""Shared pieces of the benchmark scripts (not a test module)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

from creditops import schema
from creditops.config import Settings, load_config


def original_features(X: pd.DataFrame) -> pd.DataFrame:
    """The original pipeline's preprocessing: ordinal category codes, NaN filled with 0."""
    out = X.copy()
    for name in schema.CATEGORICAL:
        spec = schema.FIELDS[name]
        assert isinstance(spec, schema.CategoricalField)
        codes = {category: i for i, category in enumerate(sorted(spec.categories))}
        out[name] = out[name].map(codes)
    return out.astype("float64").fillna(0)


def original_champion(seed: int = 42) -> RandomForestClassifier:
    """The original pipeline's champion: random forest, 100 trees, depth 10, min split 10."""
    return RandomForestClassifier(
        n_estimators=100, max_depth=10, min_samples_split=10, random_state=seed, n_jobs=2
    )


def temporary_settings(prefix: str, **sections: dict[str, Any]) -> Settings:
    """Embedded defaults with MLflow and the run log in a fresh temporary folder."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    return load_config(
        None,
        mlflow={
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "artifact_location": str(root / "art"),
        },
        logging={"runs_log": str(root / "runs.log"), "level": "WARNING"},
        **sections,
    )


def mean_sd(values: list[float]) -> str:
    array = np.asarray(values, dtype=float)
    return f"{array.mean():.4f} ± {array.std(ddof=1):.4f}"
