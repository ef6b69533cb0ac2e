"""Search processes on this machine: started ahead of their study, released onto it, joined.

``creditops train --workers K`` starts K-1 of these before its own MLflow
set-up; each imports what a search needs, waits for the study and the split
(:meth:`LocalWorkers.release`), then runs
:func:`creditops.training.shared_study.run_worker` like any joined machine.
"""

from __future__ import annotations

import logging
import multiprocessing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from creditops.data import Split
from creditops.errors import CreditOpsError
from creditops.training.sections import TrainingSections
from creditops.training.shared_study import (
    SharedStudy,
    close_storages,
    run_worker,
    wait_for_trials,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

log = logging.getLogger(__name__)


def _worker_main(sections: TrainingSections, index: int, channel: Connection) -> None:
    from creditops.logs import configure_logging

    configure_logging(sections.logging)
    _warm_up(sections)
    try:
        shared, split = channel.recv()
    except EOFError:  # the coordinator stopped before the search began
        return
    finally:
        channel.close()
    try:
        run_worker(sections, shared, index, split)
    except CreditOpsError as exc:
        log.error("search worker %d failed: %s", index, exc)
        raise SystemExit(1) from None
    finally:
        close_storages()


def _warm_up(sections: TrainingSections) -> None:
    """Import what a search needs (Optuna, MLflow and its store, every family's estimator)."""
    import mlflow.tracking
    import optuna  # noqa: F401

    from creditops.features import build_pipeline

    if not sections.mlflow.tracking_uri.startswith(("http", "file:")):
        # about 1 s of SQLAlchemy imports, else paid by tracking.connect once released
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    train = sections.train
    for family in train.families:
        build_pipeline(family, {}, train.seed, monotone=train.monotone)


@dataclass
class LocalWorkers:
    """Search processes started on this machine, waiting for their study (``release``)."""

    processes: list[BaseProcess]
    channels: list[Connection]  # the sending end of each process's pipe, open until released

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


def start_local_workers(sections: TrainingSections, count: int) -> LocalWorkers:
    """Start ``count`` worker processes (indices 1..count) on this machine, ahead of the study.

    Each imports what it will need, then waits for :meth:`LocalWorkers.release`:
    the start-up (about 2 s of a core per process) overlaps the coordinator's
    own MLflow set-up, and nothing large goes through ``start``, which would
    otherwise block the coordinator until the child had imported its main module.
    """
    context = multiprocessing.get_context("spawn")
    processes: list[BaseProcess] = []
    channels: list[Connection] = []
    for index in range(1, count + 1):
        receive, send = context.Pipe(duplex=False)
        process = context.Process(
            target=_worker_main, args=(sections, index, receive), name=f"creditops-search-{index}"
        )
        process.start()
        receive.close()
        processes.append(process)
        channels.append(send)
    log.info("started %d search worker process(es)", count)
    return LocalWorkers(processes, channels)


def wait_for_study(shared: SharedStudy, families: list[str], local: LocalWorkers) -> None:
    """Wait for the local workers, then for trials other machines still run."""
    failed = []
    for process in local.processes:
        process.join()
        if process.exitcode != 0:
            failed.append(f"{process.name} (exit {process.exitcode})")
    if failed:
        log.warning("search worker(s) failed: %s; the others used the budget", ", ".join(failed))
    wait_for_trials(shared, families)
