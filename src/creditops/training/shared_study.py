"""Distributed hyperparameter search: several processes, one Optuna study per family.

A *study* ``STUDY`` is one Optuna study per family, named ``STUDY.<family>``, in
shared storage (``[train] study_storage``: PostgreSQL across machines; a
journal file in a temporary folder for ``--workers K`` on one machine when it is
empty). The coordinator (``creditops train --workers K``) creates the studies,
starts K-1 local worker processes and searches too; ``creditops train --join
STUDY`` adds workers from other machines. Every worker runs trials until the
family's budget is used up:

* trial numbers are handed out by the storage, one per trial; a trial numbered
  at or past the budget stops the search and is recorded as pruned (the
  processes racing for the last trial), so exactly ``budget`` trials are
  *complete*;
* each worker samples with its own seed (``[train] seed`` + worker index), so
  the processes do not propose the same points;
* each worker logs its own trials to MLflow, as children of the coordinator's run.

The coordinator starts its local workers (:mod:`creditops.training.local_workers`)
before its own MLflow set-up (they import meanwhile and wait for the study). It
then picks each family's best complete trial from the storage
(:func:`family_trials`), takes the out-of-fold predictions its worker stored
(:func:`keep_oof`; recomputed when absent: the CV is seeded), checks that they
give the trial's AUC, and refits and registers it as a finalist exactly as a
one-process search does (:mod:`creditops.training.run`, which this module does
not import).
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from creditops.config import DataConfig, TrainConfig
from creditops.data import Split, frame_hash, load_dataset, split_dataset
from creditops.errors import TrainingError
from creditops.secrets import redact_url
from creditops.training.search import (
    TrialResult,
    cross_validate,
    make_sampler,
    oof_auc,
    search_family,
)
from creditops.training.sections import TrainingSections
from creditops.training.tracking import log_trial

if TYPE_CHECKING:
    from optuna.samplers import BaseSampler
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial, Trial

    from creditops.tracking import TrackingClient

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
# A trial stores its out-of-fold predictions in the study (a JSON list, about 20 bytes a
# row) for up to this many training rows; beyond, the coordinator recomputes the best's.
OOF_ATTR_MAX_ROWS = 100_000


@dataclass(frozen=True)
class SharedStudy:
    """Where a distributed search lives."""

    name: str
    storage_url: str  # a SQLAlchemy URL, or journal:PATH


def new_study(storage_url: str, name: str | None = None) -> SharedStudy:
    """A study name and storage for a new distributed search.

    Args:
        storage_url: ``[train] study_storage``; empty for a journal file in a
            new temporary folder (processes of one machine).
        name: the study's name; a fresh ``creditops-XXXXXXXX`` when omitted.
    """
    url = storage_url
    if not url:
        folder = Path(tempfile.mkdtemp(prefix="creditops-study-"))
        url = f"journal:{folder / 'study.log'}"
    return SharedStudy(name or f"creditops-{uuid.uuid4().hex[:8]}", url)


_STORAGES: dict[str, BaseStorage] = {}


def open_storage(url: str) -> BaseStorage:
    """The Optuna storage behind ``url`` (``journal:PATH`` or a SQLAlchemy URL), one per process."""
    if url not in _STORAGES:
        _STORAGES[url] = _open_storage(url)
    return _STORAGES[url]


def close_storages() -> None:
    """Release the database connections of every storage this process opened."""
    while _STORAGES:
        from optuna.storages import RDBStorage

        _, storage = _STORAGES.popitem()
        if isinstance(storage, RDBStorage):
            storage.remove_session()
            storage.engine.dispose()


def _open_storage(url: str) -> BaseStorage:
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    from creditops.databases import check_database

    check_database(url, "study storage", error=TrainingError)
    with warnings.catch_warnings():
        # heartbeats (experimental in Optuna) let a dead worker's trial be failed, not waited on
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs={"pool_pre_ping": True},
            heartbeat_interval=HEARTBEAT_SECONDS,
            grace_period=GRACE_SECONDS,
        )


def _study_name(study: str, family: str) -> str:
    return f"{study}.{family}"


def create_studies(
    config: TrainConfig, shared: SharedStudy, data_hash: str, parent_run_id: str
) -> dict[str, int]:
    """Create one study per family with its budget; returns the budgets."""
    import optuna

    storage = open_storage(shared.storage_url)
    budgets: dict[str, int] = {}
    for family in config.families:
        budget = make_sampler(config, family)[1]
        try:
            study = optuna.create_study(
                storage=storage, study_name=_study_name(shared.name, family), direction="maximize"
            )
        except optuna.exceptions.DuplicatedStudyError as exc:
            raise TrainingError(
                f"study {shared.name!r} already exists in {redact_url(shared.storage_url)}: "
                "choose another name"
            ) from exc
        study.set_user_attr("budget", budget)
        study.set_user_attr("family", family)
        study.set_user_attr("data_hash", data_hash)
        study.set_user_attr("parent_run_id", parent_run_id)
        budgets[family] = budget
    return budgets


def study_families(shared: SharedStudy) -> list[str]:
    """The families of ``shared`` (the studies named ``STUDY.<family>``), in no set order."""
    import optuna

    storage = open_storage(shared.storage_url)
    prefix = f"{shared.name}."
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    families = [n.removeprefix(prefix) for n in names if n.startswith(prefix)]
    if not families:
        raise TrainingError(f"no study {shared.name!r} in {redact_url(shared.storage_url)}")
    return families


def _checked_split(
    data: DataConfig, split: Split | None, shared: SharedStudy, data_hash: str, index: int
) -> Split:
    """The worker's split (loaded from ``[data]`` when not given), checked against the study's."""
    if split is None:
        dataset = load_dataset(data)
        split = split_dataset(dataset, data.test_size, data.seed)
    if frame_hash(split.train) != data_hash:
        raise TrainingError(
            f"worker {index}: training data hash {frame_hash(split.train)[:12]} differs from "
            f"study {shared.name!r}'s {data_hash[:12]}: same [data] config needed"
        )
    return split


def _worker_sampler(config: TrainConfig, family: str, index: int, budget: int) -> BaseSampler:
    """The configured sampler; a TPE search seeded ``[train] seed + index`` per worker."""
    import optuna

    if config.search == "optuna":
        return optuna.samplers.TPESampler(seed=config.seed + index, n_startup_trials=min(5, budget))
    return make_sampler(config, family)[0]


def run_worker(
    sections: TrainingSections,
    shared: SharedStudy,
    index: int,
    split: Split | None = None,
    client: TrackingClient | None = None,
) -> dict[str, int]:
    """Search every family of ``shared`` until its budget is used; returns trials run per family.

    Args:
        sections: the config (the same on every machine: data, CV, search space).
        shared: the study to join.
        index: this worker's number; its sampler seed is ``[train] seed + index``.
        split: the train/test split; loaded from ``[data]`` when omitted. It is
            checked against the study's data hash either way.
        client: the MLflow store the trials are logged to; connected to
            ``[mlflow]`` when omitted.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(shared.storage_url)
    order = [f for f in sections.train.families if f in set(study_families(shared))]
    if client is None:
        from creditops.tracking import connect

        client = connect(sections.mlflow)
    done: dict[str, int] = {}
    for family in order:
        study = optuna.load_study(study_name=_study_name(shared.name, family), storage=storage)
        attrs = study.user_attrs
        split = _checked_split(sections.data, split, shared, str(attrs["data_hash"]), index)
        budget = int(attrs["budget"])
        study.sampler = _worker_sampler(sections.train, family, index, budget)
        parent_id = str(attrs["parent_run_id"])

        def on_trial(result: TrialResult, parent_id: str = parent_id) -> None:
            log_trial(client, parent_id, result)

        results = search_family(
            family,
            sections.train,
            split.X_train,
            split.y_train,
            on_trial,
            study=study,
            budget=budget,
            on_scored=keep_oof,
            weights=split.weights,
            exclude=sections.fairness.excluded(),
        )
        done[family] = len(results)
        log.info("worker %d: %s: %d trial(s) of %d", index, family, len(results), budget)
    return done


