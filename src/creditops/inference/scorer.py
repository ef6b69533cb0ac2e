"""Scoring a registered model fast, with per-prediction reasons.

The registered sklearn ``Pipeline`` stays the source of truth. At load time it
is *compiled*: the fitted preprocessing (median imputation, log, scaling,
missing indicators, one-hot) becomes a few numpy operations on a float matrix,
and the classifier is called through its own fast entry point (XGBoost
``inplace_predict``, the LightGBM booster, ``expit(X @ coef + b)`` for the
logistic regression, a vectorised walk of all trees for the random forest).
Every compiled model is checked against ``pipeline.predict_proba`` on probe rows
drawn from the contract before it is used; a step this module does not know,
or a disagreement above 1e-9, falls back to the pipeline itself.

Input rows arrive as a float matrix whose columns are ``schema.FEATURES``
(categories as their index in the contract, NaN for missing) followed by the
``features.DERIVED`` ratios, filled by :func:`derive_columns`.

Reasons are per-prediction contributions summed per contract field (or derived
ratio), in the model's own units:

* XGBoost, LightGBM: tree SHAP values (``pred_contrib``), in log-odds;
* logistic regression: coefficient x transformed value (standardised numbers,
  0/1 indicators), in log-odds: the reference point is the training mean of
  each numeric column and "absent" for each category;
* random forest: the decision-path decomposition of the averaged tree
  probabilities (Saabas): each split's change in P(bad) is credited to the
  split's feature. It is exact (bias + contributions = probability) and costs
  one tree walk, but unlike SHAP it favours features split near the root.

Tree SHAP costs about trees x leaves x depth^2 operations per row (0.3 ms per
row and core for 300 trees of depth 4). Batch scoring may ask for the boosters'
decision-path contributions instead (``method="path"``): XGBoost's
``approx_contribs``, and for LightGBM a table of each leaf's path deltas
(``internal_value`` of child minus parent, credited to the split's feature)
summed over the leaves a row reaches. Both are additive (bias + contributions =
log-odds), like SHAP, and cost a prediction, not a SHAP pass. The logistic
regression's and the forest's contributions are the same for both methods.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from creditops import features, schema
from creditops.registry import ModelRef

log = logging.getLogger(__name__)

Matrix = np.ndarray
RAW_COLUMNS: tuple[str, ...] = (*schema.FEATURES, *features.DERIVED)
RAW_INDEX = {name: i for i, name in enumerate(RAW_COLUMNS)}
CATEGORY_CODES: dict[str, dict[str, int]] = {
    name: {c: i for i, c in enumerate(spec.categories)}
    for name, spec in schema.FIELDS.items()
    if isinstance(spec, schema.CategoricalField)
}
AGREEMENT_TOLERANCE = 1e-9
# Probe rows the contributions run on at load: enough to show the path works and warm it
# (contributions cost ~0.3 ms a row, three quarters of the check on all the probe rows).
CONTRIBUTION_PROBE_ROWS = 16


class UnsupportedStepError(Exception):
    """A fitted step the compiler does not know: the pipeline is used instead."""


# --- raw matrix -----------------------------------------------------------------


def raw_matrix(rows: Sequence[dict[str, Any]]) -> Matrix:
    """The raw float matrix of contract-valid rows (dicts; absent keys are missing)."""
    raw = np.empty((len(rows), len(RAW_COLUMNS)), dtype=np.float64)
    for j, name in enumerate(schema.FEATURES):
        codes = CATEGORY_CODES.get(name)
        if codes is None:
            raw[:, j] = [row.get(name) for row in rows]
        else:
            raw[:, j] = [codes.get(row.get(name), np.nan) for row in rows]  # type: ignore[arg-type]
    derive_columns(raw)
    return raw


def raw_matrix_from_frame(frame: pd.DataFrame) -> Matrix:
    """The raw float matrix of a contract frame (as :func:`schema.coerce_features` makes)."""
    raw = np.empty((len(frame), len(RAW_COLUMNS)), dtype=np.float64)
    for j, name in enumerate(schema.FEATURES):
        codes = CATEGORY_CODES.get(name)
        if codes is None:
            raw[:, j] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            raw[:, j] = frame[name].map(codes).to_numpy(dtype=np.float64, na_value=np.nan)
    derive_columns(raw)
    return raw


def derive_columns(raw: Matrix) -> None:
    """Fill the ratio columns in place, exactly as ``features.add_derived_features``."""
    c = RAW_INDEX
    income = raw[:, c["Income"]]
    amount = raw[:, c["Amount"]]
    with np.errstate(divide="ignore", invalid="ignore"):
        raw[:, c["loan_to_price"]] = amount / raw[:, c["Price"]]
        raw[:, c["income_free"]] = income - raw[:, c["Expenses"]]
        raw[:, c["installment_to_income"]] = amount / raw[:, c["Time"]] / income
        raw[:, c["debt_to_income"]] = raw[:, c["Debt"]] / income


def frame_from_raw(raw: Matrix) -> pd.DataFrame:
    """The contract frame behind a raw matrix (for the pipeline fallback)."""
    data: dict[str, Any] = {}
    for j, name in enumerate(schema.FEATURES):
        spec = schema.FIELDS[name]
        column = raw[:, j]
        if isinstance(spec, schema.CategoricalField):
            labels = np.asarray([*spec.categories, np.nan], dtype=object)
            codes = np.where(np.isnan(column), len(spec.categories), column).astype(np.int64)
            data[name] = labels[codes]
        else:
            data[name] = column
    return pd.DataFrame(data)


# --- preprocessing compiler -------------------------------------------------------

Op = Callable[[Matrix], Matrix]


def _numeric_op(step: Any) -> Op:
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


def _onehot_block(steps: list[Any], columns: list[str]) -> Op:
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

    def onehot(raw: Matrix) -> Matrix:
        out = np.zeros((raw.shape[0], width), dtype=np.float64)
        rows = np.arange(raw.shape[0])
        for j, lookup in lookups:
            column = raw[:, j]
            code = np.where(np.isnan(column), len(lookup) - 1, column).astype(np.int64)
            target = lookup[code]
            hit = target >= 0
            out[rows[hit], target[hit]] = 1.0
        return out

    return onehot


def _block(transformer: Any, columns: list[str]) -> Op:
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


def compile_preprocessor(pipeline: Any) -> Op:
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


# --- model compiler ---------------------------------------------------------------


@dataclass(frozen=True)
class CompiledModel:
    """The classifier's fast probability and contribution functions on transformed rows."""

    predict: Callable[[Matrix], Matrix]
    contribute: Callable[[Matrix], Matrix] | None
    unit: str
    contribute_path: Callable[[Matrix], Matrix] | None = None

    def contributions(self, x: Matrix, method: str) -> Matrix | None:
        """Per-column contributions by ``method``: "shap" (exact) or "path" (decision path)."""
        if method == "path" and self.contribute_path is not None:
            return self.contribute_path(x)
        return None if self.contribute is None else self.contribute(x)


