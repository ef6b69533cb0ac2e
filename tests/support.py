"""Helpers shared by test modules (import as ``from support import ...``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from creditops.config import Settings, load_config

if TYPE_CHECKING:
    import xgboost

    from creditops.inference import path_trees


def isolated_sections(root: Path) -> dict[str, dict[str, Any]]:
    """Config overrides that keep every file a command writes under ``root``."""
    return {
        "mlflow": {
            "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
            "artifact_location": str(root / "artifacts"),
        },
        "logging": {"runs_log": str(root / "runs.log")},
        "data": {"cache_dir": str(root / "cache")},
        "serve": {"store_url": f"sqlite:///{root / 'inferences.db'}"},
        "monitor": {"reports_dir": str(root / "reports")},
        "check": {"decisions_dir": str(root / "decisions")},
    }


TINY_TRAIN: dict[str, Any] = {
    "families": ["logreg", "lightgbm"],
    "trials_per_family": 2,
    "cv_folds": 3,
    "n_jobs": 1,
}


def make_settings(root: Path, **sections: dict[str, Any]) -> Settings:
    """Settings isolated under ``root`` with ``sections`` merged over them."""
    merged = isolated_sections(root)
    for name, values in sections.items():
        merged[name] = {**merged.get(name, {}), **values}
    return load_config(None, **merged)


def tree_data(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    """Six columns (one 0/1) with 8 % missing values and a label of four of them: for tree tests.

    The missing values give the trees' splits a default side.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[:, 3] = rng.integers(0, 2, n)
    y = (x[:, 0] + x[:, 1] * x[:, 3] - 0.5 * x[:, 4] + rng.normal(size=n) > 0).astype(int)
    x[rng.random(x.shape) < 0.08] = np.nan
    return x, y


def xgboost_paths(model: xgboost.XGBClassifier) -> path_trees.PathTrees:
    """The vector-leaf trees of an XGBoost classifier's decision paths."""
    from creditops.inference import path_trees

    parsed = json.loads(bytes(model.get_booster().save_raw("json")))
    trees = parsed["learner"]["gradient_booster"]["model"]["trees"]
    return path_trees.path_booster(parsed, [path_trees.node_means(t) for t in trees])


def by_xgboost(paths: path_trees.PathTrees, x: np.ndarray, missing: float) -> np.ndarray:
    """The independent answer: XGBoost's own predictor on the same vector-leaf trees."""
    margin = paths.booster.inplace_predict(
        x, predict_type="margin", missing=missing, validate_features=False
    )
    return np.asarray(margin, dtype=np.float64).reshape(len(x), -1)


def near_splits(paths: path_trees.PathTrees, rows: np.ndarray, seed: int) -> np.ndarray:
    """Rows whose values sit on, just under and just over the trees' own split conditions."""
    rng = np.random.default_rng(seed)
    out = rows.copy()
    for tree in paths.trees:
        for node, child in enumerate(tree["left_children"]):
            if child == -1:
                continue
            condition = np.float32(tree["split_conditions"][node])
            if not np.isfinite(condition):
                continue
            i = rng.integers(0, len(out))
            nudge = rng.choice([-1, 0, 1])
            value = condition if nudge == 0 else np.nextafter(condition, np.float32(nudge * np.inf))
            out[i, tree["split_indices"][node]] = float(value)
    return out
