"""Batch files in and out: CSV or Parquet (by suffix), read and written through pyarrow.

The input is streamed in frames of ``[batch] chunk_rows`` rows, so memory stays
bounded whatever the file's size; the outputs are appended frame by frame. The
column types of a CSV are given, not inferred (:func:`_csv_batches`), so a
cell that is not a number, wherever it is in the file, is a contract violation
of its row (a reject), never a read failure; the columns outside the contract
are carried as written (text, leading zeros kept).

Both outputs are written under a temporary name beside them and renamed into
place only when the whole run succeeded (:class:`FrameWriter`).

Output columns: ``row`` (1-based, as counted in the input), the carried
columns, ``probability``, ``decision`` (approve/decline at the model's
threshold), ``reasons`` (a JSON list of ``{"code", "sentence", "feature", "value"}``,
strongest first, as ``POST /predict`` gives them; empty where none are owed),
``model_version``.
Rejects: ``row``, ``reasons`` (the broken rules), and the row's columns as read.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from creditops import schema
from creditops.errors import DataError, first_line

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
CSV_BLOCK_BYTES = 1 << 24
# what pyarrow's cast from text to float64 takes (no blanks, no thousands separator)
_PLAIN_NUMBER = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


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


def _csv_names(path: Path) -> list[str]:
    """The CSV's column names, from its header line."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as text:
        return next(csv.reader(text), [])


def _open_csv(path: Path, names: list[str], numbers: pa.DataType) -> pa.RecordBatchReader:
    """pyarrow's streaming reader of a CSV: the contract's numbers as ``numbers``, others text.

    The contract's text columns are read as dictionaries (pandas categoricals):
    a few categories, not a Python string per cell.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    labels = pa.dictionary(pa.int32(), pa.string())
    types = {
        name: numbers
        if name in schema.NUMERIC
        else labels
        if name in schema.CATEGORICAL
        else pa.string()
        for name in names
    }
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            strings_can_be_null=True,  # an empty field is missing, as in pandas
        ),
    )


def _csv_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """A CSV's record batches, every column's type given rather than inferred.

    pyarrow infers a column's type from the file's first block and fails on a
    later block that does not fit it, so ``abc`` in a number column at row
    1,000,000 would abort the run. The contract's number columns are read as
    float64 instead (as fast as inference), its text columns as dictionaries,
    the others as text, as written. A block with a cell that is not a number
    fails to convert: the file is then read again from its start with the
    number columns as text, the rows already given skipped (one more pass over
    the rows before that block, for such a file only), and :func:`_frame`
    makes them numbers batch by batch.
    """
    import pyarrow as pa

    names = _csv_names(path)
    given = 0
    try:
        for batch in _open_csv(path, names, pa.float64()):
            yield batch
            given += batch.num_rows
        return
    except pa.ArrowInvalid as exc:
        log.info("%s: %s; reading its number columns as text", path, first_line(exc))
    seen = 0
    for batch in _open_csv(path, names, pa.string()):
        seen += batch.num_rows
        if seen > given:
            yield batch.slice(max(0, given - (seen - batch.num_rows)))


def _record_batches(path: Path, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """The file's record batches as pyarrow reads them (their sizes are pyarrow's)."""
    import pyarrow.parquet as pq

    if file_format(path) == "parquet":
        # the contract's text columns as dictionaries (pandas categoricals): a few
        # categories, not a Python string per cell; a column of another type is read as it is
        present = set(pq.ParquetFile(path).schema_arrow.names)
        categories = [name for name in schema.CATEGORICAL if name in present]
        reader = pq.ParquetFile(path, read_dictionary=categories or None)
        return iter(reader.iter_batches(batch_size=chunk_rows))
    return _csv_batches(path)


def _numbers(text: pa.Array) -> pa.Array | np.ndarray:
    """A text column as numbers; where a cell is not a plain number, the cell's text.

    The whole column is cast at once (pyarrow's parser, the same numbers as a
    CSV column read as float64); only when that fails are the cells that do
    not look like numbers kept as text (an object array), for the contract
    check to name them with their value, the others still cast by pyarrow.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        return pc.cast(text, pa.float64())
    except pa.ArrowInvalid:
        pass
    plain = pc.fill_null(pc.match_substring_regex(text, _PLAIN_NUMBER), True)
    try:
        numbers = pc.cast(pc.if_else(plain, text, None), pa.float64())
    except pa.ArrowInvalid:  # plain-looking but out of pyarrow's reach: all as text
        return np.asarray(text.to_pandas(), dtype=object)
    out = numbers.to_numpy(zero_copy_only=False).astype(object)
    odd = np.flatnonzero(~plain.to_numpy(zero_copy_only=False))
    out[odd] = text.take(pa.array(odd)).to_pylist()
    return out


