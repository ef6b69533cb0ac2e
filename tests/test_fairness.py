"""Protected attributes out of the model, fairness figures by group, and the config's rules."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from creditops import fairness, features, schema
from creditops.config import FAMILIES, FairnessConfig, load_config
from creditops.data import Dataset, split_dataset
from creditops.errors import ConfigError

PROTECTED = ("Age", "Marital")
SMALL: dict[str, dict[str, Any]] = {
    "logreg": {"C": 1.0},
    "random_forest": {"n_estimators": 20, "max_depth": 4},
    "xgboost": {"n_estimators": 20, "max_depth": 2},
    "lightgbm": {"n_estimators": 20, "num_leaves": 4},
    "scorecard": {"C": 1.0, "max_n_bins": 5},
}


@pytest.fixture(scope="module")
def sample(credit_dataset: Dataset) -> tuple[pd.DataFrame, np.ndarray]:
    split = split_dataset(credit_dataset, 0.5, 3)
    return split.X_train, split.y_train


@pytest.mark.parametrize("family", FAMILIES)
def test_excluded_attributes_never_reach_the_fitted_model(
    family: str, sample: tuple[pd.DataFrame, np.ndarray]
) -> None:
    X, y = sample
    pipeline = features.build_pipeline(family, SMALL[family], seed=0).fit(X, y)
    preprocess = pipeline.named_steps["preprocess"]
    seen = {str(c) for c in preprocess.feature_names_in_}
    columns = {str(c) for _, _, cols in preprocess.transformers_ for c in cols}
    assert not seen & set(PROTECTED), seen
    assert not columns & set(PROTECTED), columns
    assert not set(features.feature_groups(pipeline)) & set(PROTECTED)
    # and so the applicant's Age and Marital status cannot move the score (500 applicants)
    rng = np.random.default_rng(0)
    applicants = X.iloc[:500].copy()
    changed = applicants.copy()
    changed["Age"] = rng.integers(18, 80, size=len(changed))
    marital = schema.FIELDS["Marital"]
    assert isinstance(marital, schema.CategoricalField)
    changed["Marital"] = rng.choice(list(marital.categories), size=len(changed))
    np.testing.assert_array_equal(
        pipeline.predict_proba(applicants)[:, 1], pipeline.predict_proba(changed)[:, 1]
    )


def test_include_puts_them_back_with_a_warning(sample: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, y = sample
    config = FairnessConfig(policy="include")
    assert config.excluded() == ()
    pipeline = features.build_pipeline("logreg", {"C": 1.0}, seed=0, exclude=config.excluded())
    groups = set(features.feature_groups(pipeline.fit(X, y)))
    assert set(PROTECTED) <= groups
    warning = fairness.included_warning(config)
    assert warning.startswith("WARNING") and "Age, Marital" in warning
    assert fairness.included_warning(FairnessConfig()) == ""
    report = fairness.fairness_figures(X, np.ones(len(X), dtype=bool), y, config)
    assert any("WARNING" in line for line in fairness.card_lines(report, {}))


def test_a_derived_feature_is_excluded_with_its_input() -> None:
    assert "debt_to_income" in features.model_inputs(("Age",))
    inputs = features.model_inputs(("Income",))
    assert "Income" not in inputs
    assert not {"income_free", "installment_to_income", "debt_to_income"} & set(inputs)
    assert "loan_to_price" in inputs


def _synthetic(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "Age": rng.integers(18, 75, size=rows),
            "Marital": rng.choice(["married", "single", "widow"], size=rows, p=[0.6, 0.37, 0.03]),
        }
    )
    y = rng.integers(0, 2, size=rows)
    approved = rng.random(rows) < np.where(frame["Age"] < 26, 0.5, 0.75)
    return frame, approved, y


def _independent(
    groups: pd.Series, approved: np.ndarray, y: np.ndarray, min_rows: int
) -> tuple[dict[str, float], float, float]:
    """Approval ratio per group, the lowest ratio and the equalized-odds difference, by groupby."""
    data = pd.DataFrame({"g": groups.to_numpy(), "ok": approved, "bad": y})
    sizes = data.groupby("g").size()
    data = data[data["g"].isin(sizes[sizes >= min_rows].index)]
    rates = data.groupby("g")["ok"].mean()
    declined = ~data["ok"]
    tpr = declined[data["bad"] == 1].groupby(data["g"]).mean()
    fpr = declined[data["bad"] == 0].groupby(data["g"]).mean()
    eo = max(tpr.max() - tpr.min(), fpr.max() - fpr.min())
    return (rates / rates.max()).to_dict(), float(rates.min() / rates.max()), float(eo)


def test_figures_match_an_independent_groupby() -> None:
    frame, approved, y = _synthetic(3_000, 1)
    config = FairnessConfig()
    report = fairness.fairness_figures(frame, approved, y, config)
    bands = pd.cut(frame["Age"], [18, 26, 36, 51, 62, 200], right=False).astype(str)
    names = dict(
        zip(sorted(bands.unique()), ["18-25", "26-35", "36-50", "51-61", "62+"], strict=True)
    )
    for attribute, groups in (("Age", bands.map(names)), ("Marital", frame["Marital"])):
        ratios, lowest, eo = _independent(groups, approved, y, config.min_group_rows)
        figures = report.attribute(attribute)
        assert figures.dp_ratio == pytest.approx(lowest, abs=1e-12)
        assert figures.eo_diff == pytest.approx(eo, abs=1e-12)
        got = {g.group: g.approval_ratio for g in figures.groups if g.approval_ratio is not None}
        assert got == pytest.approx(ratios, abs=1e-12)
    assert report.breaches(0.8) == [("Age", report.attribute("Age").dp_ratio)]
    assert report.metrics()["fair_age_62plus_rows"] == float((frame["Age"] >= 62).sum())


def test_a_group_too_small_has_no_figure_but_the_reason() -> None:
    frame, approved, y = _synthetic(600, 2)
    report = fairness.fairness_figures(frame, approved, y, FairnessConfig(min_group_rows=30))
    widows = next(g for g in report.attribute("Marital").groups if g.group == "widow")
    assert widows.rows < 30
    assert widows.approval_rate is None and widows.approval_ratio is None
    assert widows.reason == f"{widows.rows} rows < min 30"
    assert "fair_marital_widow_approval_ratio" not in report.metrics()
    alone = fairness.fairness_figures(frame, approved, y, FairnessConfig(min_group_rows=500))
    assert alone.attribute("Marital").dp_ratio is None
    assert "no ratio between groups" in alone.attribute("Marital").reason


def test_proxy_check_reports_by_group(sample: tuple[pd.DataFrame, np.ndarray]) -> None:
    X, _ = sample
    proxy = fairness.proxy_strength(X, FairnessConfig(), folds=3)
    assert set(proxy) >= {"Age:62+", "Age:18-25", "Marital:married"}
    assert all(v is None or 0.0 <= v <= 1.0 for v in proxy.values())
    assert proxy["Marital:divorced"] is None  # fewer members than min_group_rows
    assert "proxy_auc_age_62plus" in fairness.proxy_metrics(proxy)


@pytest.mark.parametrize(
    ("values", "quoted"),
    [
        ({"protected": ["Age", "Gender"]}, "fairness.protected = ['Age', 'Gender']"),
        ({"policy": "mask"}, "fairness.policy = 'mask'"),
        ({"min_approval_ratio": 0.0}, "fairness.min_approval_ratio = 0.0"),
        ({"min_approval_ratio": 1.2}, "fairness.min_approval_ratio = 1.2"),
        ({"age_bands": [18, 30, 70]}, "fairness.age_bands = [18, 30, 70]"),
    ],
)
def test_bad_fairness_config_is_one_line_naming_key_value_and_rule(
    values: dict[str, object], quoted: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, fairness=values)
    message = str(caught.value)
    assert "\n" not in message and quoted in message
    rule = message.split(quoted, 1)[1]
    assert any(
        word in rule
        for word in (
            "not a contract column",
            "'exclude' or 'include'",
            "greater than",
            "less",
            "62",
        )
    ), message
