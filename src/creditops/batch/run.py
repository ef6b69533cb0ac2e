"""Batch scoring of a file: ``creditops score INPUT --output OUTPUT``.

The input (CSV or Parquet, by suffix) is streamed in chunks of ``[batch]
chunk_rows`` with pyarrow, so memory stays bounded whatever the file's size.
Each chunk is checked against the contract (``schema.validate_rows``); rows that
break it go to the rejects file with every broken rule, never dropped
silently. The others are scored by the serving scorer's compiled path
(``serving.scorer.prepare_model``: the same numbers as the service, checked
against the registered pipeline at load) and written with their probability
of default, decision and top reasons. Columns that are not in the contract (an
applicant id, say) are carried through to both files.

Reasons follow ``[batch]``: by default only declined rows get them (the
adverse decisions that owe an explanation), computed as decision-path
contributions, which cost about a prediction; ``reason_method = "shap"`` gives
the service's exact tree SHAP reasons at some 30 times the cost (see
:class:`ReasonPolicy` and :mod:`creditops.serving.scorer`).

Output columns: ``row`` (1-based, as counted in the input), the carried
columns, ``probability``, ``decision`` (approve/decline at the model's
threshold), ``reasons`` (``Field:+contribution;...``, strongest first, toward
"bad"; empty where none are owed or none is positive), ``model_version``.
Rejects: ``row``, ``reasons`` (the broken rules), and the row's columns as read.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from creditops import registry, schema
from creditops.config import BatchConfig, Settings
from creditops.errors import ContractError, DataError
from creditops.inference.reasons import top_contributions

if TYPE_CHECKING:
    from creditops.inference.scorer import LoadedModel

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
SCORE_SLICE_ROWS = 16_384


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

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["rows_per_second"] = self.rows_per_second
        return out


def file_format(path: Path) -> str:
    """``csv`` or ``parquet`` from the suffix.

    Raises:
        DataError: another suffix.
    """
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{path}: unknown format {path.suffix!r}; use .csv or .parquet")
    return kind


def rejects_path(output: Path, suffix: str) -> Path:
    """``scores.csv`` -> ``scores.rejects.csv``."""
    return output.with_name(output.stem + suffix + output.suffix)


def _column_types() -> dict[str, Any]:
    import pyarrow as pa

    return {
        name: pa.string() if name in schema.CATEGORICAL else pa.float64()
        for name in schema.FEATURES
    }


def read_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The file as frames of at most ``chunk_rows`` rows (contract columns typed)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        if file_format(path) == "parquet":
            batches: Iterator[Any] = pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
        else:
            # strings for the contract's categories; numbers read as text become a
            # contract violation, not a read failure
            reader = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=1 << 24),
                convert_options=pacsv.ConvertOptions(
                    column_types={n: pa.string() for n in schema.CATEGORICAL},
                    strings_can_be_null=True,  # an empty field is missing, as in pandas
                ),
            )
            batches = iter(reader)
        pending: list[pd.DataFrame] = []
        size = 0
        for batch in batches:
            frame = batch.to_pandas()
            while len(frame):
                take = frame.iloc[: chunk_rows - size]
                frame = frame.iloc[len(take) :]
                pending.append(take)
                size += len(take)
                if size >= chunk_rows:
                    yield pd.concat(pending, ignore_index=True)
                    pending, size = [], 0
        if pending:
            yield pd.concat(pending, ignore_index=True)
    except FileNotFoundError as exc:
        raise DataError(f"input file {path} not found") from exc
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc


class _Writer:
    """Appends frames to a CSV or Parquet file through pyarrow."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.kind = file_format(path)
        self._writer: Any = None
        self._schema: Any = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.kind == "parquet":
                self._writer = pq.ParquetWriter(self.path, table.schema)
            else:
                self._writer = pacsv.CSVWriter(self.path, table.schema)
            self._schema = table.schema
        self._writer.write_table(table.cast(self._schema))
        self.rows += len(frame)

    def close(self, empty: pd.DataFrame) -> None:
        if self._writer is None:  # nothing written: an empty file with the header
            self.write(empty)
        self._writer.close()


REASON_DECIMALS = 4
_TICKS = 10**REASON_DECIMALS
_TABLE_TICKS = 200_000  # contributions up to +20.0000 come formatted from a table


