"""Behavioural tests of trained models: directions a credit analyst insists on, and sanity cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditops.data import Dataset, split_dataset
from creditops.features import build_pipeline

PARAMS = {
    "xgboost": {"n_estimators": 300, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8},
    "lightgbm": {
        "n_estimators": 300,
        "num_leaves": 12,
        "learning_rate": 0.03,
        "min_child_samples": 30,
    },
    "logreg": {"C": 1.0},
    "scorecard": {"C": 1.0, "max_n_bins": 8},
}


@pytest.fixture(scope="module")
def models(credit_dataset: Dataset) -> dict[str, tuple[object, pd.DataFrame]]:
    split = split_dataset(credit_dataset, 0.2, 42)
    return {
        family: (
            build_pipeline(family, params, seed=0).fit(split.X_train, split.y_train),
            split.X_test,
        )
        for family, params in PARAMS.items()
    }


@pytest.fixture(params=list(PARAMS))
def fitted(
    request: pytest.FixtureRequest, models: dict[str, tuple[object, pd.DataFrame]]
) -> tuple[str, object, pd.DataFrame]:
    model, X = models[request.param]
    return request.param, model, X


def risk(model: object, frame: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(frame)[:, 1]  # type: ignore[attr-defined,no-any-return]


def test_a_record_of_unpaid_credit_never_lowers_the_risk(
    fitted: tuple[str, object, pd.DataFrame],
) -> None:
    _, model, X = fitted
    clean = X.assign(Records="no")
    flagged = X.assign(Records="yes")
    assert np.all(risk(model, flagged) >= risk(model, clean) - 1e-12)
    assert np.mean(risk(model, flagged) > risk(model, clean)) > 0.5


@pytest.mark.parametrize("factor", [1.2, 2.0])
@pytest.mark.parametrize("family", ["xgboost", "lightgbm", "scorecard"])
def test_more_income_never_raises_the_risk_of_boosted_models(
    models: dict[str, tuple[object, pd.DataFrame]], family: str, factor: float
) -> None:
    # the boosters are constrained (features.RISK_DIRECTION); the regression is
    # not, since Income enters it through several ratios
    model, X = models[family]
    known = X[X["Income"].notna()]
    richer = known.assign(Income=(known["Income"] * factor).clip(upper=10_000))
    assert np.all(risk(model, richer) <= risk(model, known) + 1e-12)


def test_sanity_cases(fitted: tuple[str, object, pd.DataFrame]) -> None:
    _, model, _ = fitted
    strong = {
        "Seniority": 15,
        "Home": "owner",
        "Time": 36,
        "Age": 45,
        "Marital": "married",
        "Records": "no",
        "Job": "fixed",
        "Expenses": 60,
        "Income": 250.0,
        "Assets": 20000.0,
        "Debt": 0.0,
        "Amount": 800,
        "Price": 1500,
    }
    weak = {
        "Seniority": 0,
        "Home": "rent",
        "Time": 60,
        "Age": 22,
        "Marital": "single",
        "Records": "yes",
        "Job": "partime",
        "Expenses": 90,
        "Income": 60.0,
        "Assets": 0.0,
        "Debt": 2000.0,
        "Amount": 2000,
        "Price": 2100,
    }
    p_strong, p_weak = risk(model, pd.DataFrame([strong, weak]))
    assert p_strong < 0.15 < 0.6 < p_weak


def test_missing_income_is_scored_not_refused(fitted: tuple[str, object, pd.DataFrame]) -> None:
    _, model, X = fitted
    p = risk(model, X.head(20).assign(Income=np.nan))
    assert np.all(np.isfinite(p))
