"""The unit of batch work: one numbered chunk of the input, validated and scored.

:func:`score_chunk` checks a chunk against the contract in one pass over
its columns (``raw.checked_raw_matrix``): rows that break it become rejects
carrying every broken rule (``validation.validate_rows`` of those rows alone),
never dropped silently; the others are scored by the compiled
scorer (:mod:`creditops.inference.scorer`: the same numbers as the service)
with their probability of default, decision and top reasons. The same function
runs in this process or on a Dask worker (:mod:`creditops.batch.engines`), so
both engines write the same files. Nothing here reads or writes a file.

Reasons follow :class:`ReasonPolicy`: by default only declined rows get them
(the adverse decisions that owe an explanation), as ``POST /predict`` gives
them: a JSON list of ``{"code", "sentence", "feature", "value"}``, strongest
first, never a protected attribute (:mod:`creditops.inference.reasons`, the
service's method and codes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import pandas as pd

from creditops import schema, validation
from creditops.config import BatchConfig
from creditops.errors import ContractError
from creditops.inference.reasons import REASON_METHOD, names_for, reason_text_array
from creditops.reason_codes import DEFAULT_PROTECTED

if TYPE_CHECKING:
    from creditops.inference.scorer import LoadedModel

SCORE_SLICE_ROWS = 16_384
T = TypeVar("T")


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
            ContractError: a contract column is missing from the first chunk, or
                a column is named twice.
        """
        chunk = next(self._chunks)
        if self._next_row == 1:
            names = [str(c) for c in chunk.columns]
            twice = sorted({c for c in names if names.count(c) > 1})
            if twice:
                raise ContractError(
                    f"{self._source}: column(s) {', '.join(twice)} appear more than once "
                    "(each column must be named once)"
                )
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
    """Which rows get reasons, how many, and which inputs they may never name.

    ``rows``: "declined" (adverse decisions only; approved rows get "") or "all".
    ``protected``: ``[fairness] protected``: never a reason, nor anything made from one.
    """

    top_k: int
    rows: str = "declined"
    protected: tuple[str, ...] = DEFAULT_PROTECTED

    def describe(self, model: LoadedModel) -> str:
        """What the reasons column holds, in words (for the run's summary)."""
        if self.top_k <= 0 or model.model is None:
            return "none"
        rows = "declined rows" if self.rows == "declined" else "every row"
        method = "decision-path contributions"
        if model.model.contribute_path is model.model.contribute:
            method = f"{model.ref.family} contributions"
        return f"top {self.top_k} reason codes for {rows}, {method}"

    @classmethod
    def from_config(
        cls, config: BatchConfig, protected: tuple[str, ...] = DEFAULT_PROTECTED
    ) -> ReasonPolicy:
        """The policy of ``[batch]`` (``reasons_top_k``, ``reasons_for``) and the protected inputs."""
        return cls(config.reasons_top_k, config.reasons_for, tuple(protected))


def _in_slices(
    work: Callable[[np.ndarray], np.ndarray], raw: np.ndarray, threads: int, most: int
) -> np.ndarray:
    """``work`` on slices of at most ``most`` rows, ``threads`` at a time, stacked."""
    return np.concatenate(_map_slices(work, raw, threads, most))


def slice_rows(model: LoadedModel) -> int:
    """The most rows the scorer is given at once: ``SCORE_SLICE_ROWS``, or its own lower bound."""
    own = model.model.slice_rows if model.model is not None else None
    return SCORE_SLICE_ROWS if own is None else min(own, SCORE_SLICE_ROWS)


