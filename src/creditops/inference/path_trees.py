"""Decision-path contributions computed by XGBoost's predictor: one tree walk per row.

A row's decision-path (Saabas) contributions in one tree depend only on the
leaf it reaches: each split on the way credits ``value(child) - value(split)``
to the split's feature. So a tree whose leaves hold those credits, as a vector
with one entry per input column, predicts the row's contributions: summed over
the trees, the vectors are the row's contributions, all columns at once.
XGBoost's multi-target trees (``size_leaf_vector`` > 1) are such trees, and its
``inplace_predict`` walks them in blocks of rows, in C++, about as fast as it
predicts: 6.5 microseconds a row on one core for 300 trees of 15 leaves, against
22 for LightGBM's leaf indices and a sparse product with a per-leaf table, and
18 for XGBoost's own ``approx_contribs``.

:func:`path_booster` builds that booster from an XGBoost JSON model of scalar
trees (XGBoost's own, or LightGBM's rewritten by
:mod:`creditops.inference.lightgbm_trees`) and each tree's node values:

* LightGBM: the node's ``internal_value`` (its output were it a leaf), so the
  contributions are LightGBM's own decision-path ones;
* XGBoost: the cover-weighted mean of the leaves below the node, the values
  XGBoost's ``approx_contribs`` credits (:func:`node_means`).

The leaf vectors are float32, XGBoost's precision: contributions agree with a
float64 walk of the trees to about 1e-6 (in log-odds), far below any gap that
orders two reasons.

:func:`path_contributions` walks larger batches by the trees' splits compiled
to machine code (:mod:`creditops.inference.native_paths`: the leaves reached,
then their credits summed, at 60-80 % of XGBoost's cost), and batches of up to
``SMALL_BATCH`` rows (the service's declines of a few requests) by leaf masks
(:mod:`creditops.inference.leaf_masks`), which skip the 150-300 microseconds
a call of XGBoost's predictor costs however few the rows. Both give XGBoost's
float32 sums bit for bit, so the service and batch scoring give an applicant
the same reasons; XGBoost's predictor walks them where lleaves is not
installed or cannot take the trees.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from creditops.inference.leaf_masks import LeafMasks
from creditops.inference.raw import Matrix
from creditops.inference.xgboost_json import booster_document, load_booster

if TYPE_CHECKING:
    import xgboost

log = logging.getLogger(__name__)

# XGBoost writes this in a leaf's unused split condition
_UNUSED = 1e-45
# Batches up to this many rows are walked by leaf masks: XGBoost's predictor costs
# 150-300 microseconds a call, leaf masks about 60 for one row and 140 for eight
# (300 trees), and more than XGBoost from about a dozen rows on.
SMALL_BATCH = 8


class UnsupportedPathTreeError(Exception):
    """A tree this module does not turn into contributions (categorical splits, vector leaves)."""


def node_means(tree: dict[str, Any]) -> Matrix:
    """Each node's cover-weighted mean leaf value: what XGBoost's ``approx_contribs`` credits.

    As XGBoost's ``FillNodeMeanValues``: a leaf's value, and for a split
    ``(mean(left) h(left) + mean(right) h(right)) / h(split)``, ``h`` the
    node's sum of hessians.
    """
    left, right = tree["left_children"], tree["right_children"]
    hessian = np.asarray(tree["sum_hessian"], dtype=np.float64)
    leaf_value = np.asarray(tree["split_conditions"], dtype=np.float64)
    means = np.zeros(len(left))
    # breadth-first ids: children come after their parent, so a reverse sweep sees them first
    for k in range(len(left) - 1, -1, -1):
        if left[k] == -1:
            means[k] = leaf_value[k]
        else:
            lo, hi = left[k], right[k]
            means[k] = (means[lo] * hessian[lo] + means[hi] * hessian[hi]) / hessian[k]
    return means


def _leaf_credits(tree: dict[str, Any], values: Matrix, width: int) -> tuple[list[int], Matrix]:
    """The leaves of one tree (node ids, in order) and each one's path credits per column."""
    left, right = tree["left_children"], tree["right_children"]
    feature = tree["split_indices"]
    size = len(left)
    credit = np.zeros((size, width))
    parent = np.full(size, -1)
    order = [0]
    for k in order:  # grows while walked: every node once, parents first
        if left[k] != -1:
            for child in (left[k], right[k]):
                parent[child] = k
                credit[child] = credit[k]
                credit[child, feature[k]] += values[child] - values[k]
                order.append(child)
    leaves = [k for k in range(size) if left[k] == -1]
    return leaves, credit[leaves]