@functools.cache
def _formatted_ticks() -> np.ndarray:
    """``f"{i / 10**4:+.4f}"`` for every tick i up to ``_TABLE_TICKS`` (built once, 0.05 s)."""
    return np.array(
        [f"{i / _TICKS:+.{REASON_DECIMALS}f}" for i in range(_TABLE_TICKS + 1)], dtype=object
    )


def _format_positive(values: np.ndarray) -> np.ndarray:
    """``f"{v:+.4f}"`` of positive values, by table lookup (formatting is the costly part)."""
    scaled = values * _TICKS
    ticks = np.rint(scaled)
    # near a half tick, float rounding of the product may differ from formatting's
    exact = (ticks <= _TABLE_TICKS) & (np.abs(np.abs(scaled - np.trunc(scaled)) - 0.5) > 1e-6)
    out = np.empty(len(values), dtype=object)
    out[exact] = _formatted_ticks()[ticks[exact].astype(np.int64)]
    out[~exact] = [f"{v:+.{REASON_DECIMALS}f}" for v in values[~exact]]
    return out


def _reason_strings(contributions: np.ndarray, sources: tuple[str, ...], top_k: int) -> np.ndarray:
    """``Field:+0.1234;...`` per row: the top_k positive contributions, strongest first."""
    n = contributions.shape[0]
    order, top = top_contributions(contributions, top_k)
    k = order.shape[1]
    prefixes = np.asarray([f"{name}:" for name in sources], dtype=object)
    out = np.full(n, "", dtype=object)
    for j in range(k):
        positive = top[:, j] > 0  # positives come first: a row's later columns are smaller
        if not positive.any():
            break
        text = prefixes[order[positive, j]] + _format_positive(top[positive, j])
        out[positive] = text if j == 0 else out[positive] + ";" + text
    return out


@dataclass
class ChunkResult:
    """One chunk scored: its scored rows, its rejected rows (either may be None), counts."""

    rows: int
    scored: pd.DataFrame | None
    rejected: pd.DataFrame | None
    declined: int


@dataclass(frozen=True)
class NumberedChunk:
    """A chunk of the input, the number of its first row (1-based) and the carried columns."""

    first_row: int
    frame: pd.DataFrame
    carried: tuple[str, ...]


class NumberedChunks:
    """The input's chunks with their rows numbered as in the input (an iterator).

    The first chunk must hold every contract column; its other columns are
    ``carried`` to the output.
    """

    def __init__(self, chunks: Iterator[pd.DataFrame], source: Path) -> None:
        self._chunks = chunks
        self._source = source
        self._next_row = 1
        self.carried: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[NumberedChunk]:
        return self

    def __next__(self) -> NumberedChunk:
        """The next chunk.

        Raises:
            ContractError: a contract column is missing from the first chunk.
        """
        chunk = next(self._chunks)
        if self._next_row == 1:
            missing = [c for c in schema.FEATURES if c not in chunk.columns]
            if missing:
                raise ContractError(
                    f"{self._source}: missing column(s) {', '.join(missing)} "
                    f"(the contract's columns are: {', '.join(schema.FEATURES)})"
                )
            self.carried = tuple(str(c) for c in chunk.columns if c not in schema.FIELDS)
        numbered = NumberedChunk(self._next_row, chunk, self.carried)
        self._next_row += len(chunk)
        return numbered


@dataclass(frozen=True)
class ReasonPolicy:
    """Which rows get reasons, how many, and how the contributions are computed.

    ``rows``: "declined" (adverse decisions only; approved rows get "") or "all".
    ``method``: "path" (decision-path contributions) or "shap" (exact tree SHAP,
    the service's numbers); see :mod:`creditops.serving.scorer`.
    """

    top_k: int
    rows: str = "declined"
    method: str = "path"

    def describe(self, model: LoadedModel) -> str:
        """What the reasons column holds, in words (for the run's summary)."""
        if self.top_k <= 0 or model.model is None:
            return "none"
        rows = "declined rows" if self.rows == "declined" else "every row"
        method = "tree SHAP" if self.method == "shap" else "decision-path contributions"
        if model.model.contribute_path is model.model.contribute:
            method = f"{model.ref.family} contributions"
        return f"top {self.top_k} for {rows}, {method}"

    @classmethod
    def from_config(cls, config: BatchConfig) -> ReasonPolicy:
        return cls(config.reasons_top_k, config.reasons_for, config.reason_method)


