"""Per-row sample weights: they reach every family's estimator, in CV and in the refit.

Without weights (``None``), every fit is the unweighted one, to the bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from creditops import registry
from creditops.config import TrainConfig
from creditops.data import Dataset, Split, split_dataset
from creditops.errors import TrainingError
from creditops.training.evidence import fit_finalist
from creditops.training.search import (
    ParamValue,
    TrialResult,
    check_weights,
    cross_validate,
    describe_weights,
    oof_auc,
)
from support import make_settings

PARAMS: dict[str, dict[str, ParamValue]] = {
    "logreg": {"C": 1.0},
    "random_forest": {"n_estimators": 15, "max_depth": 4},
    "xgboost": {"n_estimators": 15, "max_depth": 3},
    "lightgbm": {"n_estimators": 15, "num_leaves": 7},
}


@pytest.fixture(scope="module")
def tiny_split(credit_dataset: Dataset) -> Split:
    """400 training and 150 test rows of the real data."""
    split = split_dataset(credit_dataset, 0.2, 0)
    return Split(split.train.iloc[:400].reset_index(drop=True), split.test.iloc[:150])


def _bad_heavy(y: np.ndarray) -> np.ndarray:
    """Weights that count every bad credit 50 times: a fit that sees them predicts more risk."""
    return np.where(y == 1, 50.0, 1.0)


def test_all_ones_weights_give_the_unweighted_cv(tiny_split: Split) -> None:
    X, y = tiny_split.X_train, tiny_split.y_train
    plain = cross_validate("logreg", PARAMS["logreg"], X, y, 3, 0)
    ones = cross_validate("logreg", PARAMS["logreg"], X, y, 3, 0, weights=np.ones(len(y)))
    assert plain[:2] == ones[:2]
    assert np.array_equal(plain[2], ones[2])


@pytest.mark.parametrize("family", list(PARAMS))
def test_weights_reach_every_familys_estimator(tiny_split: Split, family: str) -> None:
    X, y = tiny_split.X_train, tiny_split.y_train
    _, _, plain = cross_validate(family, PARAMS[family], X, y, 3, 0)
    _, _, heavy = cross_validate(family, PARAMS[family], X, y, 3, 0, weights=_bad_heavy(y))
    assert heavy.mean() > plain.mean() + 0.1


def test_weighted_folds_are_scored_unweighted(tiny_split: Split) -> None:
    X, y = tiny_split.X_train, tiny_split.y_train
    mean, sd, oof = cross_validate("logreg", PARAMS["logreg"], X, y, 3, 0, weights=_bad_heavy(y))
    assert (mean, sd) == oof_auc(X, y, oof, 3, 0)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones(3), "3 weight\\(s\\) for 400 training rows"),
        (np.full(400, -1.0), "finite and >= 0"),
        (np.zeros(400), "not all zero"),
        (np.full(400, np.nan), "finite"),
    ],
)
def test_unusable_weights_are_refused(tiny_split: Split, weights: np.ndarray, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        cross_validate(
            "logreg",
            PARAMS["logreg"],
            tiny_split.X_train,
            tiny_split.y_train,
            3,
            0,
            weights=weights,
        )


def _finalist_proba(split: Split) -> np.ndarray:
    params = dict(PARAMS["logreg"])
    mean, sd, oof = cross_validate("logreg", params, split.X_train, split.y_train, 3, 0)
    best = TrialResult("logreg", 0, params, mean, sd, oof)
    return fit_finalist(best, split, TrainConfig()).proba


def test_the_finalist_refit_uses_the_weights(tiny_split: Split) -> None:
    plain = _finalist_proba(tiny_split)
    ones = _finalist_proba(Split(tiny_split.train, tiny_split.test, np.ones(len(tiny_split.train))))
    heavy = _finalist_proba(
        Split(tiny_split.train, tiny_split.test, _bad_heavy(tiny_split.y_train))
    )
    assert np.array_equal(plain, ones)
    assert heavy.mean() > plain.mean() + 0.1


def test_weights_are_described_by_rows_per_weight() -> None:
    assert describe_weights(None) == "none"
    assert json.loads(describe_weights(np.array([1.0, 1.0, 3.0]))) == {"1": 2, "3": 1}
    spread = json.loads(describe_weights(np.linspace(0.5, 2.0, 50)))
    assert spread == {"rows": 50, "min": 0.5, "max": 2.0}
    assert check_weights(None, 10) is None


@pytest.mark.slow
def test_a_training_run_logs_how_its_rows_were_weighted(tmp_path: Path, tiny_split: Split) -> None:
    from creditops.training.run import run_training
    from creditops.training.sections import TrainingSections

    train = {"families": ["logreg"], "trials_per_family": 1, "cv_folds": 3, "n_jobs": 1}
    settings = make_settings(tmp_path, train=train)
    weights = np.where(np.arange(len(tiny_split.train)) < 300, 1.0, 3.0)
    split = Split(tiny_split.train, tiny_split.test, weights)
    report = run_training(
        TrainingSections.from_settings(settings), split=split, show_progress=False
    )
    params = registry.connect(settings.mlflow).get_run(report.run_id).data.params
    assert json.loads(params["sample_weights"]) == {"1": 300, "3": 100}


def test_a_training_run_refuses_bad_weights_before_touching_mlflow(
    tmp_path: Path, tiny_split: Split
) -> None:
    from creditops.training.run import run_training
    from creditops.training.sections import TrainingSections

    settings = make_settings(tmp_path)
    split = Split(tiny_split.train, tiny_split.test, np.ones(5))
    with pytest.raises(TrainingError, match="5 weight"):
        run_training(TrainingSections.from_settings(settings), split=split, show_progress=False)
    assert not (tmp_path / "mlflow.db").exists()
