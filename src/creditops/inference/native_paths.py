"""Decision-path contributions from the leaves compiled trees reach: XGBoost's sums, bit for bit.

XGBoost's predictor walks the vector-leaf trees of
:mod:`creditops.inference.path_trees` at 7-10 microseconds a row on one core
(300 trees of 15 leaves, 30 columns): a walk and, per tree, a leaf vector
added into the row's output. :class:`NativePaths` splits the two:

* the walk: lleaves compiles the trees' splits to machine code
  (:mod:`creditops.inference.native_trees`, cached the same way) whose output
  is, for every tree, the leaf a row reaches: 1.3-1.9 microseconds a row;
* the sum: the reached leaves' credit vectors are added by a sparse product
  (a rows x leaves indicator times the leaves' credits) in float32, tree
  after tree from zero, as XGBoost accumulates them: the same bits, about 2.5
  microseconds a row.

lleaves returns one number per class, the sum of that class's trees. Each
compiled tree's leaves hold their leaf number times ``256**j``, ``j`` the
tree's place among the (at most six) trees of its class: the class's sum, at
most 48 bits, is exact in a double and holds its trees' leaf numbers one byte
each. A tree of more than 256 leaves is left to XGBoost.

The decisions are XGBoost's: the input is rounded to float32 (as XGBoost reads
it), a split ``float32(x) < c`` is compiled as LightGBM's ``x <= t`` with
``t`` the float32 just below ``c`` (the same test on every float32), and a
missing value (NaN, or the model's ``missing``) takes the split's default way.
A split at ``c = -inf`` (nothing goes left) has no such ``t``: left to XGBoost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from creditops.inference import native_trees
from creditops.inference.raw import Matrix

# a compiled class sums at most this many trees, a byte each (48 bits: exact in a double)
TREES_PER_CLASS = 6
MAX_LEAVES = 256
# the most rows x trees cells one pass walks and sums
PASS_CELLS = 2**22
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class UnsupportedNativePathsError(Exception):
    """Trees this module does not compile (a leaf number past a byte, a split at -inf)."""


def _threshold(condition: float) -> str:
    """LightGBM's ``x <= t`` equal to XGBoost's ``x < condition`` for every float32 ``x``."""
    c = np.float32(condition)
    if np.isnan(c) or c == -np.inf:
        raise UnsupportedNativePathsError(f"a split at {condition}")
    if c == np.inf:
        return repr(_FLOAT32_MAX)  # every finite float32 goes left, +inf right
    return repr(float(np.nextafter(c, np.float32(-np.inf))))


def _tree_text(number: int, tree: dict[str, Any], scale: int) -> tuple[str, int]:
    """One vector-leaf tree in LightGBM's text format (leaf values: leaf number x ``scale``)."""
    left, right = tree["left_children"], tree["right_children"]
    splits = [k for k in range(len(left)) if left[k] != -1]
    index = {k: i for i, k in enumerate(splits)}
    leaves = len(left) - len(splits)
    if leaves > MAX_LEAVES:
        raise UnsupportedNativePathsError(f"a tree of {leaves} leaves (at most {MAX_LEAVES})")

    def child(node: int) -> str:  # a vector leaf's right child is its leaf number
        return str(index[node]) if left[node] != -1 else str(-(right[node] + 1))

    values = [0] * leaves
    for k in range(len(left)):
        if left[k] == -1:
            values[right[k]] = right[k] * scale
    lines = [
        f"Tree={number}",
        f"num_leaves={leaves}",
        "num_cat=0",
        "split_feature=" + " ".join(str(tree["split_indices"][k]) for k in splits),
        "threshold=" + " ".join(_threshold(float(tree["split_conditions"][k])) for k in splits),
        # 8: missing values are NaN; +2: they go left
        "decision_type=" + " ".join(str(8 | 2 * bool(tree["default_left"][k])) for k in splits),
        "left_child=" + " ".join(child(left[k]) for k in splits),
        "right_child=" + " ".join(child(right[k]) for k in splits),
        "leaf_value=" + " ".join(str(v) for v in values),
        "is_linear=0",
        "shrinkage=1",
    ]
    return "\n".join(lines) + "\n", leaves


def _empty_tree(number: int) -> str:
    return (
        f"Tree={number}\nnum_leaves=1\nnum_cat=0\nsplit_feature=\nthreshold=\n"
        "decision_type=\nleft_child=\nright_child=\nleaf_value=0\nis_linear=0\nshrinkage=1\n"
    )