def keep_oof(trial: Trial, value: float, oof: np.ndarray) -> None:
    """Store a trial's out-of-fold predictions if it is at least as good as the study's best.

    The best trial of the study is then sure to have them (whichever process ran
    it), and the coordinator needs not refit its folds for the threshold; the
    others mostly do not, which keeps the storage small.
    """
    if len(oof) > OOF_ATTR_MAX_ROWS:
        return
    try:
        best = float(trial.study.best_value)
    except ValueError:  # no trial complete yet
        best = float("-inf")
    if value >= best:
        trial.set_user_attr("oof", oof.tolist())


def wait_for_trials(shared: SharedStudy, families: list[str]) -> None:
    """Wait (a while) for trials other processes or machines still run on ``shared``."""
    import optuna

    storage = open_storage(shared.storage_url)
    for family in families:
        study = optuna.load_study(study_name=_study_name(shared.name, family), storage=storage)
        deadline = time.monotonic() + GRACE_SECONDS * 2
        while True:
            if not shared.storage_url.startswith("journal:"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(study)
            running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
            if not running or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        if running:
            log.warning(
                "%s: %d trial(s) still running elsewhere; not waiting", family, len(running)
            )


def _best_scores(
    config: TrainConfig, family: str, best: FrozenTrial, split: Split
) -> tuple[float, float, np.ndarray, str]:
    """Mean and sd CV AUC and OOF predictions of ``best``: stored by its worker, or recomputed."""
    stored = best.user_attrs.get("oof")
    if stored is not None and len(stored) == len(split.y_train):
        oof = np.asarray(stored, dtype=np.float64)
        mean, sd = oof_auc(split.X_train, split.y_train, oof, config.cv_folds, config.seed)
        return mean, sd, oof, "its stored out-of-fold predictions score"
    mean, sd, oof = cross_validate(
        family,
        dict(best.params),
        split.X_train,
        split.y_train,
        config.cv_folds,
        config.seed,
        config.n_jobs,
        config.monotone,
        weights=split.weights,
    )
    return mean, sd, oof, "re-evaluated to"


def family_trials(
    config: TrainConfig, shared: SharedStudy, family: str, split: Split
) -> list[TrialResult]:
    """The family's complete trials as TrialResults, the best first with its OOF predictions.

    Raises:
        TrainingError: no trial completed, or the best's CV AUC cannot be reproduced.
    """
    import optuna

    storage = open_storage(shared.storage_url)
    study = optuna.load_study(study_name=_study_name(shared.name, family), storage=storage)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise TrainingError(f"{family}: no trial of study {shared.name!r} completed")
    best = max(complete, key=lambda t: (float(t.value or 0.0), -t.number))
    best_value = float(best.value or 0.0)
    mean, sd, oof, how = _best_scores(config, family, best, split)
    if not np.isclose(mean, best_value, rtol=0, atol=1e-9):
        raise TrainingError(
            f"{family}: trial {best.number} {how} CV AUC {mean:.6f}, "
            f"not the {best_value:.6f} its worker reported (a non-deterministic fit?)"
        )
    results = [TrialResult(family, best.number, dict(best.params), mean, sd, oof)]
    for trial in complete:
        if trial.number != best.number:
            results.append(
                TrialResult(
                    family,
                    trial.number,
                    dict(trial.params),
                    float(trial.value or 0.0),
                    float(trial.user_attrs.get("cv_auc_sd", 0.0)),
                    np.empty(0),
                )
            )
    return results