def _frame(batch: pa.RecordBatch) -> pd.DataFrame:
    """A record batch as a frame, the contract's number columns read as text made numbers."""
    import pyarrow as pa

    columns = list(batch.columns)
    as_text: dict[str, np.ndarray] = {}
    for i, name in enumerate(batch.schema.names):
        kind = columns[i].type
        if name in schema.NUMERIC and (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            numbers = _numbers(columns[i])
            if isinstance(numbers, np.ndarray):
                as_text[name] = numbers
                numbers = pa.nulls(len(batch), pa.float64())
            columns[i] = numbers
    frame: pd.DataFrame = pa.RecordBatch.from_arrays(columns, names=batch.schema.names).to_pandas()
    for name, values in as_text.items():
        frame[name] = values
    return frame


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The frames end to end, a column of categories kept as categories.

    Each CSV block or Parquet row group has its own dictionary; pandas would
    turn categoricals of different categories into a string per cell.
    """
    if len(frames) > 1:
        for name in frames[0].columns:
            kinds = [frame[name].dtype for frame in frames]
            labels = [k.categories.to_numpy() for k in kinds if isinstance(k, pd.CategoricalDtype)]
            if len(set(kinds)) > 1 and len(labels) == len(kinds):
                every = pd.Index(np.concatenate(labels)).unique()
                frames = [f.assign(**{name: f[name].cat.set_categories(every)}) for f in frames]
    return pd.concat(frames, ignore_index=True)


def read_chunks(path: Path, chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The file as frames of at most ``chunk_rows`` rows.

    The contract's number columns are float64, or object where a cell is not a
    number (that cell holds its text, for the contract check); its text
    columns are categoricals where the file holds text (their labels as
    written); the other columns of a CSV are text, as written.

    Raises:
        DataError: the file is missing or cannot be read.
    """
    import pyarrow as pa

    try:
        pending: list[pd.DataFrame] = []
        size = 0
        for batch in _record_batches(path, chunk_rows):
            frame = _frame(batch)
            while len(frame):
                take = frame.iloc[: chunk_rows - size]
                frame = frame.iloc[len(take) :]
                pending.append(take)
                size += len(take)
                if size >= chunk_rows:
                    yield _concat(pending)
                    pending, size = [], 0
        if pending:
            yield _concat(pending)
    except FileNotFoundError as exc:
        raise DataError(f"input file {path} not found") from exc
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {path}: {first_line(exc)}") from exc


class FrameWriter:
    """Appends frames to a CSV or Parquet file through pyarrow, under a temporary name.

    The frames go to :attr:`partial` (``.scores.csv.partial-<pid>``, in the
    output's folder, so that the final rename stays on one file system);
    :meth:`commit` renames it to :attr:`path` once the whole run has
    succeeded, and :meth:`discard` removes it when the run failed, so an
    earlier run's file is never left half overwritten. The file is created by
    the first frame written; its columns' types are that frame's, and later
    frames are cast to them.

    Attributes:
        path: the file written.
        partial: the temporary name it is written under.
        kind: ``csv`` or ``parquet``.
        rows: the rows written so far.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
        self.kind = file_format(path)
        self._writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
        self._schema: pa.Schema | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame`` (the file is created on the first call).

        Raises:
            DataError: the file cannot be written (a full disk, no permission).
        """
        import pyarrow as pa

        table = pa.Table.from_pandas(frame, preserve_index=False)
        try:
            if self._writer is None:
                self._writer = self._open(table.schema)
                self._schema = table.schema
            self._writer.write_table(table.cast(self._schema))
        except OSError as exc:
            raise self._failed(exc) from exc
        self.rows += len(frame)

    def _open(self, columns: pa.Schema) -> pq.ParquetWriter | pacsv.CSVWriter:
        """The pyarrow writer of :attr:`partial`, its folder created if need be."""
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        self.partial.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "parquet":
            return pq.ParquetWriter(self.partial, columns)
        return pacsv.CSVWriter(self.partial, columns)

    def _failed(self, exc: OSError) -> DataError:
        return DataError(f"cannot write {self.path}: {first_line(exc)}")

    def close(self, empty: pd.DataFrame) -> None:
        """Finish the file; one with ``empty``'s header when nothing was written.

        Raises:
            DataError: the file cannot be written.
        """
        if self._writer is None:  # nothing written: an empty file with the header
            self.write(empty)
        assert self._writer is not None  # write() created it
        try:
            self._writer.close()
        except OSError as exc:
            raise self._failed(exc) from exc

    def commit(self) -> None:
        """Put the finished file in place (an atomic rename over any earlier one).

        Raises:
            DataError: the rename failed.
        """
        try:
            os.replace(self.partial, self.path)
        except OSError as exc:
            raise self._failed(exc) from exc

    def discard(self) -> None:
        """Remove the unfinished file; :attr:`path` is left as it was."""
        writer, self._writer = self._writer, None
        if writer is not None:
            with contextlib.suppress(Exception):  # the run's own error is the one to report
                writer.close()
        with contextlib.suppress(OSError):
            self.partial.unlink(missing_ok=True)


def row_count(path: Path) -> int | None:
    """Rows of a Parquet file from its footer; None for CSV (not known without reading it).

    Raises:
        DataError: the file is not Parquet (no footer: truncated, or another format).
    """
    if file_format(path) != "parquet" or not path.is_file():
        return None
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"cannot read {path}: {first_line(exc)}") from exc
