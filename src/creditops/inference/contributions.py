"""Per-prediction contributions of the compiled classifiers: what becomes a reason.

Contributions are per transformed column, in the model's own units; the
scorer sums them per contract field (or derived ratio):

* XGBoost, LightGBM: tree SHAP values (``pred_contrib``), in log-odds;
* logistic regression: coefficient x transformed value (standardised numbers,
  0/1 indicators), in log-odds: the reference point is the training mean of
  each numeric column and "absent" for each category;
* random forest: the decision-path decomposition of the averaged tree
  probabilities (Saabas): each split's change in P(bad) is credited to the
  split's feature. It is exact (bias + contributions = probability) and costs
  one tree walk, but unlike SHAP it favours features split near the root.

Tree SHAP costs about trees x leaves x depth^2 operations per row (0.3 ms per
row and core for 300 trees of depth 4). Reasons everywhere use the boosters'
decision-path contributions instead (``method="path"``): XGBoost's
``approx_contribs``, and for LightGBM each split's change of ``internal_value``
(child minus parent) credited to the split's feature. Both are computed by
vector-leaf trees (:mod:`creditops.inference.path_trees`), at the cost of a
prediction; when a model's trees cannot be rewritten, by
XGBoost's ``approx_contribs`` and by a table of each LightGBM leaf's path
credits summed over the leaves a row reaches. Both are additive (bias +
contributions = log-odds), like SHAP, and cost a prediction, not a SHAP pass.
The logistic regression's and the forest's contributions are the same for both
methods.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from creditops.inference.raw import Matrix

if TYPE_CHECKING:
    import lightgbm
    import xgboost
    from xgboost._typing import IterationRange

Contribute = Callable[[Matrix], Matrix]


def linear_contributions(coef: Matrix) -> Contribute:
    """Coefficient x transformed value, per column (exact for both methods)."""

    def linear(x: Matrix) -> Matrix:
        return x * coef  # type: ignore[no-any-return]

    return linear


def xgboost_contributions(
    booster: xgboost.Booster, iteration_range: IterationRange, missing: float, *, approximate: bool
) -> Contribute:
    """XGBoost's tree SHAP values, or its decision-path ones when ``approximate``."""
    import xgboost

    def contribute(x: Matrix) -> Matrix:
        matrix = xgboost.DMatrix(x, missing=missing, nthread=1)
        return booster.predict(  # type: ignore[no-any-return]
            matrix,
            pred_contribs=True,
            approx_contribs=approximate,
            iteration_range=iteration_range,
            validate_features=False,
        )[:, :-1]

    return contribute


def lightgbm_shap(booster: lightgbm.Booster) -> Contribute:
    """LightGBM's tree SHAP values (the bias column dropped)."""

    def contribute(x: Matrix) -> Matrix:
        return cast("Matrix", booster.predict(x, pred_contrib=True, num_threads=1))[:, :-1]

    return contribute


def lightgbm_path_contributions(booster: lightgbm.Booster) -> Contribute:
    """Decision-path contributions of a LightGBM booster, from a per-leaf table.

    A row's path contributions in one tree depend only on the leaf it reaches:
    each split on the way credits ``value(child) - value(split)`` to the split's
    feature. The table holds one row per leaf of every tree (those credits,
    per feature); a row's contributions are the sum of the table rows of the
    leaves it reaches: one sparse (row x leaf indicator) by dense product,
    whose cost does not depend on a per-tree Python loop (a single row costs
    about a prediction, not 300 NumPy calls).
    """
    from scipy import sparse

    dump = booster.dump_model()
    width = int(dump["max_feature_idx"]) + 1
    trees = [info["tree_structure"] for info in dump["tree_info"]]
    counts = [int(info["num_leaves"]) for info in dump["tree_info"]]
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    table = np.zeros((int(sum(counts)), width))
    for offset, tree in zip(offsets, trees, strict=True):
        for f, values in _leaf_table(tree):
            table[offset : offset + len(values), f] = values
    n_trees = len(trees)

    def contribute_path(x: Matrix) -> Matrix:
        leaf = np.asarray(booster.predict(x, pred_leaf=True, num_threads=1), dtype=np.int64)
        n = leaf.shape[0]
        reached = sparse.csr_matrix(
            (
                np.ones(n * n_trees),
                (leaf + offsets).ravel(),
                np.arange(0, n * n_trees + 1, n_trees),
            ),
            shape=(n, len(table)),
        )
        return np.asarray(reached @ table)

    return contribute_path


def _leaf_table(root: dict[str, Any]) -> list[tuple[int, Matrix]]:
    """One (feature, value per leaf) pair per feature one tree splits on."""
    leaves: dict[int, dict[int, float]] = {}
    stack: list[tuple[dict[str, Any], dict[int, float]]] = [(root, {})]
    while stack:
        node, credit = stack.pop()
        if "leaf_index" in node:
            leaves[int(node["leaf_index"])] = credit
            continue
        if "split_index" not in node:  # a single-leaf tree
            leaves[0] = credit
            continue
        parent = float(node["internal_value"])
        feature = int(node["split_feature"])
        for side in ("left_child", "right_child"):
            child = node[side]
            value = float(child["leaf_value"] if "leaf_index" in child else child["internal_value"])
            update = dict(credit)
            update[feature] = update.get(feature, 0.0) + value - parent
            stack.append((child, update))
    columns: list[tuple[int, Matrix]] = []
    for f in sorted({f for credit in leaves.values() for f in credit}):
        values = np.zeros(max(leaves) + 1)
        for leaf, credit in leaves.items():
            values[leaf] = credit.get(f, 0.0)
        columns.append((f, values))
    return columns


def forest_path_contributions(
    walk: Callable[[Matrix], Iterator[Matrix]], value: Matrix, feature: Matrix, n_trees: int
) -> Contribute:
    """The Saabas decomposition of a forest's averaged P(bad), from its lock-step walk.

    Args:
        walk: the nodes every row is at in every tree, one matrix per depth, root first.
        value: P(bad) at each (flat) node.
        feature: the split feature of each (flat) node.
        n_trees: how many trees the probabilities are averaged over.
    """

    def contribute(x: Matrix) -> Matrix:
        n, d = x.shape
        out = np.zeros(n * d, dtype=np.float64)
        rows = np.repeat(np.arange(n), n_trees)
        for parent, child in itertools.pairwise(walk(x)):
            delta = (value[child] - value[parent]).ravel()
            out += np.bincount(rows * d + feature[parent].ravel(), weights=delta, minlength=n * d)
        return out.reshape(n, d) / n_trees

    return contribute
