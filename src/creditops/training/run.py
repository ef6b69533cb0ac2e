"""The tracked model search: Optuna (or the original grid) per family, CV on the training split.

One ``creditops train`` is one MLflow parent run. Inside it:

* one nested run per trial (its parameters and mean/sd ROC AUC over
  stratified K-fold CV on the training split);
* per family, the best trial is refit on the whole training split and logged
  as a *finalist*: the fitted pipeline (cloudpickle, round-trip checked),
  its signature and input example, test metrics, fairness metrics by Age band
  and Marital status, figures and a model card;
* every finalist is registered as a model version; the one with the best CV
  ROC AUC gets the ``challenger`` alias.

The test split only reports on finalists; it never chooses among trials or
between families.
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold

from creditops import evaluate, plots, registry, schema
from creditops.config import ParamSpace, Settings, TrainConfig
from creditops.data import Dataset, Split, load_dataset, split_dataset
from creditops.errors import TrackingError, TrainingError
from creditops.features import build_pipeline

if TYPE_CHECKING:
    from creditops.training.shared_study import LocalWorkers

log = logging.getLogger(__name__)


@dataclass
class TrialResult:
    """One evaluated hyperparameter set."""

    family: str
    number: int
    params: dict[str, Any]
    cv_auc: float
    cv_auc_sd: float
    oof: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class Finalist:
    """The best trial of one family, refit, logged and registered."""

    family: str
    params: dict[str, Any]
    cv_auc: float
    cv_auc_sd: float
    threshold: float
    test_metrics: dict[str, float]
    run_id: str
    model_uri: str
    version: int
    trials: int


@dataclass(frozen=True)
class TrainingReport:
    """What one training run produced."""

    run_id: str
    experiment: str
    data_hash: str
    train_rows: int
    test_rows: int
    finalists: list[Finalist]
    challenger_version: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the search (no MLflow in here) ------------------------------------------


def cross_validate(
    family: str,
    params: dict[str, Any],
    X: pd.DataFrame,
    y: np.ndarray,
    folds: int,
    seed: int,
    n_jobs: int = 1,
    monotone: bool = True,
) -> tuple[float, float, np.ndarray]:
    """Mean and sd of ROC AUC over stratified K-fold, and the out-of-fold predictions."""
    from joblib import Parallel, delayed
    from threadpoolctl import threadpool_limits

    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    pipeline = build_pipeline(family, params, seed, monotone=monotone)

    def fit_fold(train_idx: np.ndarray, test_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        model = clone(pipeline).fit(X.iloc[train_idx], y[train_idx])
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


def suggest(trial: Any, name: str, space: ParamSpace) -> Any:
    """Ask an Optuna trial for one parameter from its configured range."""
    if space.type == "categorical":
        return trial.suggest_categorical(name, space.choices)
    assert space.low is not None and space.high is not None  # checked by ParamSpace
    if space.type == "int":
        return trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
    return trial.suggest_float(name, space.low, space.high, log=space.log)


def _sampler(config: TrainConfig, family: str) -> tuple[Any, int]:
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


def search_family(
    family: str,
    config: TrainConfig,
    X: pd.DataFrame,
    y: np.ndarray,
    on_trial: Any = None,
    *,
    study: Any = None,
    budget: int | None = None,
) -> list[TrialResult]:
    """Run the configured search for one family; every trial is returned (best last is not implied).

    ``study`` (with its whole ``budget``) is a study shared with other processes
    (see ``creditops.distributed``): this process then runs trials until the
    study's trial numbers reach the budget, and returns only its own.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    shared = study is not None
    if study is None:
        sampler, budget = _sampler(config, family)
        study = optuna.create_study(
            direction="maximize", sampler=sampler, study_name=f"creditops-{family}"
        )
    assert budget is not None
    results: list[TrialResult] = []
    space = config.space_for(family) if config.search == "optuna" else None

    def objective(trial: Any) -> float:
        if shared and trial.number >= budget:
            # another process took the last trial of the budget meanwhile
            trial.study.stop()
            raise optuna.TrialPruned(f"the budget of {budget} trials is used")
        if space is not None:
            params = {name: suggest(trial, name, spec) for name, spec in space.items()}
        else:
            params = {
                name: trial.suggest_categorical(name, values)
                for name, values in config.grid_for(family).items()
            }
        try:
            mean, sd, oof = cross_validate(
                family, params, X, y, config.cv_folds, config.seed, config.n_jobs, config.monotone
            )
        except (ValueError, TypeError) as exc:
            raise TrainingError(
                f"{family} trial {trial.number} with {params} failed: {exc}"
            ) from exc
        trial.set_user_attr("cv_auc_sd", sd)
        if shared:
            from creditops.training.shared_study import keep_oof

            keep_oof(trial, mean, oof)
        result = TrialResult(family, trial.number, params, mean, sd, oof)
        results.append(result)
        if on_trial is not None:
            on_trial(result)
        return mean

    timeout = config.timeout_seconds_per_family or None
    study.optimize(objective, n_trials=budget, timeout=timeout, catch=())
    if not results and not shared:  # in a shared study the others may have run them all
        raise TrainingError(f"{family}: no trial finished within the budget")
    return results


