"""A declined applicant's reasons: the inputs that lowered their standing most, as reason codes.

One method everywhere: the service's ``POST /predict``, batch scoring and the
Dask path all rank a row's decision-path contributions (:data:`REASON_METHOD`,
see :mod:`creditops.inference.contributions`) with :func:`rank_reasons` and
name them with :mod:`creditops.reason_codes`, so the same applicant gets the
same reasons in the same order from every path. A contribution is measured
against the average training applicant (the model's output before any split:
the root's value); a positive one raised this applicant's risk above it.

Only declined rows get reasons; protected attributes (and derived features
made from one) are never among them, whatever the model was trained on.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from creditops import schema
from creditops.inference.raw import RAW_INDEX, Matrix
from creditops.reason_codes import ReasonCode, allowed_sources, reason_code

if TYPE_CHECKING:
    import pyarrow as pa

# The boosters' decision-path contributions (the forest's and the logistic
# regression's are the same either way): exact tree SHAP costs some 30 times as much.
REASON_METHOD = "path"
Reason = dict[str, Any]


def top_contributions(contributions: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_k`` largest contributions of each row, strongest first.

    Ties keep the sources' order (a stable sort).

    Args:
        contributions: rows x sources.
        top_k: how many per row at most (capped at the number of sources).

    Returns:
        ``(order, values)``, both rows x k: the source index and the value of
        each row's k largest contributions.
    """
    k = max(0, min(top_k, contributions.shape[1]))
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(contributions, order, axis=1)


@dataclass(frozen=True)
class ReasonNames:
    """What the reasons of one model may name: its sources less the protected ones.

    Attributes:
        sources: the model's source columns (contract fields and derived ratios).
        allowed: positions in ``sources`` that may be given as reasons.
        codes: the reason code of each allowed source, in ``allowed``'s order.
    """

    sources: tuple[str, ...]
    allowed: np.ndarray
    codes: tuple[ReasonCode, ...]

    @classmethod
    def of(cls, sources: Sequence[str], protected: Sequence[str]) -> ReasonNames:
        """The names of ``sources`` that are neither ``protected`` nor made from one."""
        allowed = allowed_sources(sources, protected)
        return cls(
            tuple(sources),
            np.asarray(allowed, dtype=np.int64),
            tuple(reason_code(sources[i]) for i in allowed),
        )


@functools.lru_cache(maxsize=64)
def names_for(sources: tuple[str, ...], protected: tuple[str, ...]) -> ReasonNames:
    """:meth:`ReasonNames.of`, built once per (model sources, protected inputs)."""
    return ReasonNames.of(sources, protected)


def rank_reasons(contributions: Matrix, names: ReasonNames, top_k: int) -> tuple[Matrix, Matrix]:
    """Each row's reasons: the allowed sources that raised its risk most, strongest first.

    A reason is a positive contribution (the input moved this applicant's
    risk above the average applicant's). A row with none still gets its one
    least favourable input: a declined applicant is owed a reason.

    Args:
        contributions: rows x sources (the declined rows).
        names: the model's reason names.
        top_k: at most this many per row.

    Returns:
        ``(order, count)``: rows x k positions in ``names.codes``, strongest
        first, and how many of each row's are reasons (at least 1 when any
        source is allowed).
    """
    picked = contributions[:, names.allowed]
    order, top = top_contributions(picked, top_k)
    count = (top > 0).sum(axis=1)  # positives come first: a row's later values are smaller
    if order.shape[1]:
        count = np.maximum(count, 1)
    return order, count


def applicant_value(feature: str, raw_value: float) -> Any:
    """The applicant's value of ``feature`` as a reason shows it (None when missing).

    Categories by their label, whole-number fields as integers, other numbers
    (money, the derived ratios) as floats.
    """
    if math.isnan(raw_value) or math.isinf(raw_value):
        return None
    spec = schema.FIELDS.get(feature)
    if isinstance(spec, schema.CategoricalField):
        return spec.categories[int(raw_value)]
    if isinstance(spec, schema.NumericField) and spec.integer:
        return int(raw_value)
    return raw_value


def reason_lists(
    contributions: Matrix, raw: Matrix, names: ReasonNames, top_k: int
) -> list[list[Reason]]:
    """The reasons of each row, as every output shows them.

    Args:
        contributions: rows x sources of the rows owed reasons.
        raw: the same rows' raw matrix (:mod:`creditops.inference.raw`): their values.
        names: the model's reason names.
        top_k: at most this many per row.
    """
    order, count = rank_reasons(contributions, names, top_k)
    codes = names.codes
    columns = [RAW_INDEX[c.feature] for c in codes]
    out: list[list[Reason]] = []
    for i in range(len(order)):
        row = raw[i]
        out.append(
            [
                codes[j].as_reason(applicant_value(codes[j].feature, float(row[columns[j]])))
                for j in order[i, : count[i]].tolist()
            ]
        )
    return out


