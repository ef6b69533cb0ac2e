"""The model search itself: stratified K-fold CV, samplers and one family's Optuna search.

Pure of MLflow: a search returns :class:`TrialResult` values and hands each to
an ``on_trial`` callback as it finishes; whoever runs it decides what to log
(:mod:`creditops.training.tracking`) or to share
(:mod:`creditops.training.shared_study`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from creditops import evaluate
from creditops.config import TrainConfig
from creditops.errors import TrainingError
from creditops.features import DEFAULT_EXCLUDED, build_pipeline
from creditops.search_space import ParamSpace

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler
    from optuna.study import Study
    from optuna.trial import Trial
    from sklearn.pipeline import Pipeline

ParamValue = str | int | float | bool | None
"""One hyperparameter value: what a search space or grid can propose."""

TrialHook = Callable[["Trial", float, np.ndarray], None]
"""Called with a trial, its mean CV ROC AUC and its out-of-fold predictions, before it completes."""


@dataclass
class TrialResult:
    """One evaluated hyperparameter set."""

    family: str
    number: int
    params: dict[str, ParamValue]
    cv_auc: float
    cv_auc_sd: float
    oof: np.ndarray = field(repr=False)


def weight_params(pipeline: Pipeline, weights: np.ndarray | None) -> dict[str, np.ndarray]:
    """The ``fit`` keyword that hands per-row sample weights to the pipeline's estimator.

    Every family's estimator (logistic regression, random forest, XGBoost,
    LightGBM) takes ``sample_weight``; the preprocessing steps do not need it.

    Returns:
        ``{}`` without weights, so that the fit is exactly the unweighted one.
    """
    if weights is None:
        return {}
    last_step = pipeline.steps[-1][0]
    return {f"{last_step}__sample_weight": weights}


def check_weights(weights: np.ndarray | None, rows: int) -> np.ndarray | None:
    """``weights`` as float64 once checked against the training rows.

    Raises:
        TrainingError: not one finite, non-negative weight per row, or all zero.
    """
    if weights is None:
        return None
    array = np.asarray(weights, dtype=np.float64)
    if array.shape != (rows,):
        raise TrainingError(
            f"sample weights: {array.shape[0] if array.ndim else 0} weight(s) for {rows} "
            "training rows: give one per row, in the split's order"
        )
    finite = np.isfinite(array)
    negative = int((array[finite] < 0).sum())
    if not finite.all() or negative or not array.any():
        raise TrainingError(
            f"sample weights must be finite and >= 0, not all zero: {int((~finite).sum())} "
            f"non-finite, {negative} negative, {int((array == 0).sum())} zero of {rows}"
        )
    return array


def describe_weights(weights: np.ndarray | None) -> str:
    """How the training rows were weighted, as logged: ``none`` or rows per weight as JSON."""
    if weights is None:
        return "none"
    import json

    values, counts = np.unique(np.asarray(weights, dtype=np.float64), return_counts=True)
    if len(values) > 10:  # a continuous weighting (a half-life, say): its range
        return json.dumps({"rows": len(weights), "min": float(values[0]), "max": float(values[-1])})
    return json.dumps({f"{v:g}": int(c) for v, c in zip(values, counts, strict=True)})


def cross_validate(
    family: str,
    params: dict[str, ParamValue],
    X: pd.DataFrame,
    y: np.ndarray,
    folds: int,
    seed: int,
    n_jobs: int = 1,
    monotone: bool = True,
    *,
    weights: np.ndarray | None = None,
    exclude: Sequence[str] = DEFAULT_EXCLUDED,
) -> tuple[float, float, np.ndarray]:
    """Mean and sd of ROC AUC over stratified K-fold, and the out-of-fold predictions.

    Args:
        weights: one sample weight per row of ``X``; each fold is fitted with
            those of its training rows. Folds are scored unweighted either way.

    Raises:
        TrainingError: the weights do not fit the rows (:func:`check_weights`).
    """
    from joblib import Parallel, delayed
    from threadpoolctl import threadpool_limits

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pipeline = build_pipeline(family, params, seed, monotone=monotone, exclude=exclude)
    weights = check_weights(weights, len(y))

    def fit_fold(train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fold_weights = None if weights is None else weights[train_idx]
        model = clone(pipeline)
        model.fit(X.iloc[train_idx], y[train_idx], **weight_params(model, fold_weights))
        return test_idx, model.predict_proba(X.iloc[test_idx])[:, 1]

    # One thread per fold fit: the estimators get n_jobs=1, and BLAS/OpenMP are capped too.
    # Uncapped, OpenBLAS runs each small product of the logistic regression on a thread per
    # core and spins them: 6x the CPU of one thread for the same, bit-identical, result, and
    # with n_jobs fold threads or several search processes the spinning threads fight.
    with threadpool_limits(limits=1):
        results = Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(fit_fold)(tr, te) for tr, te in splitter.split(X, y)
        )
    oof = np.empty(len(y), dtype=np.float64)
    aucs = []
    for test_idx, proba in results:
        oof[test_idx] = proba
        aucs.append(evaluate.roc_auc(y[test_idx], proba))
    return float(np.mean(aucs)), float(np.std(aucs)), oof


def oof_auc(
    X: pd.DataFrame, y: np.ndarray, oof: np.ndarray, folds: int, seed: int
) -> tuple[float, float]:
    """Mean and sd of ROC AUC of out-of-fold predictions over ``cross_validate``'s folds.

    For the predictions ``cross_validate`` returned, the same figures to the bit.
    """
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    aucs = [evaluate.roc_auc(y[test_idx], oof[test_idx]) for _, test_idx in splitter.split(X, y)]
    return float(np.mean(aucs)), float(np.std(aucs))


def suggest(trial: Trial, name: str, space: ParamSpace) -> ParamValue:
    """Ask an Optuna trial for one parameter from its configured range."""
    if space.type == "categorical":
        assert space.choices is not None  # checked by ParamSpace
        return trial.suggest_categorical(name, space.choices)
    assert space.low is not None and space.high is not None  # checked by ParamSpace
    if space.type == "int":
        return trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
    return trial.suggest_float(name, space.low, space.high, log=space.log)


def make_sampler(config: TrainConfig, family: str) -> tuple[BaseSampler, int]:
    """The configured sampler of one family and its trial budget.

    Raises:
        TrainingError: a grid search with an empty grid.
    """
    import optuna

    if config.search == "grid":
        grid = config.grid_for(family)
        size = int(np.prod([len(v) for v in grid.values()])) if grid else 0
        if size == 0:
            raise TrainingError(f"[train.grid.{family}] is empty: nothing to search")
        return optuna.samplers.GridSampler(grid, seed=config.seed), size
    sampler = optuna.samplers.TPESampler(
        seed=config.seed, n_startup_trials=min(5, config.trials_for(family))
    )
    return sampler, config.trials_for(family)


def _trial_params(trial: Trial, config: TrainConfig, family: str) -> dict[str, ParamValue]:
    if config.search == "optuna":
        space = config.space_for(family)
        return {name: suggest(trial, name, spec) for name, spec in space.items()}
    return {
        name: trial.suggest_categorical(name, values)
        for name, values in config.grid_for(family).items()
    }


def _score_trial(
    trial: Trial,
    family: str,
    config: TrainConfig,
    X: pd.DataFrame,
    y: np.ndarray,
    weights: np.ndarray | None,
    exclude: Sequence[str] = DEFAULT_EXCLUDED,
) -> TrialResult:
    """The trial's parameters, cross-validated; its CV AUC sd kept on the trial."""
    params = _trial_params(trial, config, family)
    try:
        mean, sd, oof = cross_validate(
            family,
            params,
            X,
            y,
            config.cv_folds,
            config.seed,
            config.n_jobs,
            config.monotone,
            weights=weights,
            exclude=exclude,
        )
    except (ValueError, TypeError) as exc:
        raise TrainingError(f"{family} trial {trial.number} with {params} failed: {exc}") from exc
    trial.set_user_attr("cv_auc_sd", sd)
    return TrialResult(family, trial.number, params, mean, sd, oof)


