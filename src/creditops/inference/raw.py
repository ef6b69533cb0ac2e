"""The raw float matrix every scoring path reads, and the contract frame behind it.

Columns are ``schema.FEATURES`` (categories as their index in the contract,
NaN for missing) followed by the ``features.DERIVED`` ratios, filled by
:func:`derive_columns`. Request rows (:func:`raw_matrix`) and contract frames
(:func:`raw_matrix_from_frame`) give the same matrix; :func:`frame_from_raw`
turns it back into the frame the registered pipeline takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from creditops import features, schema, validation

Matrix = np.ndarray
RAW_COLUMNS: tuple[str, ...] = (*schema.FEATURES, *features.DERIVED)
RAW_INDEX = {name: i for i, name in enumerate(RAW_COLUMNS)}
CATEGORY_CODES: dict[str, dict[str, int]] = {
    name: {c: i for i, c in enumerate(spec.categories)}
    for name, spec in schema.FIELDS.items()
    if isinstance(spec, schema.CategoricalField)
}


# each contract field, and its category codes (None for a number)
_FIELD_CODES = tuple((name, CATEGORY_CODES.get(name)) for name in schema.FEATURES)
_NO_RATIOS = [float("nan")] * len(features.DERIVED)


def raw_matrix(rows: Sequence[dict[str, Any]]) -> Matrix:
    """The raw float matrix of contract-valid rows (dicts; absent keys are missing)."""
    nan = float("nan")
    # one array from nested lists (None becomes NaN): a few rows cost half as much as
    # a column at a time, and a request is usually one row
    raw = np.array(
        [
            [
                row.get(name) if codes is None else codes.get(row.get(name), nan)  # type: ignore[arg-type]
                for name, codes in _FIELD_CODES
            ]
            + _NO_RATIOS
            for row in rows
        ],
        dtype=np.float64,
    ).reshape(len(rows), len(RAW_COLUMNS))
    derive_columns(raw)
    return raw


def raw_matrix_from_frame(frame: pd.DataFrame) -> Matrix:
    """The raw float matrix of a contract frame (as :func:`schema.coerce_features` makes)."""
    raw = np.empty((len(frame), len(RAW_COLUMNS)), dtype=np.float64)
    for j, name in enumerate(schema.FEATURES):
        codes = CATEGORY_CODES.get(name)
        if codes is None:
            raw[:, j] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            raw[:, j] = frame[name].map(codes).to_numpy(dtype=np.float64, na_value=np.nan)
    derive_columns(raw)
    return raw


def checked_raw_matrix(frame: pd.DataFrame) -> tuple[Matrix, np.ndarray]:
    """The raw matrix of the rows of ``frame`` that keep the contract, and which rows break it.

    One pass over the columns (:func:`validation.checked_features`) in place of
    validating, coercing and converting in turn: a chunk's contract check and
    its raw matrix at a fifth of the cost. A Parquet file's categories are read
    by their codes, never a string per cell.

    Returns:
        ``(raw, bad)``: the raw matrix of the rows where ``bad`` is False, in
        order (as :func:`raw_matrix_from_frame` of them), and a boolean per
        row of ``frame``: True where :func:`validation.validate_rows` finds a violation.
    """
    raw = np.empty((len(frame), len(RAW_COLUMNS)), dtype=np.float64)
    bad = validation.checked_features(frame, raw)
    if bad.any():
        raw = raw[~bad]
    derive_columns(raw)
    return raw, bad


def derive_columns(raw: Matrix) -> None:
    """Fill the ratio columns in place, exactly as ``features.add_derived_features``."""
    c = RAW_INDEX
    income = raw[:, c["Income"]]
    amount = raw[:, c["Amount"]]
    with np.errstate(divide="ignore", invalid="ignore"):
        raw[:, c["loan_to_price"]] = amount / raw[:, c["Price"]]
        raw[:, c["income_free"]] = income - raw[:, c["Expenses"]]
        raw[:, c["installment_to_income"]] = amount / raw[:, c["Time"]] / income
        raw[:, c["debt_to_income"]] = raw[:, c["Debt"]] / income


def frame_from_raw(raw: Matrix) -> pd.DataFrame:
    """The contract frame behind a raw matrix (for the pipeline fallback)."""
    data: dict[str, Any] = {}
    for j, name in enumerate(schema.FEATURES):
        spec = schema.FIELDS[name]
        column = raw[:, j]
        if isinstance(spec, schema.CategoricalField):
            labels = np.asarray([*spec.categories, np.nan], dtype=object)
            codes = np.where(np.isnan(column), len(spec.categories), column).astype(np.int64)
            data[name] = labels[codes]
        else:
            data[name] = column
    return pd.DataFrame(data)


def probe_rows(n: int, seed: int = 0) -> Matrix:
    """Random contract-valid raw rows (with missing values) to check a compiled model."""
    rng = np.random.default_rng(seed)
    raw = np.empty((n, len(RAW_COLUMNS)), dtype=np.float64)
    for j, (_, spec) in enumerate(schema.FIELDS.items()):
        if isinstance(spec, schema.CategoricalField):
            column = rng.integers(0, len(spec.categories), n).astype(np.float64)
        else:
            low, high = spec.observed
            column = rng.uniform(max(low, spec.minimum), high, n)
            if spec.exclusive_minimum:
                column = np.maximum(column, spec.minimum + 1.0)
            if spec.integer:
                column = np.round(column)
        if spec.nullable:
            column[rng.random(n) < 0.15] = np.nan
        raw[:, j] = column
    derive_columns(raw)
    return raw
