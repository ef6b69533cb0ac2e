"""Helpers shared by test modules (import as ``from support import ...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from creditops.config import Settings, load_config


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
