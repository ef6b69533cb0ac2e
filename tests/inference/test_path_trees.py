"""Decision-path contributions from vector-leaf trees equal the libraries' own and a float64 table."""

from __future__ import annotations

import json

import lightgbm
import numpy as np
import pytest
import xgboost

from creditops.inference import contributions, lightgbm_trees, path_trees
from creditops.inference.compiled import compile_model
from support import tree_data


def _approx_contribs(model: xgboost.XGBClassifier, x: np.ndarray) -> np.ndarray:
    booster = model.get_booster()
    return np.asarray(
        booster.predict(
            xgboost.DMatrix(x, missing=np.nan),
            pred_contribs=True,
            approx_contribs=True,
            iteration_range=model._get_iteration_range(None),
        )
    )[:, :-1]


def test_xgboost_paths_equal_its_approx_contribs() -> None:
    x, y = tree_data(0)
    model = xgboost.XGBClassifier(n_estimators=60, max_depth=4, learning_rate=0.1).fit(x, y)
    fresh, _ = tree_data(1, 500)
    got = compile_model(model).contributions(fresh, "path")
    assert got is not None and got.shape == fresh.shape
    np.testing.assert_allclose(got, _approx_contribs(model, fresh), rtol=0, atol=1e-5)


def test_xgboost_paths_keep_only_the_best_iterations() -> None:
    x, y = tree_data(2)
    model = xgboost.XGBClassifier(
        n_estimators=400, max_depth=3, learning_rate=0.3, early_stopping_rounds=5
    ).fit(x[:2000], y[:2000], eval_set=[(x[2000:], y[2000:])], verbose=False)
    _, end = model._get_iteration_range(None)
    assert 0 < end < model.get_booster().num_boosted_rounds()  # stopped early: trees to drop
    got = compile_model(model).contributions(x[:300], "path")
    np.testing.assert_allclose(got, _approx_contribs(model, x[:300]), rtol=0, atol=1e-5)


def test_lightgbm_paths_equal_the_float64_leaf_table() -> None:
    x, y = tree_data(3)
    model = lightgbm.LGBMClassifier(n_estimators=80, num_leaves=15, verbose=-1).fit(x, y)
    fresh, _ = tree_data(4, 500)
    rewritten = lightgbm_trees.rewrite(model.booster_)
    paths = path_trees.path_booster(rewritten.model, rewritten.node_values())
    got = path_trees.path_contributions(paths, missing=np.nan)(fresh)
    table = contributions.lightgbm_path_contributions(model.booster_)(fresh)
    assert np.abs(table).max() > 0.1  # contributions worth comparing
    np.testing.assert_allclose(got, table, rtol=0, atol=1e-5)
    # a single row (the service's case) has the same shape and values
    np.testing.assert_allclose(
        path_trees.path_contributions(paths, missing=np.nan)(fresh[:1]), table[:1], atol=1e-5
    )


def test_node_means_are_cover_weighted_leaf_values() -> None:
    x, y = tree_data(5)
    model = xgboost.XGBClassifier(n_estimators=1, max_depth=1).fit(x, y)
    tree = json.loads(bytes(model.get_booster().save_raw("json")))["learner"]["gradient_booster"][
        "model"
    ]["trees"][0]
    left, right = tree["left_children"][0], tree["right_children"][0]
    hessian, leaf = tree["sum_hessian"], tree["split_conditions"]
    expected_root = (leaf[left] * hessian[left] + leaf[right] * hessian[right]) / hessian[0]
    means = path_trees.node_means(tree)
    assert means[0] == pytest.approx(expected_root, rel=1e-6)
    assert (means[left], means[right]) == (leaf[left], leaf[right])


def test_more_than_one_output_is_not_turned_into_paths() -> None:
    x, _ = tree_data(6)
    y = np.random.default_rng(7).integers(0, 3, len(x))
    model = xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(x, y)
    parsed = json.loads(bytes(model.get_booster().save_raw("json")))
    with pytest.raises(path_trees.UnsupportedPathTreeError, match="more than one output"):
        path_trees.path_booster(parsed, [np.zeros(1)] * 9)


def test_categorical_xgboost_splits_fall_back_to_approx_contribs() -> None:
    import pandas as pd

    x, y = tree_data(8)
    frame = pd.DataFrame(x, columns=list("abcdef"))
    frame["f"] = pd.Categorical(np.random.default_rng(9).integers(0, 4, len(x)))
    model = xgboost.XGBClassifier(
        n_estimators=20, max_depth=3, enable_categorical=True, tree_method="hist"
    ).fit(frame, y)
    parsed = json.loads(bytes(model.get_booster().save_raw("json")))
    trees = parsed["learner"]["gradient_booster"]["model"]["trees"]
    assert any(any(t["split_type"]) for t in trees)  # the model does split on the category
    with pytest.raises(path_trees.UnsupportedPathTreeError, match="categorical"):
        path_trees.path_booster(parsed, [path_trees.node_means(t) for t in trees])
