"""The embedded search ranges and grids: what ``creditops train`` searches when the config is silent.

``[train.search_space.<family>]`` and ``[train.grid.<family>]`` in the config
file override these, family by family (see ``TrainConfig.space_for``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator


class ParamSpace(BaseModel):
    """One hyperparameter's search range."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[str | int | float | bool | None] | None = None

    @model_validator(mode="after")
    def _check_range(self) -> ParamSpace:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"an {self.type} parameter needs 'low' and 'high'")
            if self.low > self.high:
                raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError(f"a log-scaled range needs low > 0, got {self.low}")
        return self


def _space(**params: dict[str, Any]) -> dict[str, ParamSpace]:
    return {name: ParamSpace(**spec) for name, spec in params.items()}


def default_search_space() -> dict[str, dict[str, ParamSpace]]:
    """Search ranges used for a family the config file does not list."""
    return {
        "logreg": _space(C={"type": "float", "low": 1e-3, "high": 10.0, "log": True}),
        "random_forest": _space(
            n_estimators={"type": "int", "low": 100, "high": 300},
            max_depth={"type": "int", "low": 4, "high": 16},
            min_samples_leaf={"type": "int", "low": 1, "high": 20},
            max_features={"type": "float", "low": 0.2, "high": 0.8},
        ),
        "xgboost": _space(
            n_estimators={"type": "int", "low": 150, "high": 600},
            max_depth={"type": "int", "low": 2, "high": 5},
            learning_rate={"type": "float", "low": 0.01, "high": 0.1, "log": True},
            subsample={"type": "float", "low": 0.6, "high": 1.0},
            colsample_bytree={"type": "float", "low": 0.4, "high": 1.0},
            min_child_weight={"type": "float", "low": 1.0, "high": 20.0, "log": True},
            reg_lambda={"type": "float", "low": 0.1, "high": 10.0, "log": True},
        ),
        "lightgbm": _space(
            n_estimators={"type": "int", "low": 150, "high": 600},
            num_leaves={"type": "int", "low": 4, "high": 32},
            learning_rate={"type": "float", "low": 0.01, "high": 0.1, "log": True},
            subsample={"type": "float", "low": 0.6, "high": 1.0},
            subsample_freq={"type": "categorical", "choices": [1]},
            colsample_bytree={"type": "float", "low": 0.4, "high": 1.0},
            min_child_samples={"type": "int", "low": 10, "high": 80},
            reg_lambda={"type": "float", "low": 1e-3, "high": 10.0, "log": True},
        ),
        # a small space: the bins carry the fit, the regression only weighs them
        "scorecard": _space(
            C={"type": "float", "low": 1e-2, "high": 10.0, "log": True},
            max_n_bins={"type": "int", "low": 4, "high": 10},
            min_prebin_size={"type": "float", "low": 0.02, "high": 0.1},
        ),
    }


def default_grid() -> dict[str, dict[str, list[Any]]]:
    """The original pipeline's exhaustive grids (50 configurations), plus LightGBM's and the scorecard's."""
    return {
        "random_forest": {
            "n_estimators": [50, 100],
            "max_depth": [10, 20, 30],
            "min_samples_split": [2, 5, 10],
        },
        "xgboost": {
            "n_estimators": [100, 150, 200],
            "max_depth": [6, 9, 12],
            "learning_rate": [0.1, 0.2, 0.3],
        },
        "logreg": {"C": [0.01, 0.1, 1.0, 2.0, 3.0]},
        "lightgbm": {
            "n_estimators": [100, 200],
            "num_leaves": [8, 16, 31],
            "learning_rate": [0.05, 0.1],
        },
        "scorecard": {"C": [0.1, 1.0], "max_n_bins": [5, 8]},
    }


def list_values(grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """A shallow copy of a grid (so callers cannot mutate the frozen config)."""
    return {name: list(values) for name, values in grid.items()}
