"""The fitted pipeline compiled: preprocessing as numpy operations, the classifier's fast path.

The fitted preprocessing (median imputation, log, scaling, missing
indicators, one-hot) becomes a few numpy operations on the raw float matrix
(:mod:`creditops.inference.raw`), and the classifier is called through its own
fast entry point (XGBoost ``inplace_predict``; LightGBM's trees compiled to
machine code (:mod:`creditops.inference.native_trees`), else rewritten for
XGBoost's predictor (:mod:`creditops.inference.lightgbm_trees`);
``expit(X @ coef + b)`` for the logistic regression; a vectorised walk of all
trees for the random forest). A step this module does not reproduce exactly
raises :class:`UnsupportedStepError`: the scorer then uses the pipeline itself.
The contribution functions each compiled model carries are in
:mod:`creditops.inference.contributions`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import expit

from creditops import features, schema
from creditops.inference import contributions
from creditops.inference.raw import RAW_INDEX, Matrix

if TYPE_CHECKING:
    import xgboost
    from lightgbm import LGBMClassifier
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from xgboost import XGBClassifier
    from xgboost._typing import IterationRange

    from creditops.inference import lightgbm_trees

Op = Callable[[Matrix], Matrix]
log = logging.getLogger(__name__)

FOREST_SLICE_CELLS = 2**20
"""Rows x trees in one forest walk: its node arrays are 8 MiB each."""


class UnsupportedStepError(Exception):
    """A fitted step the compiler does not know: the pipeline is used instead."""


# --- preprocessing ----------------------------------------------------------------


def _numeric_op(step: TransformerMixin) -> Op:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    if isinstance(step, SimpleImputer):
        stats = np.asarray(step.statistics_, dtype=np.float64)
        if step.add_indicator or not np.all(np.isfinite(stats)):
            raise UnsupportedStepError("imputer with indicator or an all-missing column")
        if not (isinstance(step.missing_values, float) and np.isnan(step.missing_values)):
            raise UnsupportedStepError("imputer of a value other than NaN")
        return lambda x: np.where(np.isnan(x), stats, x)
    if isinstance(step, FunctionTransformer):
        if step.func is None:
            return lambda x: x
        if step.func is np.log1p:
            return np.log1p  # type: ignore[no-any-return]
        raise UnsupportedStepError(f"function transformer {step.func!r}")
    if isinstance(step, StandardScaler):
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None

        def standardise(x: Matrix) -> Matrix:
            out = x - mean if mean is not None else x.copy()
            if scale is not None:
                out /= scale
            return out

        return standardise
    raise UnsupportedStepError(f"step {type(step).__name__}")


def _onehot_block(steps: list[TransformerMixin], columns: list[str]) -> Op:
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    if len(steps) != 2 or not isinstance(steps[0], SimpleImputer):
        raise UnsupportedStepError("categorical block other than impute + one-hot")
    imputer, encoder = steps
    if not isinstance(encoder, OneHotEncoder) or imputer.strategy != "constant":
        raise UnsupportedStepError("categorical block other than constant impute + one-hot")
    if encoder.drop is not None or getattr(encoder, "_infrequent_enabled", False):
        raise UnsupportedStepError("one-hot with drop or infrequent categories")
    if encoder.handle_unknown != "ignore":
        raise UnsupportedStepError("one-hot that errors on unknown categories")
    lookups: list[tuple[int, np.ndarray]] = []
    offset = 0
    for name, categories in zip(columns, encoder.categories_, strict=True):
        spec = schema.FIELDS[name]
        if not isinstance(spec, schema.CategoricalField):
            raise UnsupportedStepError(f"one-hot of numeric column {name}")
        position = {str(c): offset + k for k, c in enumerate(categories)}
        levels = [*spec.categories, str(imputer.fill_value)]  # last code = missing
        lookups.append(
            (RAW_INDEX[name], np.asarray([position.get(lv, -1) for lv in levels], dtype=np.int64))
        )
        offset += len(categories)
    width = offset
    # all the block's columns at once: each column's codes index its own stretch of
    # one lookup table (one set of NumPy calls per block, not per column)
    taken = np.asarray([j for j, _ in lookups], dtype=np.int64)
    missing_code = np.asarray([len(lookup) - 1 for _, lookup in lookups], dtype=np.int64)
    starts = np.cumsum([0, *(len(lookup) for _, lookup in lookups[:-1])]).astype(np.int64)
    table = np.concatenate([lookup for _, lookup in lookups])

    def onehot(raw: Matrix) -> Matrix:
        out = np.zeros((raw.shape[0], width), dtype=np.float64)
        columns = raw[:, taken]
        code = np.where(np.isnan(columns), missing_code, columns).astype(np.int64)
        target = table[code + starts]
        rows, which = np.nonzero(target >= 0)
        out[rows, target[rows, which]] = 1.0
        return out

    return onehot


def _block(transformer: TransformerMixin, columns: list[str]) -> Op:
    from sklearn.impute import MissingIndicator
    from sklearn.pipeline import Pipeline

    if not all(c in RAW_INDEX for c in columns):
        raise UnsupportedStepError(f"unknown input columns {columns}")
    index = np.asarray([RAW_INDEX[c] for c in columns], dtype=np.int64)
    steps = (
        [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    )
    if any(c in schema.CATEGORICAL for c in columns):
        return _onehot_block(steps, columns)
    if isinstance(steps[0], MissingIndicator):
        indicator = steps[0]
        if len(steps) != 1 or not (
            isinstance(indicator.missing_values, float) and np.isnan(indicator.missing_values)
        ):
            raise UnsupportedStepError("missing indicator of a value other than NaN")
        picked = index[np.asarray(indicator.features_, dtype=np.int64)]
        return lambda raw: np.isnan(raw[:, picked]).astype(np.float64)
    ops = [_numeric_op(s) for s in steps]

    def numeric(raw: Matrix) -> Matrix:
        x = raw[:, index]
        for op in ops:
            x = op(x)
        return x

    return numeric


def compile_preprocessor(pipeline: Pipeline) -> Op:
    """The fitted ``derive`` + ``preprocess`` steps as numpy operations on a raw matrix.

    Raises:
        UnsupportedStepError: a step is not one this compiler reproduces exactly.
    """
    derive = pipeline.named_steps.get("derive")
    if derive is None or getattr(derive, "func", None) is not features.add_derived_features:
        raise UnsupportedStepError("the pipeline does not start with creditops' derive step")
    pre = pipeline.named_steps["preprocess"]
    if getattr(pre, "sparse_output_", False):
        raise UnsupportedStepError("sparse preprocessing output")
    blocks: list[Op] = []
    for name, transformer, columns in pre.transformers_:
        if transformer == "drop" or (name == "remainder" and not len(columns)):
            continue
        if transformer == "passthrough":
            raise UnsupportedStepError("passthrough remainder")
        blocks.append(_block(transformer, list(columns)))

    def transform(raw: Matrix) -> Matrix:
        return np.hstack([block(raw) for block in blocks])

    return transform


# --- the classifier ---------------------------------------------------------------


@dataclass(frozen=True)
class CompiledModel:
    """The classifier's fast probability and contribution functions on transformed rows."""

    predict: Callable[[Matrix], Matrix]
    contribute: Callable[[Matrix], Matrix] | None
    unit: str
    contribute_path: Callable[[Matrix], Matrix] | None = None
    # how far its probabilities may be from the pipeline's (the load-time probe check):
    # float64 arithmetic agrees to 1e-9; XGBoost's float32 margins over LightGBM trees to 1e-6
    tolerance: float = 1e-9
    # the most rows to score in one call (batch slices), None: no bound of its own;
    # the forest's walk holds rows x trees node arrays, so its bound shrinks as trees grow
    slice_rows: int | None = None

    def contributions(self, x: Matrix, method: str) -> Matrix | None:
        """Per-column contributions by ``method``: "shap" (exact) or "path" (decision path)."""
        if method == "path" and self.contribute_path is not None:
            return self.contribute_path(x)
        return None if self.contribute is None else self.contribute(x)


