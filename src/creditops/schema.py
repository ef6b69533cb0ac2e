"""The applicant contract: the one source of truth for columns, types, categories and ranges.

Training, serving, simulation and monitoring all read the contract from here.

Two kinds of limits are kept per numeric field:

* ``minimum`` / ``maximum`` are the *validity* limits: a value outside them is
  refused everywhere (an applicant younger than 18, a negative debt).
* ``observed`` is the range seen in the reference data (the original
  pipeline's "Valores limites" table). A value outside it is valid but unseen:
  the scorer still answers, and monitoring counts it as a sign of drift.

The raw ``credit_data`` file codes a missing Income as 0 or 99999999 (and a
missing Assets or Debt as 99999999); :func:`normalize_raw` turns those codes
into proper missing values before anything else sees the data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from creditops.errors import ContractError

TARGET = "Status"
POSITIVE_LABEL = "bad"  # the event we predict: the applicant defaults
NEGATIVE_LABEL = "good"
LABELS = (NEGATIVE_LABEL, POSITIVE_LABEL)
MISSING_CODE = 99999999


@dataclass(frozen=True)
class NumericField:
    """A numeric applicant attribute."""

    name: str
    description: str
    minimum: float
    maximum: float
    observed: tuple[float, float]
    integer: bool = False
    nullable: bool = False
    exclusive_minimum: bool = False


@dataclass(frozen=True)
class CategoricalField:
    """A categorical applicant attribute."""

    name: str
    description: str
    categories: tuple[str, ...]
    nullable: bool = False


Field = NumericField | CategoricalField

FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        NumericField("Seniority", "years in the current job", 0, 60, (0, 48), integer=True),
        CategoricalField(
            "Home",
            "type of home ownership",
            ("rent", "owner", "parents", "priv", "other", "ignore"),
            nullable=True,
        ),
        NumericField(
            "Time", "term of the requested loan, in months", 1, 120, (6, 72), integer=True
        ),
        NumericField("Age", "age of the applicant, in years", 18, 100, (18, 68), integer=True),
        CategoricalField(
            "Marital",
            "marital status",
            ("married", "widow", "single", "separated", "divorced"),
            nullable=True,
        ),
        CategoricalField("Records", "has records of unpaid credit", ("no", "yes")),
        CategoricalField(
            "Job", "type of job", ("freelance", "fixed", "partime", "others"), nullable=True
        ),
        NumericField("Expenses", "monthly expenses", 0, 2_000, (35, 180)),
        NumericField(
            "Income",
            "monthly income (0 is not an income: send null when unknown)",
            0,
            10_000,
            (6, 959),
            nullable=True,
            exclusive_minimum=True,
        ),
        NumericField(
            "Assets", "value of the applicant's assets", 0, 5_000_000, (0, 300_000), nullable=True
        ),
        NumericField("Debt", "amount of current debt", 0, 1_000_000, (0, 30_000), nullable=True),
        # Money: amounts with cents are valid (the dataset's are whole, a lender's need not be).
        NumericField("Amount", "amount of the requested loan", 1, 100_000, (100, 5_000)),
        NumericField("Price", "price of the good being bought", 1, 200_000, (105, 11_140)),
    )
}

# The first applicant of credit_data: valid, and used as the documented example.
EXAMPLE_APPLICANT: dict[str, object] = {
    "Seniority": 9,
    "Home": "rent",
    "Time": 60,
    "Age": 30,
    "Marital": "married",
    "Records": "no",
    "Job": "freelance",
    "Expenses": 73,
    "Income": 129,
    "Assets": 0,
    "Debt": 0,
    "Amount": 800,
    "Price": 846,
}

FEATURES: tuple[str, ...] = tuple(FIELDS)
NUMERIC: tuple[str, ...] = tuple(n for n, f in FIELDS.items() if isinstance(f, NumericField))
CATEGORICAL: tuple[str, ...] = tuple(
    n for n, f in FIELDS.items() if isinstance(f, CategoricalField)
)
NULLABLE: tuple[str, ...] = tuple(n for n, f in FIELDS.items() if f.nullable)
# Columns the raw file may carry besides the contract; dropped on load.
IGNORED_COLUMNS = ("rownames", "Unnamed: 0", "")


@dataclass(frozen=True)
class Violation:
    """One broken rule: a row (1-based, as counted in the input), a field, its value and the rule."""

    row: int
    field: str
    value: object
    rule: str

    def __str__(self) -> str:
        return f"row {self.row}, {self.field}: {show_value(self.value)} {self.rule}"

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form, for API error bodies and reject files."""
        value = self.value
        if isinstance(value, float) and not math.isfinite(value):
            value = str(value)
        elif isinstance(value, np.generic):
            value = value.item()
        return {"row": self.row, "field": self.field, "value": value, "rule": self.rule}