def reason_texts(contributions: Matrix, raw: Matrix, names: ReasonNames, top_k: int) -> np.ndarray:
    """``orjson.dumps(reason_lists(...))`` per row, as Python strings (see :func:`reason_text_array`)."""
    return reason_text_array(contributions, raw, names, top_k).to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]


def reason_text_array(
    contributions: Matrix, raw: Matrix, names: ReasonNames, top_k: int
) -> pa.StringArray:
    """``orjson.dumps(reason_lists(...))`` per row, as an Arrow array (batch's ``reasons`` column).

    The same text as serialising :func:`reason_lists` (a test holds them
    equal), built column-wise by Arrow's string kernels, which release the
    interpreter lock: one ``{"code", "sentence", "feature", "value"}`` piece
    per rank (the code's fixed text, taken by code, and the applicant's value
    as JSON), then the ranks joined. Only the numbers' JSON is made by
    orjson, one call per (rank, code).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    order, count = rank_reasons(contributions, names, top_k)
    n = len(order)
    head = [orjson.dumps(code.as_reason(None))[:-5].decode() for code in names.codes]
    parts: list[pa.Array] = []
    for rank in range(order.shape[1]):
        present = np.flatnonzero(count > rank)
        if not len(present):
            break
        codes = order[present, rank]
        values = _rank_values(names, codes, raw[present])
        prefix = pa.array([("," if rank else "") + h for h in head]).take(pa.array(codes))
        piece = pc.binary_join_element_wise(prefix, values, "}", "")
        if len(present) < n:  # rows with fewer reasons: "" at this rank
            mask = np.zeros(n, dtype=bool)
            mask[present] = True
            piece = pc.replace_with_mask(pa.nulls(n, pa.string()), pa.array(mask), piece)
        parts.append(pc.fill_null(piece, ""))
    if not parts:  # no reasons at all: an empty list each
        parts.append(pc.fill_null(pa.nulls(n, pa.string()), ""))
    return pc.binary_join_element_wise("[", *parts, "]", "")  # type: ignore[no-any-return]


def _rank_values(names: ReasonNames, codes: np.ndarray, raw: Matrix) -> pa.StringArray:
    """The JSON of the value each row's ``codes`` entry names, as an Arrow array in row order."""
    import pyarrow as pa

    groups = [(j, np.flatnonzero(codes == j)) for j in np.unique(codes).tolist()]
    texts = pa.concat_arrays(
        [
            _value_array(names.codes[j].feature, raw[rows, RAW_INDEX[names.codes[j].feature]])
            for j, rows in groups
        ]
    )
    if len(groups) == 1:
        return texts
    placed = np.concatenate([rows for _, rows in groups])
    return texts.take(pa.array(np.argsort(placed, kind="stable")))


def _value_array(feature: str, column: Matrix) -> pa.StringArray:
    """:func:`_value_texts` as an Arrow string array."""
    import pyarrow as pa

    spec = schema.FIELDS.get(feature)
    missing = ~np.isfinite(column)
    if isinstance(spec, schema.CategoricalField):
        labels = pa.array([orjson.dumps(c).decode() for c in spec.categories] + ["null"])
        codes = np.where(missing, len(spec.categories), np.nan_to_num(column)).astype(np.int64)
        return labels.take(pa.array(codes))  # type: ignore[no-any-return]
    if isinstance(spec, schema.NumericField) and spec.integer:
        import pyarrow.compute as pc

        numbers = pa.array(np.where(missing, 0, column).astype(np.int64), mask=missing)
        return pc.fill_null(pc.cast(numbers, pa.string()), "null")  # type: ignore[no-any-return]
    return pa.array(_value_texts(feature, column).tolist(), type=pa.string())


def _value_texts(feature: str, column: Matrix) -> np.ndarray:
    """The JSON of :func:`applicant_value` for each value of one column."""
    spec = schema.FIELDS.get(feature)
    missing = ~np.isfinite(column)
    if isinstance(spec, schema.CategoricalField):
        labels = np.asarray(
            [orjson.dumps(c).decode() for c in spec.categories] + ["null"], dtype=object
        )
        codes = np.where(missing, len(spec.categories), np.nan_to_num(column)).astype(np.int64)
        return labels[codes]  # type: ignore[no-any-return]
    if isinstance(spec, schema.NumericField) and spec.integer:
        numbers: np.ndarray = np.where(missing, 0, column).astype(np.int64)
    else:
        numbers = np.where(missing, np.nan, column)  # inf is missing too, as null
    texts = np.asarray(
        orjson.dumps(numbers, option=orjson.OPT_SERIALIZE_NUMPY).decode()[1:-1].split(","),
        dtype=object,
    )
    texts[missing] = "null"
    return texts