def compile_model(model: BaseEstimator) -> CompiledModel:
    """Fast probability-of-bad (class 1) and contributions for a fitted classifier.

    Raises:
        UnsupportedStepError: an unknown classifier, or one that is not binary.
    """
    classes = list(getattr(model, "classes_", []))
    if len(classes) != 2:
        raise UnsupportedStepError("not a binary classifier")
    kind = type(model).__name__
    if kind == "LogisticRegression":
        coef = np.asarray(model.coef_[0], dtype=np.float64)
        intercept = float(model.intercept_[0])
        linear = contributions.linear_contributions(coef)
        return CompiledModel(
            predict=lambda x: expit(x @ coef + intercept),
            contribute=linear,
            unit="log-odds",
            contribute_path=linear,  # exact either way
        )
    if kind == "XGBClassifier":
        return _compile_xgboost(model)
    if kind == "LGBMClassifier":
        return _compile_lightgbm(model)
    if kind == "RandomForestClassifier":
        return _compile_forest(model)
    if kind == "ScorecardClassifier":
        # no compiled form (its preprocessing does not compile either: the pipeline scores);
        # its reasons are points below each characteristic's maximum, on the pipeline's frame
        return CompiledModel(
            predict=lambda x: model.predict_proba(x)[:, 1],
            contribute=model.points_lost,
            unit="points",
        )
    raise UnsupportedStepError(f"classifier {kind}")