def _map_slices(
    work: Callable[[np.ndarray], T], raw: np.ndarray, threads: int, most: int
) -> list[T]:
    """``work`` on slices of at most ``most`` rows, ``threads`` at a time, in order.

    Slices bound the scorer's temporaries (the random forest's walk holds
    rows x trees node arrays: GiBs for a whole 200,000-row chunk), and the
    threads use every core: the boosters' predictions and contributions,
    Arrow's string kernels and most of numpy release the GIL.
    """
    if len(raw) <= most:
        slices = [raw] if threads <= 1 or len(raw) < 2 * threads else np.array_split(raw, threads)
    else:
        slices = np.array_split(raw, -(-len(raw) // most))
    if len(slices) == 1 or threads <= 1:
        return [work(part) for part in slices]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(work, slices))


def _reasons(
    model: LoadedModel, raw: np.ndarray, decline: np.ndarray, policy: ReasonPolicy, threads: int
) -> pd.api.extensions.ExtensionArray | str:
    """The reasons column for scored rows: "" where none are owed or computable."""
    if policy.top_k <= 0 or model.model is None:
        return ""
    wanted = decline if policy.rows == "declined" else np.ones(len(raw), dtype=bool)
    if not wanted.any():
        return ""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = names_for(model.sources, policy.protected)

    def texts(part: np.ndarray) -> pa.Array:
        got = model.contributions(part, REASON_METHOD)
        assert got is not None  # model.model is set
        return reason_text_array(got, part, names, policy.top_k)

    column = pa.concat_arrays(_map_slices(texts, raw[wanted], threads, slice_rows(model)))
    if not wanted.all():  # the others: ""
        column = pc.replace_with_mask(pa.nulls(len(raw), pa.string()), pa.array(wanted), column)
        column = pc.fill_null(column, "")
    return pd.arrays.ArrowExtensionArray(column)


def _decisions(decline: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """The decision column, "decline" or "approve", as Arrow text (no Python string per row)."""
    import pyarrow as pa

    words = pa.array(["approve", "decline"])
    return pd.arrays.ArrowExtensionArray(words.take(pa.array(decline.view(np.int8))))


def _number_text(values: pd.Series) -> pd.Series:
    """Numbers as the contract's messages show them: whole ones without a ".0"."""
    numbers = pd.to_numeric(values, errors="coerce") if values.dtype == object else values
    whole = (numbers.abs() < 2**53) & (numbers == np.round(numbers))
    if values.dtype == object:  # text the reader kept (not a number) stays as written
        whole &= values.map(lambda v: isinstance(v, float)).astype(bool)
    text = values.astype("string")
    text[whole] = numbers[whole].astype("int64").astype("string")
    return text


def _cells_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Rejected rows' cells as text: the rejects file's columns are text whatever the input."""
    out = frame.astype("string")
    for name in schema.NUMERIC:  # other types (a file's categories, say) as written
        if name in frame and frame[name].dtype in (np.float64, object):
            out[name] = _number_text(frame[name])
    return out


def _refused(frame: pd.DataFrame, rows: np.ndarray, bad: np.ndarray) -> pd.DataFrame | None:
    """The rejects of the rows at positions ``bad``: their cells and every rule each breaks."""
    if not len(bad):
        return None
    broken = frame.iloc[bad]
    rules: dict[int, list[str]] = {}
    for v in validation.validate_rows(broken[list(schema.FEATURES)], first_row=0):
        rules.setdefault(v.row, []).append(f"{v.field}: {schema.show_value(v.value)} {v.rule}")
    refused = _cells_as_text(broken)
    refused.insert(0, "reasons", ["; ".join(rules[i]) for i in range(len(bad))])
    refused.insert(0, "row", rows[bad])
    return refused


def score_chunk(
    model: LoadedModel, chunk: NumberedChunk, *, reasons: ReasonPolicy, threads: int = 1
) -> ChunkResult:
    """Validate one chunk, score its valid rows, and describe the others' broken rules.

    The unit of work of both engines: the same function runs in this process or
    on a Dask worker.
    """
    from creditops.inference.raw import checked_raw_matrix

    frame, first = chunk.frame, chunk.first_row
    rows = np.arange(first, first + len(frame))
    raw, broken = checked_raw_matrix(frame)
    refused = _refused(frame, rows, np.flatnonzero(broken))
    keep = ~broken
    if not len(raw):
        return ChunkResult(len(frame), None, refused, 0)
    ref = model.ref
    probability = _in_slices(
        lambda part: model.score(part, reasons=False).probability, raw, threads, slice_rows(model)
    )
    decline = probability >= ref.threshold
    out = pd.DataFrame({"row": rows[keep]})
    for column in chunk.carried:
        out[column] = frame[column].to_numpy()[keep]
    out["probability"] = probability
    out["decision"] = _decisions(decline)
    out["reasons"] = _reasons(model, raw, decline, reasons, threads)
    out["model_version"] = ref.version
    return ChunkResult(len(frame), out, refused, int(decline.sum()))


def empty_scores(carried: tuple[str, ...]) -> pd.DataFrame:
    """The scores' columns with no row (written when no row was scored)."""
    return pd.DataFrame(
        {
            "row": pd.Series(dtype="int64"),
            **{c: pd.Series(dtype="string") for c in carried},
            "probability": pd.Series(dtype="float64"),
            "decision": pd.Series(dtype="string"),
            "reasons": pd.Series(dtype="string"),
            "model_version": pd.Series(dtype="int64"),
        }
    )


def empty_rejects() -> pd.DataFrame:
    """The rejects' columns with no row (written when no row was rejected)."""
    return pd.DataFrame({"row": pd.Series(dtype="int64"), "reasons": pd.Series(dtype="string")})