class NativePaths:
    """The contribution function of vector-leaf trees, by compiled leaf numbers (rows x width, float64).

    Args:
        trees: XGBoost JSON trees whose leaves are ``width``-wide vectors
            (:func:`creditops.inference.path_trees.path_booster`'s).
        width: the input's width.
        missing: the value that marks a missing input besides NaN.
        folder: the compiled code's cache folder (default ``native_trees.cache_folder()``).

    Raises:
        UnsupportedNativePathsError: a tree of more than 256 leaves, or a split at -inf.
        native_trees.NativeUnavailableError: lleaves is not installed, or cannot compile them.
    """

    def __init__(
        self, trees: list[dict[str, Any]], width: int, missing: float, folder: Path | None = None
    ) -> None:
        self.width = width
        self.missing = np.float32(missing)
        kept = [tree for tree in trees if tree["left_children"][0] != -1]  # a leaf alone adds 0
        self.trees = len(kept)
        self._credits = np.zeros((0, width), dtype=np.float32)
        if not kept:
            return
        # lleaves gives tree i to class i % classes: class c sums trees c, c + classes, ...
        self.classes = -(-len(kept) // TREES_PER_CLASS)
        per_class = -(-len(kept) // self.classes)
        texts, first_leaf, credits = [], [], []
        leaves_so_far = 0
        for i, tree in enumerate(kept):
            text, leaves = _tree_text(i, tree, 256 ** (i // self.classes))
            texts.append(text)
            first_leaf.append(leaves_so_far)
            leaves_so_far += leaves
            credits.append(np.asarray(tree["leaf_weights"], dtype=np.float32).reshape(-1, width))
        padded = self.classes * per_class  # every class the same number of trees
        texts += [_empty_tree(i) for i in range(len(kept), padded)]
        header = [
            "tree",
            "version=v4",
            f"num_class={self.classes}",
            f"num_tree_per_iteration={self.classes}",
            "label_index=0",
            f"max_feature_idx={width - 1}",
            f"objective=multiclass num_class:{self.classes}",
            "feature_names=" + " ".join(f"Column_{j}" for j in range(width)),
            "feature_infos=" + " ".join(["[-1:1]"] * width),  # numeric, not categorical
            "tree_sizes=" + " ".join(["0"] * padded),
        ]
        text = "\n".join(header) + "\n\n" + "\n".join(texts)
        text += "\nend of trees\n\npandas_categorical:null\n"
        # not inlined: compiled in a fifth of the time (2 s for 300 trees of 15 leaves, 7 s
        # for 600 of 32), walked about 0.4 microseconds a row slower
        self._model = native_trees.compile_text(text, folder, raw_score=True, inline=False)
        self._held = native_trees.held_entry(self._model)
        self._per_class = per_class
        self._first_leaf = np.asarray(first_leaf, dtype=np.int32)
        self._credits = np.concatenate(credits)

    def leaves(self, x: Matrix) -> np.ndarray:
        """The leaf each row reaches in each kept tree, as a row of :attr:`_credits` (rows x trees)."""
        if not self.trees:  # every tree a lone leaf: nothing compiled, nothing reached
            return np.zeros((len(x), 0), dtype=np.int32)
        with np.errstate(over="ignore"):  # past float32: +-inf, as XGBoost reads it
            x32 = np.asarray(x, dtype=np.float32)
        if not np.isnan(self.missing):
            x32 = np.where(x32 == self.missing, np.float32(np.nan), x32)
        data = np.ascontiguousarray(x32, dtype=np.float64)
        n = len(data)
        if self._held is not None and n <= native_trees.HELD_ROWS:
            packed = self._held(data)
        else:
            packed = self._model.predict(data, n_jobs=1)
        # each class's number, its bytes little end first: byte j is its j-th tree's leaf
        octets = packed.reshape(n, self.classes).astype("<u8").view(np.uint8)
        octets = octets.reshape(n, self.classes, 8)[:, :, : self._per_class]
        # (row, j, class) -> tree j * classes + class
        number = octets.transpose(0, 2, 1).reshape(n, -1)[:, : self.trees]
        wide = len(self._credits) >= 2**31 or number.size >= 2**31  # the sparse product's indices
        reached: np.ndarray = number.astype(np.int64 if wide else np.int32)
        reached += self._first_leaf
        return reached

    def __call__(self, x: Matrix) -> Matrix:
        """Each row's contributions (rows x width, float64), XGBoost's float32 sums exactly."""
        n = len(x)
        if not self.trees or not n:
            return np.zeros((n, self.width))
        # in passes of at most PASS_CELLS rows x trees: the leaf numbers and the
        # indicator's values take 8 bytes a cell (32 MiB a pass), whatever the batch
        step = max(1, PASS_CELLS // self.trees)
        if n <= step:
            return self._summed(x)
        return np.concatenate([self._summed(x[i : i + step]) for i in range(0, n, step)])

    def _summed(self, x: Matrix) -> Matrix:
        from scipy import sparse

        leaf = self.leaves(x)
        reached = sparse.csr_array(
            (
                np.ones(leaf.size, dtype=np.float32),
                leaf.ravel(),
                np.arange(0, leaf.size + 1, self.trees, dtype=leaf.dtype),
            ),
            shape=(len(x), len(self._credits)),
        )
        summed = reached @ self._credits  # float32, tree after tree (index order) from zero
        return np.asarray(summed, dtype=np.float64)