def show_value(value: object) -> str:
    """A cell value as an error message shows it: text quoted, a missing value as "missing"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "missing"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def check_columns(columns: Iterable[str], *, require_target: bool = False) -> None:
    """Refuse a table whose columns are not exactly the contract's.

    Raises:
        ContractError: naming every missing and every extra column.
    """
    present = [str(c) for c in columns if str(c) not in IGNORED_COLUMNS]
    expected = list(FEATURES) + ([TARGET] if require_target else [])
    allowed = set(expected) | {TARGET}
    missing = [c for c in expected if c not in present]
    extra = [c for c in present if c not in allowed]
    problems = []
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected column(s): {', '.join(extra)}")
    if problems:
        raise ContractError(
            "; ".join(problems) + f" (the contract's columns are: {', '.join(expected)})"
        )


def normalize_raw(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn the raw file's codes for "missing" into real missing values.

    Income 0 and 99999999 mean "unknown"; so does 99999999 in Assets and Debt.
    Categorical text is stripped and lower-cased; empty strings become missing.
    Returns a new frame; the input is left as it was.
    """
    out = frame.copy()
    for name in ("Income", "Assets", "Debt"):
        if name in out:
            col = pd.to_numeric(out[name], errors="coerce").astype("float64")
            codes = col >= MISSING_CODE
            if name == "Income":
                codes |= col == 0
            out[name] = col.mask(codes)
    for name in (*CATEGORICAL, TARGET):
        if name in out:
            col = out[name]
            text = col.astype("object").where(col.isna(), col.astype(str).str.strip().str.lower())
            blank = text.isin(["", "nan", "none", "0"])
            out[name] = text.astype("object").mask(blank | text.isna(), np.nan)
    return out


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
    the numbers :func:`coerce_features` would give. A batch scorer checks a
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


def coerce_features(frame: pd.DataFrame) -> pd.DataFrame:
    """The contract's columns, in the contract's order and dtypes (float64 / object).

    The frame must already satisfy the contract; this only fixes the layout so
    that every model sees exactly the same columns as in training.
    """
    out = pd.DataFrame(index=frame.index)
    for name in FEATURES:
        if name in CATEGORICAL:
            col = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
            out[name] = col.astype("object").where(col.notna(), np.nan)
        else:
            col = frame[name] if name in frame else pd.Series(np.nan, index=frame.index)
            out[name] = pd.to_numeric(col, errors="coerce").astype("float64")
    return out


def rows_with_violations(violations: Sequence[Violation], first_row: int = 1) -> np.ndarray:
    """Zero-based positions of the rows named by ``violations``."""
    return np.unique(np.fromiter((v.row - first_row for v in violations), dtype=np.int64))


def describe_contract() -> dict[str, object]:
    """The contract as JSON-ready data (served by ``GET /model``)."""
    out: dict[str, object] = {}
    for name, spec in FIELDS.items():
        if isinstance(spec, NumericField):
            out[name] = {
                "type": "integer" if spec.integer else "number",
                "description": spec.description,
                "minimum": spec.minimum,
                "maximum": spec.maximum,
                "exclusive_minimum": spec.exclusive_minimum,
                "observed_range": list(spec.observed),
                "nullable": spec.nullable,
            }
        else:
            out[name] = {
                "type": "category",
                "description": spec.description,
                "categories": list(spec.categories),
                "nullable": spec.nullable,
            }
    return out


# the version tag recording which applicant contract a model was trained on
CONTRACT_TAG = "contract"


def contract_digest() -> str:
    """A short digest of the contract (columns, types, ranges, categories).

    Two models with the same digest take the same applicants: what a shadow
    comparison requires before it sets their scores side by side.
    """
    import hashlib
    import json

    text = json.dumps(describe_contract(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
