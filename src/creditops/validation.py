"""The contract's rules applied to a table's rows: every violation, or one pass for a batch.

:func:`validate_rows` names every broken rule of every row (row, field, value,
rule), for reject files, data loading and monitoring. :func:`checked_features`
reads a whole batch chunk's features as numbers and marks the rows that break
a rule, in one pass over the columns; both read a column through
:func:`check_column`, so they can never disagree on which rows are broken.
The rules themselves are the fields of :mod:`creditops.schema`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from creditops.schema import (
    FEATURES,
    FIELDS,
    LABELS,
    TARGET,
    CategoricalField,
    Field,
    NumericField,
    Violation,
)


@dataclass(frozen=True)
class CheckedColumn:
    """One contract column read as numbers and checked against its field's rules.

    Attributes:
        values: float64 per row: the number, or the category's index in the
            contract; NaN where the cell is missing or breaks a rule of its type.
        missing: the rows with no value.
        broken: ``(rows, rule, cell)`` for every rule but "is required", in the
            order messages give them; ``cell``: the message shows the cell as
            written (else its number).
    """

    values: np.ndarray
    missing: np.ndarray
    broken: tuple[tuple[np.ndarray, str, bool], ...]

    def bad(self, spec: Field) -> np.ndarray:
        """The rows that break at least one of ``spec``'s rules."""
        out = self.missing.copy() if not spec.nullable else np.zeros(len(self.missing), bool)
        for rows, _, _ in self.broken:
            out |= rows
        return out


def check_column(spec: Field, column: pd.Series) -> CheckedColumn:
    """``column`` read as ``spec``'s numbers, and the rows that break each of its rules."""
    if isinstance(spec, CategoricalField):
        return _check_categories(spec, column)
    return _check_numbers(spec, column)


def validate_rows(frame: pd.DataFrame, *, first_row: int = 1) -> list[Violation]:
    """Every contract violation of every row, vectorised.

    Args:
        frame: a table holding the contract's feature columns (and maybe ``Status``).
        first_row: the number given to the frame's first row in messages.

    Returns:
        The violations, sorted by row then by field order.
    """
    violations: list[Violation] = []
    rows = np.arange(first_row, first_row + len(frame))
    for name, spec in FIELDS.items():
        if name not in frame:
            continue
        column = frame[name]
        checked = check_column(spec, column)
        if not spec.nullable:
            violations += [
                Violation(int(rows[i]), name, None, "is required")
                for i in np.flatnonzero(checked.missing)
            ]
        for broken, rule, cell in checked.broken:
            violations += [
                Violation(
                    int(rows[i]), name, column.iloc[i] if cell else _py(checked.values[i]), rule
                )
                for i in np.flatnonzero(broken)
            ]
    if TARGET in frame:
        target = frame[TARGET]
        for i in np.flatnonzero(~target.isin(LABELS).to_numpy()):
            value = target.iloc[i]
            violations.append(
                Violation(
                    int(rows[i]),
                    TARGET,
                    None if pd.isna(value) else value,
                    "is not one of good, bad",
                )
            )
    order = {name: i for i, name in enumerate((*FEATURES, TARGET))}
    return sorted(violations, key=lambda v: (v.row, order[v.field]))


def checked_features(frame: pd.DataFrame, out: np.ndarray) -> np.ndarray:
    """The contract's features as numbers in ``out``'s first columns; the rows breaking a rule.

    ``out[:, j]`` gets ``FEATURES[j]`` as :func:`check_column` reads it (a
    category as its index in the contract): for the rows that break no rule,
    the numbers :func:`creditops.schema.coerce_features` would give. A batch scorer checks a
    whole chunk this way and asks :func:`validate_rows` for messages only
    about the rows returned.

    Returns:
        A boolean per row: True where :func:`validate_rows` finds a violation.
    """
    bad = np.zeros(len(frame), dtype=bool)
    for j, name in enumerate(FEATURES):
        spec = FIELDS[name]
        checked = check_column(spec, frame[name])
        out[:, j] = checked.values
        bad |= checked.bad(spec)
    return bad


def _check_categories(spec: CategoricalField, column: pd.Series) -> CheckedColumn:
    index = {c: i for i, c in enumerate(spec.categories)}
    values: np.ndarray
    if isinstance(column.dtype, pd.CategoricalDtype):  # a code per cell: one lookup per category
        codes = column.cat.codes.to_numpy()
        known = [index.get(c, np.nan) for c in column.cat.categories]
        values = np.asarray([*known, np.nan], dtype=np.float64)[codes]  # code -1: missing
        missing = codes < 0
    else:
        missing = column.isna().to_numpy()
        values = column.map(index).to_numpy(dtype=np.float64, na_value=np.nan)
    unknown = ~missing & np.isnan(values)
    return CheckedColumn(
        values, missing, ((unknown, f"is not one of {', '.join(spec.categories)}", True),)
    )


def _check_numbers(spec: NumericField, column: pd.Series) -> CheckedColumn:
    if column.dtype == np.float64:  # numbers already: NaN is the only missing value
        values = column.to_numpy()
        missing = np.isnan(values)
    else:
        missing = column.isna().to_numpy()
        values = _numbers_of(column)
    not_number = ~missing & np.isnan(values)
    finite = np.isfinite(values)
    with np.errstate(invalid="ignore"):
        low = finite & (values <= spec.minimum if spec.exclusive_minimum else values < spec.minimum)
        high = finite & (values > spec.maximum)
        fractional = finite & spec.integer & (values != np.round(values))
    low_rule = (
        f"must be greater than {_num(spec.minimum)}"
        if spec.exclusive_minimum
        else f"is below the minimum {_num(spec.minimum)}"
    )
    return CheckedColumn(
        values,
        missing,
        (
            (not_number, "is not a number", True),
            (~missing & ~not_number & ~finite, "is not finite", False),
            (low, low_rule, False),
            (high, f"is above the maximum {_num(spec.maximum)}", False),
            (fractional, "must be a whole number", False),
        ),
    )


def _numbers_of(column: pd.Series) -> np.ndarray:
    """A column's cells as float64; NaN where a cell is not a number.

    A truth value, a date or a duration is not a number, though pandas would
    make one of it (1.0 for True, nanoseconds for a date): the service refuses
    them too.
    """
    if isinstance(column.dtype, pd.CategoricalDtype):  # each category once; code -1: missing
        labels = _numbers_of(pd.Series(column.cat.categories.to_numpy(dtype=object)))
        return np.append(labels, np.nan)[column.cat.codes.to_numpy()]  # type: ignore[no-any-return]
    kind = column.dtype.kind
    if kind in "bmM":
        return np.full(len(column), np.nan)
    if kind == "O":
        odd = column.map(lambda v: isinstance(v, bool | np.bool_ | datetime | timedelta))
        if odd.any():
            column = column.mask(odd.astype(bool), "")  # "": not a number, not missing
    values: np.ndarray = pd.to_numeric(column, errors="coerce").to_numpy(
        dtype="float64", na_value=np.nan
    )
    return values


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _py(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def rows_with_violations(violations: Sequence[Violation], first_row: int = 1) -> np.ndarray:
    """Zero-based positions of the rows named by ``violations``."""
    return np.unique(np.fromiter((v.row - first_row for v in violations), dtype=np.int64))