def compile_model(model: Any) -> CompiledModel:
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

        def linear(x: Matrix) -> Matrix:
            return x * coef  # type: ignore[no-any-return]

        return CompiledModel(
            predict=lambda x: expit(x @ coef + intercept),
            contribute=linear,
            unit="log-odds",
            contribute_path=linear,  # exact either way
        )
    if kind == "XGBClassifier":
        return _compile_xgboost(model)
    if kind == "LGBMClassifier":
        booster = model.booster_
        if model.objective_ != "binary":
            raise UnsupportedStepError(f"LightGBM objective {model.objective_}")
        return CompiledModel(
            predict=lambda x: booster.predict(x, num_threads=1),
            contribute=lambda x: booster.predict(x, pred_contrib=True, num_threads=1)[:, :-1],
            unit="log-odds",
            contribute_path=_lightgbm_path_contributions(booster),
        )
    if kind == "RandomForestClassifier":
        return _compile_forest(model)
    raise UnsupportedStepError(f"classifier {kind}")


def _compile_xgboost(model: Any) -> CompiledModel:
    import xgboost

    booster = model.get_booster()
    if not str(model.objective).startswith("binary:logistic"):
        raise UnsupportedStepError(f"XGBoost objective {model.objective}")
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

    def contribute(x: Matrix) -> Matrix:
        matrix = xgboost.DMatrix(x, missing=missing, nthread=1)
        return booster.predict(  # type: ignore[no-any-return]
            matrix, pred_contribs=True, iteration_range=iteration_range, validate_features=False
        )[:, :-1]

    def contribute_path(x: Matrix) -> Matrix:
        matrix = xgboost.DMatrix(x, missing=missing, nthread=1)
        return booster.predict(  # type: ignore[no-any-return]
            matrix,
            pred_contribs=True,
            approx_contribs=True,
            iteration_range=iteration_range,
            validate_features=False,
        )[:, :-1]

    return CompiledModel(
        predict=predict, contribute=contribute, unit="log-odds", contribute_path=contribute_path
    )


