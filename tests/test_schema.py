"""Data-contract tests: columns, categories, ranges and the raw file's missing-value codes."""

from __future__ import annotations

import datetime
import math

import numpy as np
import pandas as pd
import pytest

from creditops import schema, validation
from creditops.errors import ContractError


def applicant(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = dict(schema.EXAMPLE_APPLICANT)
    row.update(overrides)
    return row


def test_contract_has_the_thirteen_attributes_in_order() -> None:
    assert schema.FEATURES == (
        "Seniority",
        "Home",
        "Time",
        "Age",
        "Marital",
        "Records",
        "Job",
        "Expenses",
        "Income",
        "Assets",
        "Debt",
        "Amount",
        "Price",
    )
    assert set(schema.NULLABLE) == {"Home", "Marital", "Job", "Income", "Assets", "Debt"}


def test_observed_ranges_are_inside_validity_limits() -> None:
    for spec in schema.FIELDS.values():
        if isinstance(spec, schema.NumericField):
            assert spec.minimum <= spec.observed[0] <= spec.observed[1] <= spec.maximum


def test_columns_missing_and_extra_are_named() -> None:
    columns = [c for c in schema.FEATURES if c not in ("Income", "Age")] + ["Salary", "rownames"]
    with pytest.raises(ContractError) as caught:
        schema.check_columns(columns)
    message = str(caught.value)
    assert "missing column(s): Age, Income" in message
    assert "unexpected column(s): Salary" in message
    assert "rownames" not in message.split("(")[0]


def test_target_required_only_when_asked() -> None:
    schema.check_columns(schema.FEATURES)
    with pytest.raises(ContractError, match="missing column\\(s\\): Status"):
        schema.check_columns(schema.FEATURES, require_target=True)


def test_raw_missing_codes_become_missing() -> None:
    raw = pd.DataFrame(
        [applicant(Income=0), applicant(Income=99999999), applicant(Assets=99999999, Debt=99999999)]
    )
    clean = schema.normalize_raw(raw)
    assert clean["Income"].isna().tolist() == [True, True, False]
    assert math.isnan(clean.loc[2, "Assets"]) and math.isnan(clean.loc[2, "Debt"])
    assert raw.loc[0, "Income"] == 0  # input untouched


def test_categories_are_normalised() -> None:
    raw = pd.DataFrame([applicant(Home=" Rent ", Job="", Marital="MARRIED")])
    clean = schema.normalize_raw(raw)
    assert clean.loc[0, "Home"] == "rent"
    assert clean.loc[0, "Marital"] == "married"
    assert pd.isna(clean.loc[0, "Job"])


@pytest.mark.parametrize(
    ("overrides", "field", "rule"),
    [
        ({"Income": 20000.0}, "Income", "is above the maximum 10000"),
        ({"Income": 0.0}, "Income", "must be greater than 0"),
        ({"Age": 17}, "Age", "is below the minimum 18"),
        ({"Age": 30.5}, "Age", "must be a whole number"),
        ({"Home": "castle"}, "Home", "is not one of rent, owner, parents, priv, other, ignore"),
        ({"Records": None}, "Records", "is required"),
        ({"Seniority": "ten"}, "Seniority", "is not a number"),
        ({"Debt": float("inf")}, "Debt", "is not finite"),
        ({"Amount": -1}, "Amount", "is below the minimum 1"),
    ],
)
def test_each_rule_names_row_field_value(
    overrides: dict[str, object], field: str, rule: str
) -> None:
    frame = pd.DataFrame([applicant(), applicant(**overrides)])
    violations = validation.validate_rows(frame)
    assert len(violations) == 1
    v = violations[0]
    assert (v.row, v.field, v.rule) == (2, field, rule)
    assert str(v).startswith(f"row 2, {field}: ")


@pytest.mark.parametrize("field", ["Amount", "Price", "Income", "Expenses", "Assets", "Debt"])
def test_money_with_cents_is_valid(field: str) -> None:
    frame = pd.DataFrame([applicant(**{field: 1004.6})])
    assert validation.validate_rows(frame) == []
    assert schema.coerce_features(frame).loc[0, field] == 1004.6


@pytest.mark.parametrize(("field", "value"), [("Amount", 100_000.01), ("Price", 0.99)])
def test_money_with_cents_keeps_the_ranges(field: str, value: float) -> None:
    (v,) = validation.validate_rows(pd.DataFrame([applicant(**{field: value})]))
    assert (v.field, v.value) == (field, value)
    assert "maximum" in v.rule or "minimum" in v.rule


def test_nullable_fields_may_be_missing() -> None:
    frame = pd.DataFrame(
        [applicant(Home=None, Income=np.nan, Assets=None, Debt=None, Marital=None, Job=None)]
    )
    assert validation.validate_rows(frame) == []


def test_every_violation_of_every_row_is_reported() -> None:
    frame = pd.DataFrame([applicant(Age=10, Home="castle"), applicant(), applicant(Price=0)])
    found = [(v.row, v.field) for v in validation.validate_rows(frame)]
    assert found == [(1, "Home"), (1, "Age"), (3, "Price")]


def test_unknown_label_is_reported() -> None:
    frame = pd.DataFrame([{**applicant(), "Status": "maybe"}])
    (v,) = validation.validate_rows(frame)
    assert (v.field, v.value) == ("Status", "maybe")


def test_violation_json_form_is_serialisable() -> None:
    import json

    v = schema.Violation(3, "Debt", float("inf"), "is not finite")
    assert json.loads(json.dumps(v.as_dict())) == {
        "row": 3,
        "field": "Debt",
        "value": "inf",
        "rule": "is not finite",
    }


def test_coerce_features_orders_columns_and_types() -> None:
    frame = pd.DataFrame([applicant()])[list(reversed(schema.FEATURES))]
    out = schema.coerce_features(frame)
    assert tuple(out.columns) == schema.FEATURES
    assert out["Age"].dtype == np.float64
    assert out["Home"].dtype == object


def test_real_dataset_satisfies_the_contract(credit_dataset: object) -> None:
    from creditops.data import Dataset

    assert isinstance(credit_dataset, Dataset)
    assert credit_dataset.raw_rows == 4454
    assert len(credit_dataset.frame) == 4454
    assert credit_dataset.violations == []
    observed = credit_dataset.frame
    for name, spec in schema.FIELDS.items():
        if isinstance(spec, schema.NumericField):
            assert observed[name].min() >= spec.observed[0]
            assert observed[name].max() <= spec.observed[1]


def _cell_breaks(spec: schema.Field, cell: object) -> bool:
    """One cell against its field's rules, in plain Python (the oracle of the vectorised check)."""
    if cell is None or cell is pd.NA or (isinstance(cell, float) and math.isnan(cell)):
        return not spec.nullable
    if isinstance(spec, schema.CategoricalField):
        return cell not in spec.categories
    if isinstance(cell, bool | datetime.datetime):  # pandas would make a number of them
        return True
    try:
        number = float(cell)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True
    if not math.isfinite(number):
        return True
    low = number <= spec.minimum if spec.exclusive_minimum else number < spec.minimum
    return low or number > spec.maximum or (spec.integer and not number.is_integer())


_HOSTILE_NUMBERS: list[object] = [
    *[np.nan, None, "ten", "12", math.inf, -math.inf, -1.0, 0.5, 1e12],
    *[True, datetime.datetime(2026, 1, 1)],
]
_HOSTILE_LABELS: list[object] = [None, np.nan, "castle", "", "Owner", 3]


def _hostile_frame(rng: np.random.Generator, rows: int, layout: str) -> pd.DataFrame:
    """Rows drawn from the real dataset's values, about one cell in twenty made hostile."""
    good = pd.DataFrame([applicant()] * rows)
    data: dict[str, object] = {}
    for name, spec in schema.FIELDS.items():
        cells = good[name].astype(object).to_numpy()
        hit = rng.random(rows) < 0.05
        pool = _HOSTILE_LABELS if isinstance(spec, schema.CategoricalField) else _HOSTILE_NUMBERS
        for i in np.flatnonzero(hit):
            cells[i] = pool[rng.integers(len(pool))]
        column = pd.Series(cells, dtype=object)
        if isinstance(spec, schema.CategoricalField) and layout == "typed":
            column = column.where(column.map(lambda c: isinstance(c, str)), None)
            column = column.astype("category")  # as a Parquet dictionary column is read
        elif isinstance(spec, schema.NumericField) and layout == "typed":
            plain = column.map(lambda c: not isinstance(c, bool | datetime.datetime))
            numbers = pd.to_numeric(column.where(plain, None), errors="coerce")
            column = numbers.astype("Float64" if name == "Debt" else "float64")
        data[name] = column
    return pd.DataFrame(data)


@pytest.mark.parametrize("layout", ["text", "typed"])
def test_checked_raw_matrix_rejects_what_validation_names_and_reads_the_rest_alike(
    layout: str,
) -> None:
    from creditops.inference.raw import checked_raw_matrix, raw_matrix_from_frame

    rng = np.random.default_rng(7)
    for _ in range(20):
        frame = _hostile_frame(rng, 200, layout)
        raw, bad = checked_raw_matrix(frame)
        expected = np.asarray(
            [
                any(_cell_breaks(spec, frame[name].iloc[i]) for name, spec in schema.FIELDS.items())
                for i in range(len(frame))
            ]
        )
        assert expected.any() and not expected.all()
        np.testing.assert_array_equal(bad, expected)
        named = {v.row - 1 for v in validation.validate_rows(frame)}
        assert named == set(np.flatnonzero(expected).tolist())
        good = frame[~expected]
        np.testing.assert_array_equal(raw, raw_matrix_from_frame(schema.coerce_features(good)))
