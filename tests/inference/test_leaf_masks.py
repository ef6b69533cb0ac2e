"""Leaf masks give XGBoost's decision-path contributions bit for bit, for the service's small batches."""

from __future__ import annotations

import logging

import lightgbm
import numpy as np
import pytest
import xgboost

from creditops.inference import lightgbm_trees, path_trees
from creditops.inference.leaf_masks import LeafMasks
from support import by_xgboost, near_splits, tree_data, xgboost_paths


def test_lightgbm_paths_by_leaf_masks_are_xgboosts_bit_for_bit() -> None:
    x, y = tree_data(0)
    model = lightgbm.LGBMClassifier(n_estimators=120, num_leaves=31, verbose=-1).fit(x, y)
    rewritten = lightgbm_trees.rewrite(model.booster_)
    paths = path_trees.path_booster(rewritten.model, rewritten.node_values())
    assert LeafMasks.supports(paths.trees) is None
    masks = LeafMasks(paths.trees, paths.width, np.nan)
    fresh, _ = tree_data(1, 2000)
    fresh = near_splits(paths, fresh, seed=2)
    expected = by_xgboost(paths, fresh, np.nan)
    assert np.abs(expected).max() > 0.1  # contributions worth comparing
    assert np.array_equal(masks(fresh), expected)
    # the routed function: small batches by masks, large ones by XGBoost, one answer
    contribute = path_trees.path_contributions(paths, missing=np.nan)
    for rows in (1, 2, path_trees.SMALL_BATCH, path_trees.SMALL_BATCH + 1):
        assert np.array_equal(contribute(fresh[:rows]), expected[:rows]), rows


def test_xgboost_paths_by_leaf_masks_with_a_missing_marker_and_stumps() -> None:
    x, y = tree_data(3)
    x = np.where(np.isnan(x), -999.0, x)  # missing values marked -999, not NaN
    model = xgboost.XGBClassifier(
        n_estimators=60, max_depth=5, learning_rate=0.3, missing=-999.0, gamma=2.0
    ).fit(x, y)
    paths = xgboost_paths(model)
    assert any(t["left_children"][0] == -1 for t in paths.trees)  # gamma pruned whole trees
    masks = LeafMasks(paths.trees, paths.width, -999.0)
    fresh, _ = tree_data(4, 2000)
    fresh = near_splits(paths, np.where(np.isnan(fresh), -999.0, fresh), seed=5)
    expected = by_xgboost(paths, fresh, -999.0)
    assert np.array_equal(masks(fresh), expected)
    assert np.array_equal(masks(fresh[:1]), expected[:1])


def test_an_infinite_input_is_left_to_xgboost() -> None:
    x, y = tree_data(6)
    model = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(x, y)
    paths = xgboost_paths(model)
    masks = LeafMasks(paths.trees, paths.width, np.nan)
    row = x[:1].copy()
    assert masks.handles(row)
    row[0, 2] = np.inf
    assert not masks.handles(row)
    # the routed function gives XGBoost's own answer for that row
    contribute = path_trees.path_contributions(paths, missing=np.nan)
    assert np.array_equal(contribute(row), by_xgboost(paths, row, np.nan))


def test_trees_of_more_than_64_leaves_are_walked_by_xgboost_and_the_log_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    x, y = tree_data(7)
    model = lightgbm.LGBMClassifier(
        n_estimators=5, num_leaves=80, min_child_samples=5, verbose=-1
    ).fit(x, y)
    rewritten = lightgbm_trees.rewrite(model.booster_)
    paths = path_trees.path_booster(rewritten.model, rewritten.node_values())
    why = LeafMasks.supports(paths.trees)
    assert why is not None and "more than 64" in why
    with caplog.at_level(logging.INFO, logger="creditops.inference.path_trees"):
        contribute = path_trees.path_contributions(paths, missing=np.nan)
    assert "more than 64" in caplog.text
    assert np.array_equal(contribute(x[:3]), by_xgboost(paths, x[:3], np.nan))


def test_a_default_left_split_at_minus_infinity_is_not_taken() -> None:
    tree = {
        "left_children": [1, -1, -1],
        "right_children": [2, 0, 1],
        "default_left": [1, 0, 0],
        "split_conditions": [float("-inf"), 0.0, 0.0],
        "split_indices": [0, 0, 0],
    }
    assert "-inf" in (LeafMasks.supports([tree]) or "")
