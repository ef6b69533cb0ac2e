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

The coordinator starts its local workers before its own MLflow set-up (they
import meanwhile and wait for the study). It then picks each family's best
complete trial from the storage, takes the out-of-fold predictions its worker
stored (``keep_oof``; recomputed when absent: the CV is seeded), checks that they
give the trial's AUC, and refits and registers it as a finalist exactly as a
one-process search does.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from creditops.config import Settings
from creditops.data import Split, frame_hash, load_dataset, split_dataset
from creditops.errors import CreditOpsError, TrainingError

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


def new_study(settings: Settings, name: str | None = None) -> SharedStudy:
    """A study name and storage for a new distributed search."""
    url = settings.train.study_storage
    if not url:
        folder = Path(tempfile.mkdtemp(prefix="creditops-study-"))
        url = f"journal:{folder / 'study.log'}"
    return SharedStudy(name or f"creditops-{uuid.uuid4().hex[:8]}", url)


_STORAGES: dict[str, Any] = {}


def open_storage(url: str) -> Any:
    """The Optuna storage behind ``url`` (``journal:PATH`` or a SQLAlchemy URL), one per process."""
    if url not in _STORAGES:
        _STORAGES[url] = _open_storage(url)
    return _STORAGES[url]


def close_storages() -> None:
    """Release the database connections of every storage this process opened."""
    while _STORAGES:
        _, storage = _STORAGES.popitem()
        engine = getattr(storage, "engine", None)
        if engine is not None:
            storage.remove_session()
            engine.dispose()


def _open_storage(url: str) -> Any:
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    from creditops.infra import check_database

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
    settings: Settings, shared: SharedStudy, data_hash: str, parent_run_id: str
) -> dict[str, int]:
    """Create one study per family with its budget; returns the budgets."""
    import optuna

    from creditops.training.run import _sampler

    storage = open_storage(shared.storage_url)
    budgets: dict[str, int] = {}
    for family in settings.train.families:
        budget = _sampler(settings.train, family)[1]
        try:
            study = optuna.create_study(
                storage=storage, study_name=_study_name(shared.name, family), direction="maximize"
            )
        except optuna.exceptions.DuplicatedStudyError as exc:
            raise TrainingError(
                f"study {shared.name!r} already exists in {shared.storage_url}: choose another name"
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
        raise TrainingError(f"no study {shared.name!r} in {shared.storage_url}")
    return families


def run_worker(
    settings: Settings,
    shared: SharedStudy,
    index: int,
    split: Split | None = None,
) -> dict[str, int]:
    """Search every family of ``shared`` until its budget is used; returns trials run per family.

    Args:
        settings: the config (the same on every machine: data, CV, search space).
        shared: the study to join.
        index: this worker's number; its sampler seed is ``[train] seed + index``.
        split: the train/test split; loaded from ``[data]`` and checked against
            the study's data hash when omitted.
    """
    import optuna

    from creditops import registry
    from creditops.training.run import _log_trial, _sampler, search_family

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(shared.storage_url)
    order = [f for f in settings.train.families if f in set(study_families(shared))]
    client = registry.connect(settings.mlflow)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    done: dict[str, int] = {}
    for family in order:
        study = optuna.load_study(study_name=_study_name(shared.name, family), storage=storage)
        attrs = study.user_attrs
        if split is None:
            dataset = load_dataset(settings.data)
            split = split_dataset(dataset, settings.data.test_size, settings.data.seed)
        if frame_hash(split.train) != attrs["data_hash"]:
            raise TrainingError(
                f"worker {index}: training data hash {frame_hash(split.train)[:12]} differs from "
                f"study {shared.name!r}'s {str(attrs['data_hash'])[:12]}: same [data] config needed"
            )
        budget = int(attrs["budget"])
        sampler, _ = _sampler(settings.train, family)
        if settings.train.search == "optuna":
            sampler = optuna.samplers.TPESampler(
                seed=settings.train.seed + index, n_startup_trials=min(5, budget)
            )
        study.sampler = sampler
        parent_id = str(attrs["parent_run_id"])

        def on_trial(result: Any, parent_id: str = parent_id) -> None:
            _log_trial(client, experiment.experiment_id, parent_id, result)

        results = search_family(
            family,
            settings.train,
            split.X_train,
            split.y_train,
            on_trial,
            study=study,
            budget=budget,
        )
        done[family] = len(results)
        log.info("worker %d: %s: %d trial(s) of %d", index, family, len(results), budget)
    return done


def _worker_main(settings: Settings, index: int, channel: Any) -> None:
    from creditops.logs import configure_logging

    configure_logging(settings.logging)
    _warm_up(settings)
    try:
        shared, split = channel.recv()
    except EOFError:  # the coordinator stopped before the search began
        return
    finally:
        channel.close()
    try:
        run_worker(settings, shared, index, split)
    except CreditOpsError as exc:
        log.error("search worker %d failed: %s", index, exc)
        raise SystemExit(1) from None
    finally:
        close_storages()


def _warm_up(settings: Settings) -> None:
    """Import what a search needs (Optuna, MLflow and its store, every family's estimator)."""
    import mlflow.tracking
    import optuna  # noqa: F401

    from creditops.features import build_pipeline

    if not settings.mlflow.tracking_uri.startswith(("http", "file:")):
        # about 1 s of SQLAlchemy imports, else paid by registry.connect once released
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    for family in settings.train.families:
        build_pipeline(family, {}, settings.train.seed, monotone=settings.train.monotone)


@dataclass
class LocalWorkers:
    """Search processes started on this machine, waiting for their study (``release``)."""

    processes: list[Any]
    channels: list[Any]  # the sending end of each process's pipe, open until released

    def release(self, shared: SharedStudy, split: Split) -> None:
        """Hand the study and the split to every process: they start searching."""
        for process, channel in zip(self.processes, self.channels, strict=True):
            try:
                channel.send((shared, split))
            except OSError:  # it died starting; wait_for_study reports its exit code
                log.warning("search worker %s stopped before its study was ready", process.name)
            channel.close()
        self.channels = []
        log.info("released %d search worker(s) on study %s", len(self.processes), shared.name)

    def stop(self) -> None:
        """Send processes not yet released home (the coordinator failed before its study)."""
        if not self.channels:
            return
        for channel in self.channels:
            channel.close()  # the worker's recv ends with EOFError: it returns
        self.channels = []
        for process in self.processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()


def start_local_workers(settings: Settings, count: int) -> LocalWorkers:
    """Start ``count`` worker processes (indices 1..count) on this machine, ahead of the study.

    Each imports what it will need, then waits for :meth:`LocalWorkers.release`:
    the start-up (about 2 s of a core per process) overlaps the coordinator's
    own MLflow set-up, and nothing large goes through ``start``, which would
    otherwise block the coordinator until the child had imported its main module.
    """
    context = multiprocessing.get_context("spawn")
    processes = []
    channels = []
    for index in range(1, count + 1):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker_main, args=(settings, index, receive), name=f"creditops-search-{index}"
        )
        process.start()
        receive.close()
        processes.append(process)
        channels.append(send)
    log.info("started %d search worker process(es)", count)
    return LocalWorkers(processes, channels)


