"""Helpers shared by test modules (import as ``from support import ...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
