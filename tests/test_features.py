"""The preprocessing pipeline: NaN, unseen categories, derived ratios, column mapping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from creditops import schema
from creditops.config import FAMILIES
from creditops.data import Dataset
from creditops.errors import TrainingError
from creditops.features import (
    RISK_DIRECTION,
    add_derived_features,
    build_pipeline,
    feature_groups,
    model_inputs,
    monotone_constraints,
    output_columns,
)

SMALL = {
    "logreg": {"C": 1.0},
    "random_forest": {"n_estimators": 20, "max_depth": 4},
    "xgboost": {"n_estimators": 20, "max_depth": 2},
    "lightgbm": {"n_estimators": 20, "num_leaves": 4},
    "scorecard": {"max_n_bins": 4},
}


@pytest.fixture(scope="module")
def sample(credit_dataset: Dataset) -> tuple[pd.DataFrame, np.ndarray]:
    frame = credit_dataset.frame.sample(600, random_state=1)
    return frame.loc[:, list(schema.FEATURES)].reset_index(drop=True), (
        frame["Status"] == "bad"
    ).to_numpy().astype(int)


@pytest.mark.parametrize("family", FAMILIES)
def test_pipeline_scores_rows_with_nan_and_unseen_categories(
    family: str, sample: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = sample
    pipeline = build_pipeline(family, SMALL[family], seed=0).fit(X, y)
    odd = X.head(3).copy()
    odd.loc[0, ["Income", "Assets", "Debt"]] = np.nan
    odd.loc[1, ["Home", "Marital", "Job"]] = np.nan
    odd.loc[2, "Home"] = "houseboat"  # unseen: encoded as all zeros, never an error
    proba = pipeline.predict_proba(odd)[:, 1]
    assert proba.shape == (3,)
    assert np.all((proba >= 0) & (proba <= 1))


@pytest.mark.parametrize("family", FAMILIES)
def test_every_output_column_maps_to_a_contract_field(
    family: str, sample: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = sample
    pipeline = build_pipeline(family, SMALL[family], seed=0).fit(X, y)
    groups = feature_groups(pipeline)
    assert set(groups) <= set(schema.FEATURES) | {
        "loan_to_price",
        "income_free",
        "installment_to_income",
        "debt_to_income",
    }
    # every model input (the protected attributes are excluded by default)
    assert set(model_inputs()) <= set(groups)
    fitted = [
        str(n).split("__", 1)[1] for n in pipeline.named_steps["preprocess"].get_feature_names_out()
    ]
    assert fitted == output_columns(family)


def test_derived_ratios() -> None:
    row = {name: 1.0 for name in schema.NUMERIC} | {name: "x" for name in schema.CATEGORICAL}
    row.update(Amount=1000, Price=2000, Income=200, Expenses=50, Time=10, Debt=100)
    out = add_derived_features(pd.DataFrame([row]))
    assert out.loc[0, "loan_to_price"] == 0.5
    assert out.loc[0, "income_free"] == 150
    assert out.loc[0, "installment_to_income"] == 0.5
    assert out.loc[0, "debt_to_income"] == 0.5
    missing = add_derived_features(pd.DataFrame([{**row, "Income": np.nan}]))
    assert np.isnan(missing.loc[0, "installment_to_income"])


def test_monotone_constraints_follow_risk_directions() -> None:
    names = output_columns("xgboost")
    constraints = monotone_constraints("xgboost")
    for name, direction in RISK_DIRECTION.items():
        assert constraints[names.index(name)] == direction
    assert sum(1 for c in constraints if c) == len(RISK_DIRECTION)


def test_unknown_family() -> None:
    with pytest.raises(TrainingError, match="unknown model family 'catboost'"):
        build_pipeline("catboost", {}, seed=0)
