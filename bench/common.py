"""Shared pieces of the benchmark scripts (not a test module)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import RandomForestClassifier

from creditops import schema


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
    return RandomForestClassifier(n_estimators=100, max_depth=10, min_samples_split=10, random_state=seed, n_jobs=2)


def mean_sd(values: list[float]) -> str:
    array = np.asarray(values, dtype=float)
    return f"{array.mean():.4f} ± {array.std(ddof=1):.4f}"