def search_family(
    family: str,
    config: TrainConfig,
    X: pd.DataFrame,
    y: np.ndarray,
    on_trial: Callable[[TrialResult], None] | None = None,
    *,
    study: Study | None = None,
    budget: int | None = None,
    on_scored: TrialHook | None = None,
    weights: np.ndarray | None = None,
    exclude: Sequence[str] = DEFAULT_EXCLUDED,
) -> list[TrialResult]:
    """Run the configured search for one family; every trial is returned (best last is not implied).

    Args:
        on_trial: called with each finished trial's result.
        study: a study shared with other processes (see
            :mod:`creditops.training.shared_study`), with its whole ``budget``:
            this process then runs trials until the study's trial numbers
            reach the budget, and returns only its own.
        on_scored: called with each trial once scored, before it completes
            (a shared study stores the best trials' out-of-fold predictions).
        weights: one sample weight per row of ``X`` for every fit
            (:func:`cross_validate`); ``None``: unweighted.
        exclude: the contract columns the model may not see (``[fairness]``).

    Raises:
        TrainingError: a trial failed, or none finished within the budget.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shared = study is not None
    if study is None:
        sampler, budget = make_sampler(config, family)
        study = optuna.create_study(
            direction="maximize", sampler=sampler, study_name=f"creditops-{family}"
        )
    assert budget is not None
    results: list[TrialResult] = []

    def objective(trial: Trial) -> float:
        if shared and trial.number >= budget:
            # another process took the last trial of the budget meanwhile
            trial.study.stop()
            raise optuna.TrialPruned(f"the budget of {budget} trials is used")
        result = _score_trial(trial, family, config, X, y, weights, exclude)
        if on_scored is not None:
            on_scored(trial, result.cv_auc, result.oof)
        results.append(result)
        if on_trial is not None:
            on_trial(result)
        return result.cv_auc

    timeout = config.timeout_seconds_per_family or None
    study.optimize(objective, n_trials=budget, timeout=timeout, catch=())
    if not results and not shared:  # in a shared study the others may have run them all
        raise TrainingError(f"{family}: no trial finished within the budget")
    return results
