"""The reason-code table: one stable code and sentence per model input, derived ones included."""

from __future__ import annotations

import re

import pytest

from creditops import features, reason_codes, schema
from creditops.reason_codes import REASON_CODES, ReasonCode


def test_every_model_input_and_derived_feature_has_exactly_one_code() -> None:
    assert set(REASON_CODES) == {*schema.FEATURES, *features.DERIVED}
    codes = [c.code for c in REASON_CODES.values()]
    assert len(set(codes)) == len(codes)
    assert all(re.fullmatch(r"R\d\d", code) for code in codes)
    assert all(name == c.feature for name, c in REASON_CODES.items())


def test_a_derived_feature_maps_back_to_the_inputs_it_is_computed_from() -> None:
    for name in features.DERIVED:
        inputs = REASON_CODES[name].inputs
        assert inputs and set(inputs) <= set(schema.FEATURES)
    assert set(REASON_CODES["installment_to_income"].inputs) == {"Amount", "Time", "Income"}
    assert set(REASON_CODES["debt_to_income"].inputs) == {"Debt", "Income"}
    for name in schema.FEATURES:
        assert REASON_CODES[name].inputs == (name,)


def test_the_codes_are_stable() -> None:
    # a code, once given, keeps its meaning: notices already sent name them
    assert REASON_CODES["installment_to_income"].code == "R04"
    assert REASON_CODES["Records"].code == "R05"
    assert REASON_CODES["Income"].code == "R08"


def test_a_reason_is_code_sentence_feature_value() -> None:
    code = REASON_CODES["installment_to_income"]
    assert code.as_reason(0.25) == {
        "code": "R04",
        "sentence": "income is low relative to the amount requested",
        "feature": "installment_to_income",
        "value": 0.25,
    }


def test_protected_inputs_and_what_is_made_from_them_are_never_allowed() -> None:
    sources = ("Income", "Age", "Marital", "debt_to_income", "Records")
    assert reason_codes.allowed_sources(sources, ("Age", "Marital")) == [0, 3, 4]
    # a derived feature made from a protected input is protected too
    assert reason_codes.allowed_sources(sources, ("Income",)) == [1, 2, 4]
    assert reason_codes.DEFAULT_PROTECTED == ("Age", "Marital")


def test_an_unknown_input_is_named_with_the_table() -> None:
    with pytest.raises(KeyError, match="no reason code for model input 'Height'"):
        reason_codes.reason_code("Height")
    assert isinstance(reason_codes.reason_code("Home"), ReasonCode)
