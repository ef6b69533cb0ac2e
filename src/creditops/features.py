"""The preprocessing + model pipeline: one fitted sklearn ``Pipeline`` is the artifact.

Each family gets the preprocessing it needs, built from stock sklearn parts
only, so the pickled pipeline loads anywhere sklearn does:

* every family but the scorecard: categorical columns imputed with an explicit ``missing``
  level, then one-hot encoded (unseen categories encode as all zeros);
* logistic regression and random forest: numeric columns median-imputed with
  missing-indicator columns; the regression also log-scales the money columns
  and standardises everything;
* XGBoost and LightGBM: numeric columns keep their NaN, which both boosters
  route natively, plus missing-indicator columns;
* the scorecard (:mod:`creditops.scorecard`): raw values, categories as text,
  in a named frame; it bins them itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import MissingIndicator, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from creditops import schema
from creditops.config import FairnessConfig
from creditops.errors import TrainingError
from creditops.scorecard import ScorecardClassifier, monotonic_trends

# Heavy right tails: the regression sees log1p of these.
MONEY_COLUMNS = ("Expenses", "Income", "Assets", "Debt", "Amount", "Price")
MISSING_LEVEL = "missing"
# Affordability ratios a credit analyst would compute; worth about +0.005 ROC AUC
# to the boosters (repeated CV). Missing Income makes the Income ratios missing.
DERIVED = ("loan_to_price", "income_free", "installment_to_income", "debt_to_income")
RATIO_COLUMNS = ("loan_to_price", "installment_to_income", "debt_to_income")
# The contract columns each derived feature is computed from: a feature built
# from an excluded (protected) input is excluded with it.
DERIVED_INPUTS: dict[str, tuple[str, ...]] = {
    "loan_to_price": ("Amount", "Price"),
    "income_free": ("Income", "Expenses"),
    "installment_to_income": ("Amount", "Time", "Income"),
    "debt_to_income": ("Debt", "Income"),
}
# The model-input policy's default ([fairness] protected, policy "exclude").
DEFAULT_EXCLUDED: tuple[str, ...] = tuple(FairnessConfig().excluded())


def model_inputs(exclude: Sequence[str] = DEFAULT_EXCLUDED) -> tuple[str, ...]:
    """The contract columns and derived features the model sees, without ``exclude``.

    A derived feature is left out with any contract column it is computed from.
    """
    dropped = set(exclude)
    return tuple(
        name
        for name in (*schema.FEATURES, *DERIVED)
        if name not in dropped and not dropped.intersection(DERIVED_INPUTS.get(name, ()))
    )


def add_derived_features(frame: pd.DataFrame, exclude: Sequence[str] = ()) -> pd.DataFrame:
    """The contract columns plus the ``DERIVED`` ratios (a new frame), without ``exclude``.

    ``exclude`` defaults to none: pipelines pickled before the exclusion call it without.
    """
    out = frame.loc[:, list(schema.FEATURES)].copy()
    income = pd.to_numeric(out["Income"], errors="coerce").astype("float64")
    amount = out["Amount"].astype("float64")
    out["loan_to_price"] = amount / out["Price"].astype("float64")
    out["income_free"] = income - out["Expenses"].astype("float64")
    out["installment_to_income"] = amount / out["Time"].astype("float64") / income
    out["debt_to_income"] = out["Debt"].astype("float64") / income
    return out.loc[:, list(model_inputs(exclude))] if exclude else out


# Directions a credit analyst insists on: more income never raises the risk, a
# record of unpaid credit never lowers it. The boosters are constrained to
# them (monotone constraints cost nothing here: +0.001 ROC AUC in repeated CV).
RISK_DIRECTION: dict[str, int] = {
    "Income": -1,
    "income_free": -1,
    "installment_to_income": 1,
    "debt_to_income": 1,
    "Records_yes": 1,
    "Records_no": -1,
}


def _derived_names(transformer: object, names: object) -> np.ndarray:
    exclude = (getattr(transformer, "kw_args", None) or {}).get("exclude", ())
    return np.asarray(model_inputs(exclude), dtype=object)


def _categorical(columns: Sequence[str]) -> Pipeline:
    return Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_LEVEL)),
            (
                "onehot",
                OneHotEncoder(
                    categories=[
                        [*spec.categories, MISSING_LEVEL]
                        for name, spec in schema.FIELDS.items()
                        if isinstance(spec, schema.CategoricalField) and name in columns
                    ],
                    handle_unknown="ignore",
                    sparse_output=False,
                    dtype=np.float64,
                ),
            ),
        ]
    )


def build_preprocessor(family: str, exclude: Sequence[str] = DEFAULT_EXCLUDED) -> ColumnTransformer:
    """The column transformer for ``family`` (unfitted), blind to ``exclude``.

    See :func:`model_inputs` for what ``exclude`` drops.
    """
    inputs = model_inputs(exclude)
    numeric = [c for c in (*schema.NUMERIC, *DERIVED) if c in inputs]
    categorical = [c for c in schema.CATEGORICAL if c in inputs]
    nullable_numeric = [c for c in schema.NUMERIC if c in schema.NULLABLE and c in inputs]
    if family == "logreg":
        logged = (*MONEY_COLUMNS, *RATIO_COLUMNS)
        money = [c for c in numeric if c in logged]
        plain = [c for c in numeric if c not in logged]
        log_money = Pipeline(
            [
                ("impute", SimpleImputer(strategy="median")),
                ("log", FunctionTransformer(np.log1p, feature_names_out="one-to-one")),
                ("scale", StandardScaler()),
            ]
        )
        scaled = Pipeline(
            [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
        )
        transformers: list[tuple[str, Any, list[str]]] = [
            ("money", log_money, money),
            ("num", scaled, plain),
            ("missing", MissingIndicator(features="all"), nullable_numeric),
            ("cat", _categorical(categorical), categorical),
        ]
    elif family == "random_forest":
        transformers = [
            ("num", SimpleImputer(strategy="median"), numeric),
            ("missing", MissingIndicator(features="all"), nullable_numeric),
            ("cat", _categorical(categorical), categorical),
        ]
    elif family in ("xgboost", "lightgbm"):
        transformers = [
            ("num", "passthrough", numeric),
            ("missing", MissingIndicator(features="all"), nullable_numeric),
            ("cat", _categorical(categorical), categorical),
        ]
    elif family == "scorecard":
        # the scorecard bins raw values itself (missing values and categories included):
        # it needs them unchanged, in a frame that keeps each column's name and type
        scorecard_columns = [("num", "passthrough", numeric), ("cat", "passthrough", categorical)]
        return ColumnTransformer(
            scorecard_columns, remainder="drop", verbose_feature_names_out=True
        ).set_output(transform="pandas")
    else:
        raise TrainingError(f"unknown model family {family!r}")
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)


def output_columns(family: str, exclude: Sequence[str] = DEFAULT_EXCLUDED) -> list[str]:
    """The names of the columns the preprocessor of ``family`` outputs, in order (without prefix)."""
    row = {}
    for name, spec in schema.FIELDS.items():
        row[name] = (
            spec.categories[0]
            if isinstance(spec, schema.CategoricalField)
            else spec.observed[0] + 1
        )
    frame = add_derived_features(pd.DataFrame([row, row]), exclude)
    names = build_preprocessor(family, exclude).fit(frame).get_feature_names_out()
    return [str(n).split("__", 1)[1] for n in names]


def monotone_constraints(family: str, exclude: Sequence[str] = DEFAULT_EXCLUDED) -> list[int]:
    """Per output column: +1 (risk may only rise with it), -1, or 0 (free)."""
    return [RISK_DIRECTION.get(name, 0) for name in output_columns(family, exclude)]


def build_estimator(
    family: str,
    params: dict[str, Any],
    seed: int,
    n_jobs: int = 1,
    *,
    monotone: bool = True,
    exclude: Sequence[str] = DEFAULT_EXCLUDED,
) -> BaseEstimator:
    """The classifier of ``family`` with ``params`` (unfitted).

    ``monotone`` constrains the boosters to :data:`RISK_DIRECTION` (on the
    columns left once ``exclude`` is dropped).
    """
    params = dict(params)
    if monotone and family in ("xgboost", "lightgbm"):
        constraints = monotone_constraints(family, exclude)
        params.setdefault(
            "monotone_constraints", tuple(constraints) if family == "xgboost" else constraints
        )
    if family == "logreg":
        return LogisticRegression(max_iter=2_000, random_state=seed, **params)
    if family == "random_forest":
        return RandomForestClassifier(random_state=seed, n_jobs=n_jobs, **params)
    if family == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(
            random_state=seed,
            n_jobs=n_jobs,
            tree_method="hist",
            eval_metric="logloss",
            **params,
        )
    if family == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(random_state=seed, n_jobs=n_jobs, verbose=-1, **params)
    if family == "scorecard":
        # monotone: bins whose bad rate follows RISK_DIRECTION (deterministic: no seed)
        inputs = model_inputs(exclude)
        trends = monotonic_trends(RISK_DIRECTION, inputs) if monotone else {}
        return ScorecardClassifier(monotonic_trends=trends, **params)
    raise TrainingError(f"unknown model family {family!r}")


def build_pipeline(
    family: str,
    params: dict[str, Any],
    seed: int,
    n_jobs: int = 1,
    *,
    monotone: bool = True,
    exclude: Sequence[str] = DEFAULT_EXCLUDED,
) -> Pipeline:
    """Preprocessing and classifier in one unfitted ``Pipeline``.

    The pipeline takes every contract column (the request), and its derive
    step drops ``exclude`` (default: ``[fairness]``'s protected attributes)
    before anything is fitted on them: the preprocessor and the model never see them.
    """
    exclude = tuple(exclude)
    derive = FunctionTransformer(
        add_derived_features,
        validate=False,
        feature_names_out=_derived_names,
        kw_args={"exclude": exclude} if exclude else None,
    )
    return Pipeline(
        [
            ("derive", derive),
            ("preprocess", build_preprocessor(family, exclude)),
            (
                "model",
                build_estimator(family, params, seed, n_jobs, monotone=monotone, exclude=exclude),
            ),
        ]
    )


def source_feature(output_name: str) -> str:
    """The contract column (or derived ratio) behind one transformed column name.

    ``money__Income`` -> ``Income``; ``missing__missingindicator_Income`` ->
    ``Income``; ``cat__Home_rent`` -> ``Home``.
    """
    _, _, rest = output_name.partition("__")
    rest = rest.removeprefix("missingindicator_")
    if rest in schema.FIELDS or rest in DERIVED:
        return rest
    for name in schema.CATEGORICAL:
        if rest.startswith(name + "_"):
            return name
    raise KeyError(f"cannot map transformed column {output_name!r} to a contract field")


def feature_groups(pipeline: Pipeline) -> list[str]:
    """For each column the fitted preprocessor outputs, its contract field."""
    names = pipeline.named_steps["preprocess"].get_feature_names_out()
    return [source_feature(str(n)) for n in names]
