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

The search itself is :mod:`~creditops.training.search` (no MLflow), what is
logged is :mod:`~creditops.training.tracking`; a search shared between
processes (:mod:`~creditops.training.shared_study`) only changes where each
family's trials come from (:func:`_family_trials`): the rest of the run is the
same.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from creditops.aliases import CHALLENGER
from creditops.config import DataConfig
from creditops.data import Dataset, Split, frame_hash, load_dataset, split_dataset
from creditops.secrets import redact_url
from creditops.training.search import TrialResult, check_weights, make_sampler, search_family
from creditops.training.sections import TrainingSections
from creditops.training.tracking import (
    Finalist,
    log_finalist,
    log_training_inputs,
    log_trial,
    tracking_failures,
    training_run_tags,
)

if TYPE_CHECKING:
    from creditops.tracking import TrackingClient
    from creditops.training.local_workers import LocalWorkers
    from creditops.training.shared_study import SharedStudy

log = logging.getLogger(__name__)

FamilyTrials = Callable[[str, Callable[[TrialResult], None]], list[TrialResult]]
"""A family's trials, each also handed to the callback (the progress bar) as it comes."""


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

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class _TrainingRun:
    """One training run under way: its store, config, data and MLflow parent run."""

    client: TrackingClient
    sections: TrainingSections
    split: Split
    data_hash: str
    parent_id: str


def run_training(
    sections: TrainingSections,
    *,
    dataset: Dataset | None = None,
    split: Split | None = None,
    context: str = "train",
    show_progress: bool = True,
    study: str | None = None,
) -> TrainingReport:
    """Search, refit, log and register every configured family; set ``challenger``.

    With ``[train] workers`` > 1 or a ``study_storage``, the search is shared
    between processes (:mod:`creditops.training.shared_study`): this one
    coordinates, searches too, and registers the finalists; ``study`` names
    the shared study.

    Args:
        sections: the config sections training reads
            (``TrainingSections.from_settings(settings)``).
        dataset: the data to use; loaded from ``[data]`` when omitted.
        split: a ready train/test split (the retraining loop passes its own,
            with sample weights); otherwise a stratified split of ``dataset``
            fixed by ``[data] seed``, unweighted.
        context: recorded as the run name and a tag (``train``, ``retrain``).
        show_progress: draw a progress bar on the console.

    Raises:
        TrackingError: MLflow is unreachable.
        TrainingError / DataError: the search or the data failed.
    """
    started = time.perf_counter()
    # data first: a bad dataset must not leave a half-made tracking store behind
    split, source = _training_split(sections.data, dataset, split)
    check_weights(split.weights, len(split.train))
    local = None
    if sections.train.workers > 1 or sections.train.study_storage:
        from creditops.training.local_workers import start_local_workers

        # started first: their imports overlap this process's MLflow set-up below
        local = start_local_workers(sections, sections.train.workers - 1)
    try:
        return _train(sections, split, source, context, show_progress, study, local, started)
    finally:
        if local is not None:
            local.stop()  # a no-op once released: only a failed set-up leaves them waiting


def _training_split(
    data: DataConfig, dataset: Dataset | None, split: Split | None
) -> tuple[Split, str]:
    """The split to train on and where its rows came from."""
    if split is not None:
        return split, "provided split"
    dataset = dataset if dataset is not None else load_dataset(data)
    return split_dataset(dataset, data.test_size, data.seed), dataset.source


def _train(
    sections: TrainingSections,
    split: Split,
    source: str,
    context: str,
    show_progress: bool,
    study: str | None,
    local: LocalWorkers | None,
    started: float,
) -> TrainingReport:
    """``run_training`` once the data is split (and local search workers started, if any)."""
    from creditops.tracking import connect

    client = connect(sections.mlflow)
    data_hash = frame_hash(split.train)
    config = sections.train
    budgets: dict[str, int] = {f: make_sampler(config, f)[1] for f in config.families}
    tags = training_run_tags(context, data_hash, source)
    with (
        tracking_failures(sections.mlflow.tracking_uri, context),
        client.run(context, tags=tags) as parent_id,
    ):
        log_training_inputs(client, parent_id, config, split, budgets, sections.config_record())
        run = _TrainingRun(client, sections, split, data_hash, parent_id)
        with _family_trials(run, study, local) as trials_of:
            finalists = _finalists(run, budgets, trials_of, show_progress)
        winner = max(finalists, key=lambda f: f.cv_auc)
        client.set_alias(sections.mlflow.registered_model, CHALLENGER, winner.version)
        seconds = time.perf_counter() - started
        client.log_values(
            parent_id,
            metrics={"best_cv_roc_auc": winner.cv_auc, "training_seconds": seconds},
            tags={"challenger_version": str(winner.version)},
        )
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
        sections.mlflow.experiment,
        data_hash,
        len(split.train),
        len(split.test),
        finalists,
        winner.version,
        seconds,
    )