def wait_for_study(shared: SharedStudy, families: list[str], local: LocalWorkers) -> None:
    """Wait for the local workers, then for trials other machines still run."""
    import optuna

    failed = []
    for process in local.processes:
        process.join()
        if process.exitcode != 0:
            failed.append(f"{process.name} (exit {process.exitcode})")
    if failed:
        log.warning("search worker(s) failed: %s; the others used the budget", ", ".join(failed))
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


def keep_oof(trial: Any, value: float, oof: np.ndarray) -> None:
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


def best_trial(
    settings: Settings, shared: SharedStudy, family: str, split: Split
) -> tuple[list[Any], int]:
    """The family's complete trials as TrialResults, the best first with its OOF predictions.

    Returns:
        The results and the number of complete trials.
    """
    import optuna

    from creditops.training.run import TrialResult, cross_validate, oof_auc

    storage = open_storage(shared.storage_url)
    study = optuna.load_study(study_name=_study_name(shared.name, family), storage=storage)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise TrainingError(f"{family}: no trial of study {shared.name!r} completed")
    best = max(complete, key=lambda t: (float(t.value or 0.0), -t.number))
    best_value = float(best.value or 0.0)
    config = settings.train
    stored = best.user_attrs.get("oof")
    if stored is not None and len(stored) == len(split.y_train):
        oof = np.asarray(stored, dtype=np.float64)
        mean, sd = oof_auc(split.X_train, split.y_train, oof, config.cv_folds, config.seed)
        how = "its stored out-of-fold predictions score"
    else:
        mean, sd, oof = cross_validate(
            family,
            dict(best.params),
            split.X_train,
            split.y_train,
            config.cv_folds,
            config.seed,
            config.n_jobs,
            config.monotone,
        )
        how = "re-evaluated to"
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
    return results, len(complete)


def worker_count() -> int:
    """CPU cores this process may use (a default for ``--workers``)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
