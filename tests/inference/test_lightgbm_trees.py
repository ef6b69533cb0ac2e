"""LightGBM trees rewritten for XGBoost's predictor give LightGBM's own probabilities."""

from __future__ import annotations

import lightgbm
import numpy as np
import pytest
import xgboost

from creditops.inference import lightgbm_trees


def _data(seed: int, n: int = 3000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    x[:, 3] = rng.integers(0, 2, n)  # a 0/1 indicator
    x[:, 4] = np.round(x[:, 4], 1)  # ties: thresholds between few distinct values
    y = (x[:, 0] + x[:, 1] * x[:, 3] - 0.5 * x[:, 4] + rng.normal(size=n) > 0).astype(int)
    return x, y


def _predict(rewritten: lightgbm_trees.RewrittenBooster, x: np.ndarray) -> np.ndarray:
    return np.asarray(
        rewritten.booster.inplace_predict(
            x, predict_type="value", missing=np.nan, validate_features=False
        )
    )


@pytest.mark.parametrize("with_missing", [False, True])
def test_the_rewritten_trees_give_lightgbms_probabilities(with_missing: bool) -> None:
    x, y = _data(0)
    if with_missing:  # trained on NaNs: splits with missing_type NaN and a default side
        x[np.random.default_rng(1).random(x.shape) < 0.1] = np.nan
    model = lightgbm.LGBMClassifier(n_estimators=80, num_leaves=15, verbose=-1).fit(x, y)
    fresh, _ = _data(2)
    fresh[np.random.default_rng(3).random(fresh.shape) < 0.05] = np.nan  # NaN at scoring too
    rewritten = lightgbm_trees.rewrite(model.booster_)
    expected = model.booster_.predict(fresh)
    np.testing.assert_allclose(_predict(rewritten, fresh), expected, rtol=0, atol=1e-6)


def test_every_row_reaches_lightgbms_leaf() -> None:
    x, y = _data(4)
    model = lightgbm.LGBMClassifier(n_estimators=30, num_leaves=31, verbose=-1).fit(x, y)
    rewritten = lightgbm_trees.rewrite(model.booster_)
    nodes = rewritten.booster.predict(xgboost.DMatrix(x), pred_leaf=True).astype(np.int64)
    leaves = np.stack([rewritten.leaf_index[t][nodes[:, t]] for t in range(nodes.shape[1])], axis=1)
    np.testing.assert_array_equal(leaves, model.booster_.predict(x, pred_leaf=True))


def test_categorical_splits_are_not_rewritten() -> None:
    x, y = _data(5)
    x[:, 5] = np.random.default_rng(6).integers(0, 5, len(x))
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1, min_data_per_group=5)
    model.fit(x, y, categorical_feature=[5])
    with pytest.raises(lightgbm_trees.UnsupportedTreeError, match="split of type"):
        lightgbm_trees.rewrite(model.booster_)


def test_a_regression_booster_is_not_rewritten() -> None:
    x, y = _data(7)
    model = lightgbm.LGBMRegressor(n_estimators=5, verbose=-1).fit(x, y)
    with pytest.raises(lightgbm_trees.UnsupportedTreeError, match="objective"):
        lightgbm_trees.rewrite(model.booster_)