def _compile_xgboost(model: XGBClassifier) -> CompiledModel:
    if not str(model.objective).startswith("binary:logistic"):
        raise UnsupportedStepError(f"XGBoost objective {model.objective}")
    # a copy predicting on one thread: callers slice big batches over the cores
    # themselves, and an OpenMP team woken for a few rows spins on the cores the
    # service's event loop needs (/predict at c=1: 2.7 ms median with it, against 1.3)
    booster = model.get_booster().copy()
    booster.set_param({"nthread": 1})
    iteration_range = model._get_iteration_range(None)
    missing = model.missing

    def predict(x: Matrix) -> Matrix:
        return booster.inplace_predict(  # type: ignore[no-any-return]
            x,
            iteration_range=iteration_range,
            predict_type="value",
            missing=missing,
            validate_features=False,
        )

    return CompiledModel(
        predict=predict,
        contribute=contributions.xgboost_contributions(
            booster, iteration_range, missing, approximate=False
        ),
        unit="log-odds",
        contribute_path=_xgboost_path(booster, iteration_range, missing),
    )


def _xgboost_path(
    booster: xgboost.Booster, iteration_range: IterationRange, missing: float
) -> Callable[[Matrix], Matrix]:
    """XGBoost's ``approx_contribs``, computed by a vector-leaf booster (a third of the cost)."""
    import json

    from creditops.inference import path_trees

    try:
        model = json.loads(bytes(booster.save_raw("json")))
        trees = model["learner"]["gradient_booster"]["model"]["trees"]
        begin, end = iteration_range
        path = path_trees.path_booster(
            model, [path_trees.node_means(tree) for tree in trees], slice(begin, end or None)
        )
    except path_trees.UnsupportedPathTreeError as exc:
        log.info("XGBoost decision paths by approx_contribs (%s)", exc)
        return contributions.xgboost_contributions(
            booster, iteration_range, missing, approximate=True
        )
    return path_trees.path_contributions(path, missing)


