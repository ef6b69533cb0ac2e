"""The original pipeline's integer category codes: the table, decoding, and the refusals."""

from __future__ import annotations

from typing import Any

import pytest

from creditops import schema
from creditops.serving.original_codes import (
    ORIGINAL_CODES,
    SWITCH_HINT,
    as_code,
    decode_records,
    explain_codes,
)


def test_the_table_is_the_originals_and_covers_every_category() -> None:
    # the original's "Valores limites", in its order: the code of a label is its position
    assert ORIGINAL_CODES["Home"] == ("rent", "owner", "parents", "priv", "other", "ignore")
    assert ORIGINAL_CODES["Marital"] == ("married", "widow", "single", "separated", "divorced")
    assert ORIGINAL_CODES["Records"] == ("no", "yes")
    assert ORIGINAL_CODES["Job"] == ("freelance", "fixed", "partime", "others")
    assert set(ORIGINAL_CODES) == set(schema.CATEGORICAL)
    for name, labels in ORIGINAL_CODES.items():
        spec = schema.FIELDS[name]
        assert isinstance(spec, schema.CategoricalField)
        assert set(labels) == set(spec.categories), name


@pytest.mark.parametrize(
    ("value", "code"),
    [(0, 0), (3, 3), (1.0, 1), (-1, -1), (True, None), (1.5, None), ("1", None), (None, None)],
)
def test_as_code(value: Any, code: int | None) -> None:
    assert as_code(value) == code


def test_decode_records_maps_valid_codes_and_leaves_the_rest() -> None:
    records: list[Any] = [
        {"Home": 5, "Marital": 4.0, "Records": 1, "Job": 0, "Age": 30},
        {"Home": 6, "Marital": "single", "Records": True, "Job": None},
        7,
    ]
    decoded = decode_records(records)
    assert decoded[0] == {
        "Home": "ignore",
        "Marital": "divorced",
        "Records": "yes",
        "Job": "freelance",
        "Age": 30,
    }
    assert decoded[1] == {"Home": 6, "Marital": "single", "Records": True, "Job": None}
    assert decoded[2] == 7
    assert records[0]["Home"] == 5  # the input is left as it was


def test_explain_codes_names_the_switch_when_off() -> None:
    found = [
        schema.Violation(1, "Age", 12, "is below the minimum 18"),
        schema.Violation(1, "Home", 1, "is not one of rent, owner"),
        schema.Violation(2, "Job", "boss", "is not one of freelance"),
    ]
    age, home, job = explain_codes(found, enabled=False)
    assert (age, job) == (found[0], found[2])
    assert str(home) == f"row 1, Home: 1 is an integer code: {SWITCH_HINT}"


def test_explain_codes_gives_the_table_when_on() -> None:
    (home,) = explain_codes(
        [schema.Violation(3, "Records", 2, "is not one of no, yes")], enabled=True
    )
    assert (
        str(home) == "row 3, Records: 2 is not one of the original pipeline's codes (0=no, 1=yes)"
    )