# --- where each family's trials come from -------------------------------------


@contextmanager
def _family_trials(
    run: _TrainingRun, study: str | None, local: LocalWorkers | None
) -> Iterator[FamilyTrials]:
    """Each family's trials: searched here one family at a time, or read from the shared study.

    A shared search (``local`` workers started) runs to the end first, every
    process logging its own trials; the families' trials are then read back.
    """
    if local is None:
        yield _local_trials(run)
        return
    from creditops.training.shared_study import close_storages

    shared = _shared_search(run, study, local)
    yield _shared_trials(run, shared)
    close_storages()


def _local_trials(run: _TrainingRun) -> FamilyTrials:
    """The search in this process, each trial logged as a child run as it finishes."""

    def trials_of(family: str, on_result: Callable[[TrialResult], None]) -> list[TrialResult]:
        def on_trial(result: TrialResult) -> None:
            log_trial(run.client, run.parent_id, result)
            on_result(result)

        train, split = run.sections.train, run.split
        return search_family(
            family,
            train,
            split.X_train,
            split.y_train,
            on_trial,
            weights=split.weights,
            exclude=run.sections.fairness.excluded(),
        )

    return trials_of


def _shared_search(run: _TrainingRun, study: str | None, local: LocalWorkers) -> SharedStudy:
    """Create the shared studies, release the local workers, search too, wait for the rest."""
    from creditops.training.local_workers import wait_for_study
    from creditops.training.shared_study import create_studies, new_study, run_worker

    config = run.sections.train
    shared = new_study(config.study_storage, study)
    create_studies(config, shared, run.data_hash, run.parent_id)
    run.client.set_tag(run.parent_id, "optuna_study", shared.name)
    log.info(
        "distributed search: study %s in %s, %d local worker(s); join from another "
        "machine with `creditops train --join %s`",
        shared.name,
        redact_url(shared.storage_url),
        config.workers,
        shared.name,
    )
    local.release(shared, run.split)
    try:
        run_worker(run.sections, shared, 0, run.split, run.client)
    finally:
        wait_for_study(shared, list(config.families), local)
    return shared


def _shared_trials(run: _TrainingRun, shared: SharedStudy) -> FamilyTrials:
    """The complete trials of the shared study, the best first (already logged by their workers)."""
    from creditops.training.shared_study import family_trials

    def trials_of(family: str, on_result: Callable[[TrialResult], None]) -> list[TrialResult]:
        trials = family_trials(run.sections.train, shared, family, run.split)
        for trial in trials:
            on_result(trial)
        return trials

    return trials_of


# --- from trials to finalists -------------------------------------------------


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("best AUC {task.fields[best]}"),
        TimeElapsedColumn(),
        disable=not show,
        transient=False,
    )


def _trials_with_progress(
    progress: Progress, family: str, budget: int, trials_of: FamilyTrials
) -> list[TrialResult]:
    task = progress.add_task(family, total=budget, best="-")
    best_so_far = float("-inf")

    def on_result(result: TrialResult) -> None:
        nonlocal best_so_far
        best_so_far = max(best_so_far, result.cv_auc)
        progress.update(task, advance=1, best=f"{best_so_far:.4f}")

    return trials_of(family, on_result)


def _proxy_check(run: _TrainingRun) -> dict[str, float | None]:
    """How well the model's inputs predict each protected group, logged on the training run."""
    from creditops.fairness import included_warning, proxy_metrics, proxy_strength

    if warning := included_warning(run.sections.fairness):
        log.warning("%s", warning)
    proxy = proxy_strength(run.split.X_train, run.sections.fairness, seed=run.sections.train.seed)
    run.client.log_values(run.parent_id, metrics=proxy_metrics(proxy))
    log.info("proxy check (CV ROC AUC of the inputs predicting each group): %s", proxy)
    return proxy


def _finalists(
    run: _TrainingRun, budgets: dict[str, int], trials_of: FamilyTrials, show_progress: bool
) -> list[Finalist]:
    """Each family's best trial, refit, logged and registered, in the configured order."""
    finalists = []
    proxy = _proxy_check(run)
    with _progress(show_progress) as progress:
        for family in run.sections.train.families:
            trials = _trials_with_progress(progress, family, budgets[family], trials_of)
            best = max(trials, key=lambda t: t.cv_auc)
            log.info(
                "%s: %d trial(s), best CV ROC AUC %.4f ± %.4f with %s",
                family,
                len(trials),
                best.cv_auc,
                best.cv_auc_sd,
                best.params,
            )
            finalist = log_finalist(
                run.client,
                run.sections.mlflow.registered_model,
                best,
                run.split,
                run.sections.train,
                run.data_hash,
                run.parent_id,
                len(trials),
                run.sections.fairness,
                proxy,
            )
            finalists.append(finalist)
    return finalists