def _compile_lightgbm(model: LGBMClassifier) -> CompiledModel:
    booster = model.booster_
    if model.objective_ != "binary":
        raise UnsupportedStepError(f"LightGBM objective {model.objective_}")
    from creditops.inference import lightgbm_trees, path_trees

    rewritten: lightgbm_trees.RewrittenBooster | None = None
    contribute_path: Callable[[Matrix], Matrix]
    try:
        trees = lightgbm_trees.rewrite(booster)
        path = path_trees.path_booster(trees.model, trees.node_values())
        contribute_path = path_trees.path_contributions(path, missing=np.nan)
        rewritten = trees  # both rewrites hold: XGBoost may predict on the trees
    except (lightgbm_trees.UnsupportedTreeError, path_trees.UnsupportedPathTreeError) as exc:
        # LightGBM's leaf indices against a per-leaf table of path credits
        log.info("LightGBM trees not rewritten for XGBoost's predictor (%s)", exc)
        contribute_path = contributions.lightgbm_path_contributions(booster)
    predict, tolerance = lightgbm_trees.predictor(booster, rewritten)
    return CompiledModel(
        predict=predict,
        tolerance=tolerance,
        contribute=contributions.lightgbm_shap(booster),
        unit="log-odds",
        contribute_path=contribute_path,
    )


def _compile_forest(model: RandomForestClassifier) -> CompiledModel:
    """All trees as flat arrays, walked in lock-step with numpy."""
    positive = list(model.classes_).index(1) if 1 in list(model.classes_) else 1
    lefts, rights, feats, thresholds, values, go_left_missing = [], [], [], [], [], []
    roots, offset, depth = [], 0, 0
    for tree in model.estimators_:
        t = tree.tree_
        n = t.node_count
        leaf = t.children_left == -1
        node = np.arange(offset, offset + n)
        lefts.append(np.where(leaf, node, t.children_left + offset))
        rights.append(np.where(leaf, node, t.children_right + offset))
        feats.append(np.where(leaf, 0, t.feature))
        thresholds.append(np.where(leaf, np.inf, t.threshold))
        value = t.value[:, 0, :]
        values.append(value[:, positive] / value.sum(axis=1))
        mgl = getattr(t, "missing_go_to_left", None)
        go_left_missing.append(
            np.zeros(n, dtype=bool) if mgl is None else np.asarray(mgl, dtype=bool)
        )
        roots.append(offset)
        offset += n
        depth = max(depth, int(t.max_depth))
    left, right = np.concatenate(lefts), np.concatenate(rights)
    feature, threshold = np.concatenate(feats), np.concatenate(thresholds)
    value, nan_left = np.concatenate(values), np.concatenate(go_left_missing)
    root = np.asarray(roots, dtype=np.int64)
    n_trees = len(roots)

    def walk(x: Matrix) -> Iterator[Matrix]:
        # one level at a time: a caller keeps at most two rows x trees node
        # arrays, not one per level (several hundred MiB for a 16,384-row slice)
        x32 = x.astype(np.float32).astype(np.float64)  # sklearn compares float32 inputs
        rows = np.arange(x.shape[0])[:, None]
        nodes = np.broadcast_to(root, (x.shape[0], n_trees))
        yield nodes
        for _ in range(depth):
            f = feature[nodes]
            v = x32[rows, f]
            go_left = (v <= threshold[nodes]) | (np.isnan(v) & nan_left[nodes])
            nodes = np.where(go_left, left[nodes], right[nodes])
            yield nodes

    def predict(x: Matrix) -> Matrix:
        *_, leaves = walk(x)
        return value[leaves].mean(axis=1)  # type: ignore[no-any-return]

    contribute = contributions.forest_path_contributions(walk, value, feature, n_trees)
    return CompiledModel(
        predict=predict,
        contribute=contribute,
        unit="probability",
        contribute_path=contribute,
        # about 8 MiB per rows x trees node array (2**20 cells)
        slice_rows=max(256, FOREST_SLICE_CELLS // n_trees),
    )
