"""Batch scoring of a file: ``creditops score INPUT --output OUTPUT``.

The input (CSV or Parquet, by suffix) is streamed in chunks of ``[batch]
chunk_rows`` (:mod:`creditops.batch.files`), so memory stays bounded whatever
the file's size. Each chunk is checked against the contract; rows that break it
go to the rejects file with every broken rule, never dropped silently. The
others are scored by the compiled scorer (``inference.scorer.prepare_model``:
the same numbers as the service, checked against the registered pipeline at
load) and written with their probability of default, decision and top reasons
(:mod:`creditops.batch.chunks`, the unit of work). Columns that are not in the
contract (an applicant id, say) are carried through to both files. The chunks
are scored in this process or on a Dask cluster (:mod:`creditops.batch.engines`).

Both files are written under temporary names beside them and renamed into
place only when the whole run has succeeded; a run that fails (a missing
column, no model, an engine or disk error, Ctrl-C) leaves neither, leaves an
earlier run's files as they were, and its error says that no output was written.

Reasons follow ``[batch]``: by default only declined rows get them, the
service's reason codes by the service's method, never a protected attribute
(see :class:`~creditops.batch.chunks.ReasonPolicy`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from creditops import registry
from creditops.batch.chunks import (
    ChunkResult,
    NumberedChunks,
    ReasonPolicy,
    empty_rejects,
    empty_scores,
)
from creditops.batch.engines import open_engine
from creditops.batch.files import FrameWriter, file_format, read_chunks, rejects_path, row_count
from creditops.config import BatchConfig, MlflowConfig
from creditops.errors import CreditOpsError, DataError
from creditops.reason_codes import DEFAULT_PROTECTED

if TYPE_CHECKING:
    from rich.progress import Progress

    from creditops.inference.scorer import LoadedModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchSummary:
    """What one batch-scoring run did; ``scored + rejected == input_rows``."""

    input_rows: int
    scored: int
    rejected: int
    declined: int
    model_version: int
    model_family: str
    fast_path: bool
    output: str
    rejects: str
    seconds: float
    reasons: str = "none"

    @property
    def rows_per_second(self) -> float:
        return self.input_rows / self.seconds if self.seconds > 0 else float("nan")

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = asdict(self)
        out["rows_per_second"] = self.rows_per_second
        return out


@dataclass
class _Totals:
    """What the results written so far add up to."""

    input_rows: int = 0
    declined: int = 0


def score_file(
    config: BatchConfig,
    mlflow_config: MlflowConfig,
    input_path: Path,
    output_path: Path,
    *,
    model_version: int | None = None,
    show_progress: bool = True,
    dask_scheduler: str | None = None,
    protected: tuple[str, ...] = DEFAULT_PROTECTED,
) -> BatchSummary:
    """Score every row of ``input_path`` into ``output_path`` and its rejects file.

    Args:
        config: ``[batch]``: the chunks, the reasons, the engine.
        mlflow_config: ``[mlflow]``: the store and the registered model.
        input_path: a .csv or .parquet file with the contract's columns.
        output_path: a .csv or .parquet file. It and its rejects file are
            written under temporary names beside them and renamed into place
            when the whole run has succeeded: a failed run leaves neither (and
            an earlier run's files as they were), and its error says so.
        model_version: a registered version; the ``champion`` when omitted.
        show_progress: draw a progress bar on the console.
        dask_scheduler: score the chunks on a Dask cluster (a scheduler address,
            or ``local`` / ``local:N`` for N local worker processes) instead of in
            this process; ``[batch] dask_scheduler`` when None, this process when empty.
        protected: ``[fairness] protected``: never given as a reason.

    Raises:
        ContractError: a contract column is missing from the file.
        DataError: the file cannot be read, or an output cannot be written (a
            full disk, no permission).
        RegistryError / NoChampionError: the model cannot be found or loaded.
        BatchEngineError: the Dask cluster cannot be reached or fails.
    """
    started = time.perf_counter()
    rejects = rejects_path(output_path, config.rejects_suffix)
    writers: list[FrameWriter] = []
    try:
        _refuse_paths(input_path, output_path, rejects)
        writers += [FrameWriter(output_path), FrameWriter(rejects)]
        model, artifact = _load_model(mlflow_config, model_version)
        address = config.dask_scheduler if dask_scheduler is None else dask_scheduler
        policy = ReasonPolicy.from_config(config, protected)
        summary = _score(
            config, model, artifact, input_path, writers, address, show_progress, policy
        )
        for writer in reversed(writers):  # the scores last: new scores, new rejects
            writer.commit()
    except BaseException as exc:
        for writer in writers:
            writer.discard()
        _say_nothing_was_written(exc, output_path, rejects)
        raise
    summary = replace(summary, seconds=time.perf_counter() - started)
    _log_summary(summary)
    return summary


def _score(
    config: BatchConfig,
    model: LoadedModel,
    artifact: dict[str, bytes],
    input_path: Path,
    writers: list[FrameWriter],
    address: str,
    show_progress: bool,
    policy: ReasonPolicy,
) -> BatchSummary:
    """The run itself: every chunk read, scored and written to the writers' partial files."""
    scored_out, rejected_out = writers
    threads = config.threads or os.cpu_count() or 1
    total = row_count(input_path)
    chunks = NumberedChunks(read_chunks(input_path, config.chunk_rows), input_path)
    with open_engine(address, threads) as engine:
        results = engine.score(model, chunks, reasons=policy, artifact=artifact)
        totals = _write_results(results, scored_out, rejected_out, total, show_progress)
    _close_files(scored_out, rejected_out, chunks.carried, totals.input_rows)
    return BatchSummary(
        input_rows=totals.input_rows,
        scored=scored_out.rows,
        rejected=rejected_out.rows,
        declined=totals.declined,
        model_version=model.ref.version,
        model_family=model.ref.family,
        fast_path=model.fast_path,
        output=str(scored_out.path),
        rejects=str(rejected_out.path),
        seconds=0.0,
        reasons=policy.describe(model),
    )


def _say_nothing_was_written(exc: BaseException, output_path: Path, rejects: Path) -> None:
    """Add to a failed run's error that neither file was written (both left as they were).

    A ``CreditOpsError``'s own message says it (the command line shows only
    that line); any other error gets a note and a log line.
    """
    said = f"no output was written ({output_path.name} and {rejects.name} are as they were)"
    if isinstance(exc, CreditOpsError):
        exc.args = (f"{exc}; {said}", *exc.args[1:])
        return
    exc.add_note(said)
    stopped = "interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
    log.error("batch scoring stopped (%s): %s", stopped, said)


def _refuse_paths(input_path: Path, output_path: Path, rejects: Path) -> None:
    """Refuse a run before the model is fetched.

    A folder, an unknown format, a missing input, or an output that would
    overwrite the input (or its rejects file) as it is read.

    Raises:
        DataError: any of these.
    """
    for path, role in ((input_path, "input"), (output_path, "output")):
        if path.is_dir():
            raise DataError(f"{role} {path} is a folder: give a .csv or .parquet file")
    file_format(input_path)
    file_format(output_path)
    if not input_path.is_file():
        raise DataError(f"input file {input_path} not found")
    for target in (output_path, rejects):
        if target.resolve() == input_path.resolve():
            raise DataError(f"output {target} is the input file: choose another --output")


def _load_model(
    mlflow_config: MlflowConfig, model_version: int | None
) -> tuple[LoadedModel, dict[str, bytes]]:
    """The registered version to score with (the champion when None), compiled and checked.

    Also returns its artifact files, checked against the digest recorded at
    registration before anything was unpickled: what Dask workers are sent.
    """
    from creditops.inference.scorer import prepare_model

    client = registry.connect(mlflow_config)
    name = mlflow_config.registered_model
    ref = (
        registry.get_version(client, name, model_version)
        if model_version is not None
        else registry.resolve_alias(client, name)
    )
    registry.require_servable(ref)  # no threshold tag, no decisions
    artifact = registry.download_model_files(client, ref)
    return prepare_model(ref, registry.pipeline_from_files(client, ref, artifact)), artifact


def _progress(show: bool) -> Progress:
    """The console's progress bar of a run (drawn only when ``show``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show,
    )


def _write_results(
    results: Iterator[ChunkResult],
    scored_out: FrameWriter,
    rejected_out: FrameWriter,
    total: int | None,
    show_progress: bool,
) -> _Totals:
    """Write each chunk's scored and rejected rows as they come, advancing the progress bar."""
    totals = _Totals()
    with _progress(show_progress) as progress:
        task = progress.add_task("rows", total=total)
        for result in results:
            if result.rejected is not None:
                rejected_out.write(result.rejected)
            if result.scored is not None:
                scored_out.write(result.scored)
            totals.declined += result.declined
            totals.input_rows += result.rows
            progress.update(task, advance=result.rows)
    return totals


def _close_files(
    scored_out: FrameWriter, rejected_out: FrameWriter, carried: tuple[str, ...], input_rows: int
) -> None:
    """Finish both files (each with its header when empty) and check that no row was lost.

    Raises:
        DataError: the rows written do not add up to the rows read.
    """
    scored_out.close(empty_scores(carried))
    rejected_out.close(empty_rejects())
    if scored_out.rows + rejected_out.rows != input_rows:  # a bug, never a data problem
        raise DataError(
            f"totals do not add up: {scored_out.rows} scored + {rejected_out.rows} rejected "
            f"!= {input_rows} read"
        )


def _log_summary(summary: BatchSummary) -> None:
    """The run's one log line: counts, model, files, throughput."""
    log.info(
        "scored %d of %d row(s) with %s v%d (%d declined), %d rejected -> %s, %s (%.0f rows/s)",
        summary.scored,
        summary.input_rows,
        summary.model_family,
        summary.model_version,
        summary.declined,
        summary.rejected,
        summary.output,
        summary.rejects,
        summary.rows_per_second,
    )