def _in_slices(
    work: Callable[[np.ndarray], np.ndarray], raw: np.ndarray, threads: int
) -> np.ndarray:
    """``work`` on slices of at most ``SCORE_SLICE_ROWS`` rows, ``threads`` at a time, stacked.

    Slices bound the scorer's temporaries (the random forest's walk keeps a
    rows x trees node array per level: several GiB for a 200,000-row chunk), and
    the threads use every core: the boosters' predictions and contributions and
    most of numpy release the GIL.
    """
    if len(raw) <= SCORE_SLICE_ROWS:
        slices = [raw] if threads <= 1 or len(raw) < 2 * threads else np.array_split(raw, threads)
    else:
        slices = np.array_split(raw, -(-len(raw) // SCORE_SLICE_ROWS))
    if len(slices) == 1:
        return work(raw)
    if threads <= 1:
        parts = [work(part) for part in slices]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads) as pool:
            parts = list(pool.map(work, slices))
    return np.concatenate(parts)


def _reasons(
    model: LoadedModel, raw: np.ndarray, decline: np.ndarray, policy: ReasonPolicy, threads: int
) -> np.ndarray | str:
    """The reasons column for scored rows: "" where none are owed or computable."""
    if policy.top_k <= 0 or model.model is None:
        return ""
    wanted = decline if policy.rows == "declined" else np.ones(len(raw), dtype=bool)
    out = np.full(len(raw), "", dtype=object)
    if not wanted.any():
        return out

    def contributions(part: np.ndarray) -> np.ndarray:
        got = model.contributions(part, policy.method)
        assert got is not None  # model.model is set
        return got

    values = _in_slices(contributions, raw[wanted], threads)
    out[wanted] = _reason_strings(values, model.sources, policy.top_k)
    return out


def score_chunk(
    model: LoadedModel, chunk: NumberedChunk, *, reasons: ReasonPolicy, threads: int = 1
) -> ChunkResult:
    """Validate one chunk, score its valid rows, and describe the others' broken rules.

    The unit of work of both engines: the same function runs in this process or
    on a Dask worker.
    """
    from creditops.inference.scorer import raw_matrix_from_frame

    frame, first = chunk.frame, chunk.first_row
    rows = np.arange(first, first + len(frame))
    violations = schema.validate_rows(frame[list(schema.FEATURES)], first_row=first)
    bad = schema.rows_with_violations(violations, first_row=first)
    refused = None
    if len(bad):
        rules: dict[int, list[str]] = {}
        for v in violations:
            rules.setdefault(v.row, []).append(f"{v.field}: {schema._show(v.value)} {v.rule}")
        refused = frame.iloc[bad].astype("string")
        refused.insert(0, "reasons", ["; ".join(rules[int(r)]) for r in rows[bad]])
        refused.insert(0, "row", rows[bad])
    keep = np.ones(len(frame), dtype=bool)
    keep[bad] = False
    good = frame[keep]
    if not len(good):
        return ChunkResult(len(frame), None, refused, 0)
    ref = model.ref
    raw = raw_matrix_from_frame(schema.coerce_features(good))
    probability = _in_slices(
        lambda part: model.score(part, reasons=False).probability, raw, threads
    )
    decline = probability >= ref.threshold
    out = pd.DataFrame({"row": rows[keep]})
    for column in chunk.carried:
        out[column] = good[column].to_numpy()
    out["probability"] = probability
    out["decision"] = np.where(decline, "decline", "approve")
    out["reasons"] = _reasons(model, raw, decline, reasons, threads)
    out["model_version"] = ref.version
    return ChunkResult(len(frame), out, refused, int(decline.sum()))


def score_file(
    settings: Settings,
    input_path: Path,
    output_path: Path,
    *,
    model_version: int | None = None,
    show_progress: bool = True,
    dask_scheduler: str | None = None,
) -> BatchSummary:
    """Score every row of ``input_path`` into ``output_path`` and its rejects file.

    Args:
        settings: the config (``[mlflow]`` for the model, ``[batch]`` for the chunks).
        input_path: a .csv or .parquet file with the contract's columns.
        output_path: a .csv or .parquet file (written anew).
        model_version: a registered version; the ``champion`` when omitted.
        show_progress: draw a progress bar on the console.
        dask_scheduler: score the chunks on a Dask cluster (a scheduler address,
            or ``local`` / ``local:N`` for N local worker processes) instead of in
            this process; ``[batch] dask_scheduler`` when None, this process when empty.

    Raises:
        ContractError: a contract column is missing from the file.
        DataError: the file cannot be read.
        RegistryError / NoChampionError: the model cannot be found or loaded.
        BatchEngineError: the Dask cluster cannot be reached or fails.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from creditops.inference.scorer import prepare_model

    started = time.perf_counter()
    config = settings.batch
    file_format(input_path)
    file_format(output_path)
    # refuse before the model is fetched: a missing input, or an output that
    # would overwrite the input (or its rejects file) as it is read
    if not input_path.is_file():
        raise DataError(f"input file {input_path} not found")
    rejects_file = rejects_path(output_path, config.rejects_suffix)
    for target in (output_path, rejects_file):
        if target.resolve() == input_path.resolve():
            raise DataError(f"output {target} is the input file: choose another --output")
    address = config.dask_scheduler if dask_scheduler is None else dask_scheduler
    client = registry.connect(settings.mlflow)
    name = settings.mlflow.registered_model
    ref = (
        registry.get_version(client, name, model_version)
        if model_version is not None
        else registry.resolve_alias(client, name)
    )
    pipeline = registry.load_pipeline(client, ref)
    model = prepare_model(ref, pipeline)
    policy = ReasonPolicy.from_config(config)
    threads = config.threads or os.cpu_count() or 1
    rejects = rejects_path(output_path, config.rejects_suffix)
    scored_out, rejected_out = _Writer(output_path), _Writer(rejects)
    total = _row_count(input_path)
    progress = Progress(
        TextColumn("[bold]scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show_progress,
    )
    input_rows = declined = 0
    chunks = NumberedChunks(read_chunks(input_path, config.chunk_rows), input_path)
    with contextlib.ExitStack() as stack:
        if address:
            from creditops.batch.engines import DaskEngine

            engine = stack.enter_context(DaskEngine.connect(address))
            results: Iterator[ChunkResult] = engine.score(ref, pipeline, chunks, reasons=policy)
        else:
            results = (score_chunk(model, c, reasons=policy, threads=threads) for c in chunks)
        stack.enter_context(progress)
        task = progress.add_task("rows", total=total)
        for result in results:
            if result.rejected is not None:
                rejected_out.write(result.rejected)
            if result.scored is not None:
                scored_out.write(result.scored)
            declined += result.declined
            input_rows += result.rows
            progress.update(task, advance=result.rows)
    empty_scored = pd.DataFrame(
        {
            "row": pd.Series(dtype="int64"),
            **{c: pd.Series(dtype="string") for c in chunks.carried},
            "probability": pd.Series(dtype="float64"),
            "decision": pd.Series(dtype="string"),
            "reasons": pd.Series(dtype="string"),
            "model_version": pd.Series(dtype="int64"),
        }
    )
    empty_rejects = pd.DataFrame(
        {"row": pd.Series(dtype="int64"), "reasons": pd.Series(dtype="string")}
    )
    scored_out.close(empty_scored)
    rejected_out.close(empty_rejects)
    if scored_out.rows + rejected_out.rows != input_rows:  # a bug, never a data problem
        raise DataError(
            f"totals do not add up: {scored_out.rows} scored + {rejected_out.rows} rejected "
            f"!= {input_rows} read"
        )
    summary = BatchSummary(
        input_rows=input_rows,
        scored=scored_out.rows,
        rejected=rejected_out.rows,
        declined=declined,
        model_version=ref.version,
        model_family=ref.family,
        fast_path=model.fast_path,
        output=str(output_path),
        rejects=str(rejects),
        seconds=time.perf_counter() - started,
        reasons=policy.describe(model),
    )
    log.info(
        "scored %d of %d row(s) with %s v%d (%d declined), %d rejected -> %s, %s (%.0f rows/s)",
        summary.scored,
        input_rows,
        ref.family,
        ref.version,
        declined,
        summary.rejected,
        output_path,
        rejects,
        summary.rows_per_second,
    )
    return summary


def _row_count(path: Path) -> int | None:
    """Rows of a Parquet file from its footer; None for CSV (not known without reading it)."""
    if file_format(path) != "parquet" or not path.is_file():
        return None
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)