# --- MLflow logging -----------------------------------------------------------


def _code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode == 0:
            return out.stdout.strip()
    except OSError:
        pass
    from creditops import __version__

    return __version__


def _pip_requirements(family: str) -> list[str]:
    from importlib.metadata import version

    packages = ["mlflow", "scikit-learn", "pandas", "numpy", "cloudpickle", "scipy"]
    if family == "xgboost":
        packages.append("xgboost")
    if family == "lightgbm":
        packages.append("lightgbm")
    return [f"{name}=={version(name)}" for name in packages]


def model_signature() -> Any:
    """The input/output schema registered with every model: the contract's columns."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema, TensorSpec

    columns: list[ColSpec | TensorSpec] = []
    for name, spec in schema.FIELDS.items():
        kind = "string" if isinstance(spec, schema.CategoricalField) else "double"
        columns.append(ColSpec(kind, name, required=not spec.nullable))
    outputs = Schema([TensorSpec(np.dtype("float64"), (-1, 2))])
    return ModelSignature(inputs=Schema(columns), outputs=outputs)


def _log_trial(client: Any, experiment_id: str, parent_id: str, result: TrialResult) -> None:
    from mlflow.entities import Metric, Param, RunTag

    run = client.create_run(
        experiment_id,
        run_name=f"{result.family}-{result.number}",
        tags={"mlflow.parentRunId": parent_id, "creditops.stage": "trial", "family": result.family},
    )
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[
            Metric("cv_roc_auc", result.cv_auc, now, 0),
            Metric("cv_roc_auc_sd", result.cv_auc_sd, now, 0),
        ],
        params=[Param(k, str(v)) for k, v in result.params.items()],
        tags=[RunTag("trial", str(result.number))],
    )
    client.set_terminated(run.info.run_id)


def fairness_metrics(
    X: pd.DataFrame, y: np.ndarray, proba: np.ndarray, threshold: float
) -> dict[str, float]:
    """Approval rate, TPR, FPR by Age band and by Marital status, with min/max ratios."""
    out = evaluate.group_metrics(y, proba, threshold, evaluate.age_band(X["Age"]), label="age")
    out.update(evaluate.group_metrics(y, proba, threshold, X["Marital"], label="marital"))
    return out


def permutation_importance(
    pipeline: Any, X: pd.DataFrame, y: np.ndarray, seed: int
) -> dict[str, float]:
    """Mean drop in test ROC AUC when each contract column is shuffled (3 repeats)."""
    rng = np.random.default_rng(seed)
    base = evaluate.roc_auc(y, pipeline.predict_proba(X)[:, 1])
    out = {}
    for column in schema.FEATURES:
        drops = []
        for _ in range(3):
            shuffled = X.copy()
            shuffled[column] = rng.permutation(shuffled[column].to_numpy())
            drops.append(base - evaluate.roc_auc(y, pipeline.predict_proba(shuffled)[:, 1]))
        out[column] = float(np.mean(drops))
    return out


def model_card(
    family: str,
    params: dict[str, Any],
    cv: tuple[float, float],
    metrics: dict[str, float],
    fairness: dict[str, float],
    importance: dict[str, float],
    data_hash: str,
    train_rows: int,
    test_rows: int,
) -> str:
    """A short Markdown model card for one finalist."""
    top = sorted(importance.items(), key=lambda kv: -kv[1])[:5]
    lines = [
        f"# creditops model card: {family}",
        "",
        "Predicts the probability that a credit applicant turns out **bad** (defaults);",
        f"applicants at or above the threshold **{metrics['threshold']:.4f}** are declined.",
        "",
        "## Data",
        f"- training rows: {train_rows}, test rows: {test_rows} (stratified split)",
        f"- data hash: `{data_hash}`",
        "",
        "## Hyperparameters",
        *[f"- `{k}` = {v}" for k, v in params.items()],
        "",
        "## Performance",
        f"- CV ROC AUC on the training split: {cv[0]:.4f} ± {cv[1]:.4f}",
        "- held-out test split:",
        *[
            f"  - {k}: {metrics[k]:.4f}"
            for k in (
                "roc_auc",
                "gini",
                "ks",
                "pr_auc",
                "brier",
                "log_loss",
                "accuracy",
                "precision_bad",
                "recall_bad",
                "f1_bad",
                "precision_good",
                "recall_good",
                "f1_good",
            )
        ],
        "",
        "## Most important features (permutation, drop in test ROC AUC)",
        *[f"- {k}: {v:.4f}" for k, v in top],
        "",
        "## Fairness (test split, at the threshold)",
        f"- approval-rate ratio lowest/highest, Age bands: {fairness.get('fair_age_approval_ratio', float('nan')):.3f}",
        f"- approval-rate ratio lowest/highest, Marital: {fairness.get('fair_marital_approval_ratio', float('nan')):.3f}",
        "- per-group approval rate, TPR and FPR are logged as `fair_*` metrics.",
        "",
        "## Limits",
        "- Trained on 4,454 applicants of one lender; not validated on other populations.",
        "- Marital status and Age are model inputs: review the fairness metrics before use.",
        "",
    ]
    return "\n".join(lines)


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a library logger's warnings for a block (MLflow's pickle notice, chosen on purpose)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextmanager
def _tracking_failures(uri: str, context: str) -> Iterator[None]:
    """Turn the tracking store failing mid-run (a server gone, say) into one TrackingError.

    Nothing is half-registered: a version is registered only after its model is
    logged and loaded back, and the ``challenger`` alias moves only at the end.
    """
    import requests
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, requests.RequestException, ConnectionError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        cause = lines[0][:300] if lines else type(exc).__name__
        raise TrackingError(
            f"`{context}` stopped: MLflow tracking store {uri} failed: {cause}. "
            "Versions registered before the failure are complete; no alias was moved"
        ) from exc


def _finite(values: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if v is not None and np.isfinite(v)}


def log_finalist(
    best: TrialResult,
    split: Split,
    settings: Settings,
    data_hash: str,
    train_run_id: str,
    n_trials: int,
    client: Any,
) -> Finalist:
    """Refit the best trial on the whole training split, log it with its evidence, register it.

    The version is registered only after the model and all its artifacts are
    logged and the logged model, loaded back by URI, predicts exactly as the
    in-memory one did; nothing is half-registered.
    """
    import mlflow
    import mlflow.sklearn

    config = settings.train
    threshold = evaluate.choose_threshold(split.y_train, best.oof, config.threshold)
    # n_jobs=1: the served model scores one applicant at a time; threads only cost there.
    pipeline = build_pipeline(best.family, best.params, config.seed, monotone=config.monotone).fit(
        split.X_train, split.y_train
    )
    proba = pipeline.predict_proba(split.X_test)[:, 1]
    metrics = evaluate.binary_metrics(split.y_test, proba, threshold)
    fairness = fairness_metrics(split.X_test, split.y_test, proba, threshold)
    importance = permutation_importance(pipeline, split.X_test, split.y_test, config.seed)
    with mlflow.start_run(run_name=f"finalist-{best.family}", nested=True) as run:
        mlflow.set_tags(
            {"creditops.stage": "finalist", "family": best.family, "data_hash": data_hash}
        )
        mlflow.log_params(
            {**best.params, "family": best.family, "threshold_policy": config.threshold.policy}
        )
        mlflow.log_metrics(
            _finite(
                {
                    "cv_roc_auc": best.cv_auc,
                    "cv_roc_auc_sd": best.cv_auc_sd,
                    **{f"test_{k}": v for k, v in metrics.items()},
                    **fairness,
                }
            )
        )
        mlflow.log_dict({k: float(v) for k, v in importance.items()}, "feature_importance.json")
        card = model_card(
            best.family,
            best.params,
            (best.cv_auc, best.cv_auc_sd),
            metrics,
            fairness,
            importance,
            data_hash,
            len(split.train),
            len(split.test),
        )
        mlflow.log_text(card, "model_card.md")
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            title = f"{best.family} (test split)"
            plots.roc_curve_png(split.y_test, proba, folder / "roc_curve.png", title)
            plots.ks_curve_png(split.y_test, proba, folder / "ks_curve.png", title)
            plots.calibration_png(split.y_test, proba, folder / "calibration.png", title)
            plots.confusion_png(
                split.y_test, proba, threshold, folder / "confusion_matrix.png", title
            )
            plots.importance_png(importance, folder / "feature_importance.png", title)
            mlflow.log_artifacts(tmp, "figures")
        with _quiet("mlflow.sklearn"):
            info = mlflow.sklearn.log_model(
                pipeline,
                name="model",
                # cloudpickle, not MLflow 3's skops default: skops refuses the
                # FunctionTransformer and booster types this pipeline holds.
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                signature=model_signature(),
                input_example=split.X_train.head(3),
                pip_requirements=_pip_requirements(best.family),
                pyfunc_predict_fn="predict_proba",
            )
        loaded = mlflow.sklearn.load_model(info.model_uri)
        again = loaded.predict_proba(split.X_test)[:, 1]
        if not np.allclose(again, proba, rtol=0, atol=1e-12):
            raise TrainingError(
                f"{best.family}: the logged model does not predict as the fitted one"
            )
        run_id = run.info.run_id
    tags = {
        "family": best.family,
        "threshold": repr(threshold),
        "data_hash": data_hash,
        "train_run_id": train_run_id,
        "code_version": _code_version(),
        "cv_roc_auc": f"{best.cv_auc:.6f}",
        **{f"test_{k}": f"{v:.6f}" for k, v in metrics.items() if np.isfinite(v)},
    }
    ref = registry.register_version(
        client, settings.mlflow.registered_model, info.model_uri, run_id, tags
    )
    log.info(
        "finalist %s: CV AUC %.4f ± %.4f, test AUC %.4f, KS %.4f, F1(bad) %.4f at threshold %.4f -> version %d",
        best.family,
        best.cv_auc,
        best.cv_auc_sd,
        metrics["roc_auc"],
        metrics["ks"],
        metrics["f1_bad"],
        threshold,
        ref.version,
    )
    return Finalist(
        best.family,
        best.params,
        best.cv_auc,
        best.cv_auc_sd,
        threshold,
        metrics,
        run_id,
        info.model_uri,
        ref.version,
        n_trials,
    )


def run_training(
    settings: Settings,
    *,
    dataset: Dataset | None = None,
    split: Split | None = None,
    context: str = "train",
    show_progress: bool = True,
    study: str | None = None,
) -> TrainingReport:
    """Search, refit, log and register every configured family; set ``challenger``.

    With ``[train] workers`` > 1 or a ``study_storage``, the search is shared
    between processes (``creditops.distributed``): this one coordinates, searches
    too, and registers the finalists; ``study`` names the shared study.

    Args:
        settings: the whole config.
        dataset: the data to use; loaded from ``[data]`` when omitted.
        split: a ready train/test split (the retraining loop passes its own);
            otherwise a stratified split of ``dataset`` fixed by ``[data] seed``.
        context: recorded as the run name and a tag (``train``, ``retrain``).
        show_progress: draw a progress bar on the console.

    Raises:
        TrackingError: MLflow is unreachable.
        TrainingError / DataError: the search or the data failed.
    """
    started = time.perf_counter()
    # data first: a bad dataset must not leave a half-made tracking store behind
    if split is None:
        dataset = dataset if dataset is not None else load_dataset(settings.data)
        split = split_dataset(dataset, settings.data.test_size, settings.data.seed)
        source = dataset.source
    else:
        source = "provided split"
    local = None
    if settings.train.workers > 1 or settings.train.study_storage:
        from creditops.training import shared_study as distributed

        # started first: their imports overlap this process's MLflow set-up below
        local = distributed.start_local_workers(settings, settings.train.workers - 1)
    try:
        return _train(settings, split, source, context, show_progress, study, local, started)
    finally:
        if local is not None:
            local.stop()  # a no-op once released: only a failed set-up leaves them waiting


def _train(
    settings: Settings,
    split: Split,
    source: str,
    context: str,
    show_progress: bool,
    study: str | None,
    local: LocalWorkers | None,
    started: float,
) -> TrainingReport:
    """``run_training`` once the data is split (and local search workers started, if any)."""
    import mlflow

    client = registry.connect(settings.mlflow)
    from creditops.data import frame_hash

    data_hash = frame_hash(split.train)
    config = settings.train
    budgets = {f: _sampler(config, f)[1] for f in config.families}
    experiment_id = client.experiment_id
    finalists: list[Finalist] = []
    with (
        _tracking_failures(settings.mlflow.tracking_uri, context),
        client.fluent(),
        mlflow.start_run(run_name=context, experiment_id=experiment_id) as parent,
    ):
        parent_id = parent.info.run_id
        mlflow.set_tags(
            {
                "creditops.stage": "train",
                "creditops.context": context,
                "data_hash": data_hash,
                "data_source": source,
                "code_version": _code_version(),
                "python": platform.python_version(),
            }
        )
        mlflow.log_params(
            {
                "families": ",".join(config.families),
                "search": config.search,
                "cv_folds": config.cv_folds,
                "seed": config.seed,
                "trials": json.dumps(budgets),
                "threshold_policy": config.threshold.policy,
                "train_rows": len(split.train),
                "test_rows": len(split.test),
            }
        )
        mlflow.log_dict(settings.model_dump(mode="json"), "config.json")
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "data").mkdir()
            split.train.to_csv(Path(tmp) / registry.TRAIN_DATA_ARTIFACT, index=False)
            split.test.to_csv(Path(tmp) / registry.TEST_DATA_ARTIFACT, index=False)
            mlflow.log_artifacts(str(Path(tmp) / "data"), "data")
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best AUC {task.fields[best]}"),
            TimeElapsedColumn(),
            disable=not show_progress,
            transient=False,
        )
        shared = None
        if local is not None:
            from creditops.training import shared_study as distributed

            shared = distributed.new_study(settings, study)
            distributed.create_studies(settings, shared, data_hash, parent_id)
            mlflow.set_tag("optuna_study", shared.name)
            log.info(
                "distributed search: study %s in %s, %d local worker(s); join from another "
                "machine with `creditops train --join %s`",
                shared.name,
                shared.storage_url,
                config.workers,
                shared.name,
            )
            local.release(shared, split)
            try:
                distributed.run_worker(settings, shared, 0, split)
            finally:
                distributed.wait_for_study(shared, list(config.families), local)
        with progress:
            for family in config.families:
                task = progress.add_task(family, total=budgets[family], best="-")
                best_so_far = [float("-inf")]

                def on_trial(
                    result: TrialResult, task: Any = task, best_so_far: list[float] = best_so_far
                ) -> None:
                    _log_trial(client, experiment_id, parent_id, result)
                    best_so_far[0] = max(best_so_far[0], result.cv_auc)
                    progress.update(task, advance=1, best=f"{best_so_far[0]:.4f}")

                if shared is not None:
                    trials, _ = distributed.best_trial(settings, shared, family, split)
                    progress.update(task, completed=len(trials), best=f"{trials[0].cv_auc:.4f}")
                else:
                    trials = search_family(family, config, split.X_train, split.y_train, on_trial)
                best = max(trials, key=lambda t: t.cv_auc)
                log.info(
                    "%s: %d trial(s), best CV ROC AUC %.4f ± %.4f with %s",
                    family,
                    len(trials),
                    best.cv_auc,
                    best.cv_auc_sd,
                    best.params,
                )
                finalists.append(
                    log_finalist(best, split, settings, data_hash, parent_id, len(trials), client)
                )
        if shared is not None:
            distributed.close_storages()
        winner = max(finalists, key=lambda f: f.cv_auc)
        registry.set_alias(
            client, settings.mlflow.registered_model, registry.CHALLENGER, winner.version
        )
        mlflow.set_tag("challenger_version", str(winner.version))
        mlflow.log_metric("best_cv_roc_auc", winner.cv_auc)
        seconds = time.perf_counter() - started
        mlflow.log_metric("training_seconds", seconds)
    log.info(
        "training run %s: challenger is %s version %d (CV AUC %.4f), %.1f s",
        parent_id,
        winner.family,
        winner.version,
        winner.cv_auc,
        seconds,
    )
    return TrainingReport(
        parent_id,
        settings.mlflow.experiment,
        data_hash,
        len(split.train),
        len(split.test),
        finalists,
        winner.version,
        seconds,
    )