def _vector_tree(tree: dict[str, Any], values: Matrix, width: int) -> dict[str, Any]:
    if any(tree.get("split_type", [])) or int(tree["tree_param"]["size_leaf_vector"]) > 1:
        raise UnsupportedPathTreeError("categorical split or vector leaves")
    leaves, credits = _leaf_credits(tree, values, width)
    size = len(tree["left_children"])
    right = list(tree["right_children"])
    conditions = list(tree["split_conditions"])
    for position, k in enumerate(leaves):
        right[k] = position  # a vector leaf's right child is its row in leaf_weights
        conditions[k] = _UNUSED
    parents = list(tree["parents"])
    parents[0] = -1
    return {
        **tree,
        "base_weights": [0.0] * (size * width),  # split values: unused by prediction
        "leaf_weights": credits.ravel().tolist(),
        "parents": parents,
        "right_children": right,
        "split_conditions": conditions,
        "tree_param": {**tree["tree_param"], "size_leaf_vector": str(width)},
    }


@dataclass(frozen=True)
class PathTrees:
    """A model's vector-leaf trees, their XGBoost JSON model, and the booster that walks them."""

    trees: list[dict[str, Any]]
    width: int
    document: dict[str, Any]

    @functools.cached_property
    def booster(self) -> xgboost.Booster:
        """XGBoost's booster of the trees, built on first use (a tenth of a second for 300
        trees): where lleaves compiles them, only a check against XGBoost needs it."""
        return load_booster(self.document)


def path_booster(
    model: dict[str, Any], values: list[Matrix], trees: slice | None = None
) -> PathTrees:
    """Trees (and their booster) whose margin is each row's decision-path contributions, per column.

    Args:
        model: an XGBoost JSON model (``Booster.save_raw("json")``, parsed) of
            scalar trees, one output.
        values: each tree's node values (by node id) the splits' credits are
            differences of.
        trees: the trees to keep (an iteration range), all when None.

    Raises:
        UnsupportedPathTreeError: a categorical split, vector leaves, or more
            than one output (classes, targets, parallel trees).
    """
    learner = model["learner"]
    params = learner["learner_model_param"]
    gbtree = learner["gradient_booster"]
    if gbtree.get("name") != "gbtree":
        raise UnsupportedPathTreeError(f"booster {gbtree.get('name')!r}")
    forest = gbtree["model"]
    if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) != 1:
        raise UnsupportedPathTreeError("more than one output")
    if int(forest["gbtree_model_param"].get("num_parallel_tree", "1")) != 1:
        raise UnsupportedPathTreeError("parallel trees")
    width = int(params["num_feature"])
    kept = range(len(forest["trees"]))[trees or slice(None)]
    vector_trees = [
        {**_vector_tree(forest["trees"][t], values[t], width), "id": i} for i, t in enumerate(kept)
    ]
    document = booster_document(
        vector_trees,
        features=width,
        targets=width,
        base_score="[" + ",".join(["0"] * width) + "]",
        objective="reg:squarederror",
    )
    return PathTrees(vector_trees, width, document)


class PathContributions:
    """The contribution function of :func:`path_booster`'s trees: rows x columns, float64.

    Up to ``SMALL_BATCH`` rows are walked by leaf masks
    (:mod:`creditops.inference.leaf_masks`, XGBoost's answer bit for bit
    without its per-call cost), more by the trees compiled to machine code
    (:mod:`creditops.inference.native_paths`, XGBoost's answer bit for bit at
    60-80 % of its cost), else by XGBoost's predictor.
    """

    def __init__(self, paths: PathTrees, missing: float) -> None:
        from creditops.inference import native_paths, native_trees

        self.paths = paths
        self.missing = missing
        self.masks: LeafMasks | None = None
        why = LeafMasks.supports(paths.trees)
        if why is None:
            self.masks = LeafMasks(paths.trees, paths.width, missing)
        else:
            log.info("decision paths of small batches by XGBoost's predictor (%s)", why)
        self.native: native_paths.NativePaths | None = None
        try:
            self.native = native_paths.NativePaths(paths.trees, paths.width, missing)
        except (
            native_paths.UnsupportedNativePathsError,
            native_trees.NativeUnavailableError,
        ) as exc:
            log.info("decision paths not compiled to machine code (%s)", exc)
            _ = paths.booster  # built now, not on the first large batch

    def __call__(self, x: Matrix) -> Matrix:
        if self.masks is not None and len(x) <= SMALL_BATCH and self.masks.handles(x):
            return self.masks(x)
        if self.native is not None:
            return self.native(x)
        return self.by_xgboost(x)

    def by_xgboost(self, x: Matrix) -> Matrix:
        """The contributions by XGBoost's predictor, whatever the number of rows."""
        margin = self.paths.booster.inplace_predict(
            x, predict_type="margin", missing=self.missing, validate_features=False
        )
        return np.asarray(margin, dtype=np.float64).reshape(len(x), -1)


def path_contributions(paths: PathTrees, missing: float) -> PathContributions:
    """The contribution function of ``paths``, ``missing`` marking a missing input besides NaN."""
    return PathContributions(paths, missing)