def _lightgbm_path_contributions(booster: Any) -> Callable[[Matrix], Matrix]:
    """Decision-path contributions of a LightGBM booster, from a per-leaf table.

    A row's path contributions in one tree depend only on the leaf it reaches:
    each split on the way credits ``value(child) - value(split)`` to the split's
    feature. The table holds, per tree, the leaves' sums over the (few) features
    the tree splits on; a row's contributions are the sum of its leaves' rows.
    """
    dump = booster.dump_model()
    width = int(dump["max_feature_idx"]) + 1
    tables: list[list[tuple[int, Matrix]]] = []
    for info in dump["tree_info"]:
        root = info["tree_structure"]
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
                value = float(
                    child["leaf_value"] if "leaf_index" in child else child["internal_value"]
                )
                update = dict(credit)
                update[feature] = update.get(feature, 0.0) + value - parent
                stack.append((child, update))
        # one (feature, value per leaf) pair per feature the tree splits on
        columns: list[tuple[int, Matrix]] = []
        for f in sorted({f for credit in leaves.values() for f in credit}):
            values = np.zeros(max(leaves) + 1)
            for leaf, credit in leaves.items():
                values[leaf] = credit.get(f, 0.0)
            columns.append((f, values))
        tables.append(columns)

    def contribute_path(x: Matrix) -> Matrix:
        # trees x rows: each tree's leaf indices contiguous, so the gathers stream
        leaf = np.ascontiguousarray(
            np.asarray(booster.predict(x, pred_leaf=True, num_threads=1), dtype=np.intp).T
        )
        out = np.zeros((width, x.shape[0]))
        for t, columns in enumerate(tables):
            for f, values in columns:
                out[f] += values[leaf[t]]
        return out.T

    return contribute_path


def _compile_forest(model: Any) -> CompiledModel:
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

    def walk(x: Matrix) -> list[Matrix]:
        # sklearn compares float32 inputs with float64 thresholds
        x32 = x.astype(np.float32).astype(np.float64)
        rows = np.arange(x.shape[0])[:, None]
        nodes = np.broadcast_to(root, (x.shape[0], n_trees))
        path = [nodes]
        for _ in range(depth):
            f = feature[nodes]
            v = x32[rows, f]
            go_left = (v <= threshold[nodes]) | (np.isnan(v) & nan_left[nodes])
            nodes = np.where(go_left, left[nodes], right[nodes])
            path.append(nodes)
        return path

    def predict(x: Matrix) -> Matrix:
        return value[walk(x)[-1]].mean(axis=1)  # type: ignore[no-any-return]

    def contribute(x: Matrix) -> Matrix:
        path = walk(x)
        n, d = x.shape
        out = np.zeros(n * d, dtype=np.float64)
        rows = np.repeat(np.arange(n), n_trees)
        for parent, child in itertools.pairwise(path):
            delta = (value[child] - value[parent]).ravel()
            out += np.bincount(rows * d + feature[parent].ravel(), weights=delta, minlength=n * d)
        return out.reshape(n, d) / n_trees

    return CompiledModel(
        predict=predict, contribute=contribute, unit="probability", contribute_path=contribute
    )


# --- probe rows -----------------------------------------------------------------


def probe_rows(n: int, seed: int = 0) -> Matrix:
    """Random contract-valid raw rows (with missing values) to check a compiled model."""
    rng = np.random.default_rng(seed)
    raw = np.empty((n, len(RAW_COLUMNS)), dtype=np.float64)
    for j, (_, spec) in enumerate(schema.FIELDS.items()):
        if isinstance(spec, schema.CategoricalField):
            column = rng.integers(0, len(spec.categories), n).astype(np.float64)
        else:
            low, high = spec.observed
            column = rng.uniform(max(low, spec.minimum), high, n)
            if spec.exclusive_minimum:
                column = np.maximum(column, spec.minimum + 1.0)
            if spec.integer:
                column = np.round(column)
        if spec.nullable:
            column[rng.random(n) < 0.15] = np.nan
        raw[:, j] = column
    derive_columns(raw)
    return raw


# --- the loaded model -------------------------------------------------------------


@dataclass
class Scores:
    """Probabilities of bad and, when asked, contributions per source column."""

    probability: Matrix
    contributions: Matrix | None = None


