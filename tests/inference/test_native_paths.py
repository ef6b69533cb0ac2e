"""Decision paths by compiled leaf numbers give XGBoost's contributions bit for bit, at any size."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import lightgbm
import numpy as np
import pytest
import xgboost

from creditops.inference import lightgbm_trees, native_paths, native_trees, path_trees
from support import by_xgboost, near_splits, tree_data, xgboost_paths

pytest.importorskip("lleaves")  # Python 3.14+: no llvmlite lleaves can use


def _lightgbm_paths(seed: int, **params: object) -> path_trees.PathTrees:
    x, y = tree_data(seed)
    model = lightgbm.LGBMClassifier(verbose=-1, random_state=seed, **params).fit(x, y)  # type: ignore[arg-type]
    rewritten = lightgbm_trees.rewrite(model.booster_)
    return path_trees.path_booster(rewritten.model, rewritten.node_values())


def _hostile_rows(paths: path_trees.PathTrees, seed: int, missing: float = np.nan) -> np.ndarray:
    """Fresh rows on and beside the split conditions, with infinities and huge values."""
    rng = np.random.default_rng(seed)
    fresh, _ = tree_data(seed, 3000)
    if not np.isnan(missing):
        fresh = np.where(np.isnan(fresh), missing, fresh)
    fresh = near_splits(paths, fresh, seed=seed + 1)
    cells = rng.random(fresh.shape)
    fresh[cells < 0.01] = np.inf
    fresh[(cells >= 0.01) & (cells < 0.02)] = -np.inf
    fresh[(cells >= 0.02) & (cells < 0.025)] = 1e300  # past float32: read as +inf
    return fresh


@pytest.mark.parametrize(
    ("seed", "params"),
    [
        (0, {"n_estimators": 120, "num_leaves": 31}),  # 20 classes of 6 trees
        (1, {"n_estimators": 13, "num_leaves": 7}),  # 13 trees: the last class padded
        (2, {"n_estimators": 1, "num_leaves": 4}),  # one tree, one class
        (3, {"n_estimators": 8, "num_leaves": 256, "min_child_samples": 2}),  # a leaf in byte 255
    ],
)
def test_lightgbm_paths_are_xgboosts_bit_for_bit(
    seed: int, params: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _lightgbm_paths(seed, **params)
    native = native_paths.NativePaths(paths.trees, paths.width, np.nan, tmp_path)
    rows = _hostile_rows(paths, seed + 10)
    expected = by_xgboost(paths, rows, np.nan)  # the independent answer: XGBoost's predictor
    assert np.abs(expected).max() > 0.01
    got = native(rows)
    assert got.dtype == np.float64 and got.shape == expected.shape
    assert np.array_equal(got, expected)
    for size in (0, 1, native_trees.HELD_ROWS, native_trees.HELD_ROWS + 1):  # held entry and not
        assert np.array_equal(native(rows[:size]), expected[:size]), size
    monkeypatch.setattr(native_paths, "PASS_CELLS", 7 * native.trees)  # passes of 7 rows
    assert np.array_equal(native(rows[:100]), expected[:100])
    # every leaf number decoded is a leaf of its own tree
    counts = [sum(1 for c in t["left_children"] if c == -1) for t in paths.trees]
    assert max(counts) == params["num_leaves"]  # the widest tree is as wide as allowed
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    leaves = native.leaves(rows[:500])
    assert leaves.shape == (500, len(paths.trees))
    assert ((leaves >= first) & (leaves < first + counts)).all()


def test_xgboost_paths_with_a_missing_marker_and_pruned_trees(tmp_path: Path) -> None:
    x, y = tree_data(5)
    x = np.where(np.isnan(x), -999.0, x)
    model = xgboost.XGBClassifier(
        n_estimators=60, max_depth=5, learning_rate=0.3, missing=-999.0, gamma=2.0
    ).fit(x, y)
    paths = xgboost_paths(model)
    assert any(t["left_children"][0] == -1 for t in paths.trees)  # whole trees pruned to a leaf
    native = native_paths.NativePaths(paths.trees, paths.width, -999.0, tmp_path)
    assert native.trees < len(paths.trees)  # a lone leaf adds nothing: not compiled
    rows = _hostile_rows(paths, 6, missing=-999.0)
    assert np.array_equal(native(rows), by_xgboost(paths, rows, -999.0))


def test_the_routed_function_uses_the_compiled_paths_past_the_small_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = _lightgbm_paths(7, n_estimators=40, num_leaves=15)
    contribute = path_trees.path_contributions(paths, missing=np.nan)
    assert contribute.native is not None
    walked: list[int] = []
    own = native_paths.NativePaths.__call__

    def counted(self: native_paths.NativePaths, x: np.ndarray) -> np.ndarray:
        walked.append(len(x))
        return own(self, x)

    monkeypatch.setattr(native_paths.NativePaths, "__call__", counted)
    rows = _hostile_rows(paths, 8)
    finite = np.where(np.isinf(rows), 0.0, rows)  # leaf masks take finite rows only
    expected = by_xgboost(paths, finite, np.nan)
    for size in (1, path_trees.SMALL_BATCH, path_trees.SMALL_BATCH + 1, 2000):
        assert np.array_equal(contribute(finite[:size]), expected[:size]), size
    assert walked == [path_trees.SMALL_BATCH + 1, 2000]


def test_unsupported_trees_and_no_lleaves_fall_back_to_xgboost(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    paths = _lightgbm_paths(9, n_estimators=3, num_leaves=300, min_child_samples=2)
    assert max(sum(1 for c in t["left_children"] if c == -1) for t in paths.trees) > 256
    with pytest.raises(native_paths.UnsupportedNativePathsError, match="leaves"):
        native_paths.NativePaths(paths.trees, paths.width, np.nan)
    with caplog.at_level(logging.INFO, logger="creditops.inference.path_trees"):
        contribute = path_trees.path_contributions(paths, missing=np.nan)
    assert contribute.native is None
    assert "not compiled to machine code" in caplog.text
    rows = _hostile_rows(paths, 10)[:50]
    assert np.array_equal(contribute(rows), by_xgboost(paths, rows, np.nan))

    small = _lightgbm_paths(11, n_estimators=10, num_leaves=7)
    monkeypatch.setitem(sys.modules, "lleaves", None)  # import lleaves: ImportError
    contribute = path_trees.path_contributions(small, missing=np.nan)
    assert contribute.native is None
    rows = _hostile_rows(small, 12)[:50]
    assert np.array_equal(contribute(rows), by_xgboost(small, rows, np.nan))


def test_a_split_at_minus_infinity_is_refused() -> None:
    tree = {
        "left_children": [1, -1, -1],
        "right_children": [2, 0, 1],
        "default_left": [0, 0, 0],
        "split_conditions": [float("-inf"), 1e-45, 1e-45],
        "split_indices": [0, 0, 0],
        "leaf_weights": [0.0, 0.0],
    }
    with pytest.raises(native_paths.UnsupportedNativePathsError, match="-inf"):
        native_paths.NativePaths([tree], 1, np.nan)


def test_trees_that_are_all_a_lone_leaf_credit_nothing(tmp_path: Path) -> None:
    lone = {"left_children": [-1], "right_children": [0], "leaf_weights": [0.0, 0.0, 0.0]}
    native = native_paths.NativePaths([lone, lone], 3, np.nan, tmp_path)
    rows = np.array([[1.0, np.nan, -2.0], [0.0, 5.0, np.inf]])
    assert native.trees == 0
    assert list(tmp_path.iterdir()) == []  # nothing to compile
    assert native.leaves(rows).shape == (2, 0)
    got = native(rows)
    assert got.dtype == np.float64 and np.array_equal(got, np.zeros((2, 3)))
