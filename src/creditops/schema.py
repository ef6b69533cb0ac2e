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
from collections.abc import Iterable
from dataclasses import dataclass

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