@dataclass
class LoadedModel:
    """A registered version ready to score: the pipeline and its compiled form."""

    ref: ModelRef
    pipeline: Any
    transform: Op | None
    model: CompiledModel | None
    sources: tuple[str, ...]
    aggregate: Matrix | None
    fast_path: bool
    loaded_at: float = field(default_factory=time.time)
    load_seconds: float = 0.0

    @property
    def contribution_unit(self) -> str:
        return self.model.unit if self.model is not None else "none"

    def score(self, raw: Matrix, *, reasons: bool) -> Scores:
        """Probability of bad for each raw row, and per-source contributions if ``reasons``."""
        x = None
        if self.fast_path:
            assert self.model is not None
            x = self._transformed(raw)
            probability = np.asarray(self.model.predict(x), dtype=np.float64)
        else:
            probability = self.predict_pipeline(frame_from_raw(raw))
        if not reasons:
            return Scores(probability)
        return Scores(probability, self._contributions(raw if x is None else None, x, "shap"))

    def contributions(self, raw: Matrix, method: str = "shap") -> Matrix | None:
        """Per-source contributions of raw rows by ``method`` ("shap" or "path"); None if none."""
        return self._contributions(raw, None, method)

    def _transformed(self, raw: Matrix) -> Matrix:
        """The classifier's input: the compiled transform, else the pipeline's own steps."""
        if self.fast_path:
            assert self.transform is not None
            return self.transform(raw)
        steps = self.pipeline.named_steps
        return steps["preprocess"].transform(  # type: ignore[no-any-return]
            steps["derive"].transform(frame_from_raw(raw))
        )

    def _contributions(self, raw: Matrix | None, x: Matrix | None, method: str) -> Matrix | None:
        if self.model is None or self.aggregate is None:
            return None
        if x is None:
            assert raw is not None
            x = self._transformed(raw)
        out = self.model.contributions(x, method)
        return None if out is None else np.asarray(out) @ self.aggregate

    def predict_pipeline(self, frame: pd.DataFrame) -> Matrix:
        """The registered pipeline's own probability of bad (the source of truth)."""
        return np.asarray(self.pipeline.predict_proba(frame)[:, 1], dtype=np.float64)


def prepare_model(ref: ModelRef, pipeline: Any, *, started: float | None = None) -> LoadedModel:
    """Compile ``pipeline`` and check the compiled form against it on probe rows."""
    started = time.perf_counter() if started is None else started
    transform: Op | None = None
    model: CompiledModel | None = None
    try:
        transform = compile_preprocessor(pipeline)
    except UnsupportedStepError as exc:
        log.warning("model %s v%s: preprocessing not compiled (%s)", ref.name, ref.version, exc)
    try:
        model = compile_model(pipeline.named_steps["model"])
    except UnsupportedStepError as exc:
        log.warning("model %s v%s: classifier not compiled (%s)", ref.name, ref.version, exc)
    sources: tuple[str, ...] = ()
    aggregate = None
    try:
        groups = features.feature_groups(pipeline)
        sources = tuple(dict.fromkeys(groups))
        aggregate = np.zeros((len(groups), len(sources)))
        aggregate[np.arange(len(groups)), [sources.index(g) for g in groups]] = 1.0
    except (KeyError, AttributeError) as exc:
        log.warning("model %s v%s: no reasons (%s)", ref.name, ref.version, exc)
        model = None
    loaded = LoadedModel(ref, pipeline, transform, model, sources, aggregate, fast_path=False)
    if transform is not None and model is not None:
        probe = probe_rows(256)
        expected = loaded.predict_pipeline(frame_from_raw(probe))
        loaded.fast_path = True
        got = loaded.score(probe, reasons=False).probability
        loaded.score(probe[:CONTRIBUTION_PROBE_ROWS], reasons=True)
        gap = float(np.max(np.abs(got - expected)))
        if gap > AGREEMENT_TOLERANCE:
            loaded.fast_path = False
            log.error(
                "model %s v%s: compiled path differs from the pipeline by %.3g on probe rows; "
                "serving the pipeline itself",
                ref.name,
                ref.version,
                gap,
            )
    loaded.load_seconds = time.perf_counter() - started
    log.info(
        "model %s v%s (%s, threshold %.4f) ready in %.2f s: %s path, reasons in %s",
        ref.name,
        ref.version,
        ref.family,
        ref.threshold,
        loaded.load_seconds,
        "compiled" if loaded.fast_path else "pipeline",
        loaded.contribution_unit,
    )
    return loaded
