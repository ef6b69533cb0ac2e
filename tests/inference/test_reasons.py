"""Reasons: the codes of the inputs that raised a declined applicant's risk most, never protected."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from creditops import features, schema
from creditops.data import Dataset
from creditops.inference.raw import RAW_INDEX, probe_rows, raw_matrix_from_frame
from creditops.inference.reasons import ReasonNames, rank_reasons, reason_lists
from creditops.inference.scorer import LoadedModel, prepare_model
from creditops.reason_codes import DEFAULT_PROTECTED, REASON_CODES
from creditops.registry import ModelRef

FAMILIES: dict[str, dict[str, Any]] = {
    "xgboost": {"n_estimators": 60, "max_depth": 4},
    "lightgbm": {"n_estimators": 60, "num_leaves": 15},
    "logreg": {"C": 1.0},
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def with_protected(request: pytest.FixtureRequest, credit_dataset: Dataset) -> LoadedModel:
    """A model trained WITH the protected inputs ([fairness] policy = "include")."""
    family = str(request.param)
    pipeline = features.build_pipeline(family, FAMILIES[family], seed=0, exclude=())
    pipeline.fit(credit_dataset.features, credit_dataset.target)
    ref = ModelRef("m", 1, "run", "source", family, 0.3, "hash", "run")
    return prepare_model(ref, pipeline)


def many_applicants(dataset: Dataset) -> np.ndarray:
    """Every applicant of the data set and 4,000 random contract-valid ones (missing values too)."""
    return np.concatenate(
        [raw_matrix_from_frame(schema.coerce_features(dataset.features)), probe_rows(4000, seed=7)]
    )


def test_reasons_are_table_codes_never_protected_strongest_first(
    with_protected: LoadedModel, credit_dataset: Dataset
) -> None:
    model = with_protected
    assert {"Age", "Marital"} <= set(model.sources)  # the model does see them
    raw = many_applicants(credit_dataset)
    contributions = model.contributions(raw)
    assert contributions is not None
    protected = [model.sources.index(name) for name in DEFAULT_PROTECTED]
    top4 = np.argsort(-contributions, axis=1)[:, :4]
    # without the filter, a protected attribute would be a reason for many applicants
    assert np.isin(top4, protected).any(axis=1).mean() > 0.05
    names = ReasonNames.of(model.sources, DEFAULT_PROTECTED)
    lists = reason_lists(contributions, raw, names, 4)
    for i, reasons in enumerate(lists):
        assert 1 <= len(reasons) <= 4
        by_feature = {model.sources[j]: contributions[i, j] for j in range(len(model.sources))}
        strengths = [by_feature[r["feature"]] for r in reasons]
        assert strengths == sorted(strengths, reverse=True)
        for r in reasons:
            assert r == REASON_CODES[r["feature"]].as_reason(r["value"])
            assert not set(REASON_CODES[r["feature"]].inputs) & set(DEFAULT_PROTECTED)
        # the strongest allowed source is the first reason
        allowed = {k: v for k, v in by_feature.items() if k not in DEFAULT_PROTECTED}
        assert by_feature[reasons[0]["feature"]] == max(allowed.values())


def test_rank_reasons_matches_a_sort_by_hand() -> None:
    rng = np.random.default_rng(5)
    sources = ("Income", "Age", "Debt", "debt_to_income", "Records", "Marital", "Amount")
    values = rng.normal(size=(3000, len(sources)))
    values[:100] = -np.abs(values[:100])  # nothing toward "bad": still one reason
    names = ReasonNames.of(sources, ("Age", "Marital"))
    order, count = rank_reasons(values, names, 3)
    allowed = [j for j, name in enumerate(sources) if name not in ("Age", "Marital")]
    for i, row in enumerate(values):
        ranked = sorted(allowed, key=lambda j: -row[j])
        expected = [j for j in ranked[:3] if row[j] > 0] or ranked[:1]
        got = [names.codes[k].feature for k in order[i, : count[i]]]
        assert got == [sources[j] for j in expected]


def test_the_value_is_the_applicants_own() -> None:
    raw = probe_rows(50, seed=1)
    sources = ("Home", "Seniority", "Income", "loan_to_price")
    names = ReasonNames.of(sources, ())
    contributions = np.tile([4.0, 3.0, 2.0, 1.0], (len(raw), 1))
    for row, reasons in zip(raw, reason_lists(contributions, raw, names, 4), strict=True):
        home, seniority, income, ratio = (r["value"] for r in reasons)
        code = row[RAW_INDEX["Home"]]
        assert home == (None if np.isnan(code) else schema.FIELDS["Home"].categories[int(code)])
        assert seniority is None or (isinstance(seniority, int) and seniority == row[0])
        assert income is None or income == row[RAW_INDEX["Income"]]
        assert ratio == pytest.approx(row[RAW_INDEX["loan_to_price"]])


def test_the_batch_text_is_the_services_reasons_serialised() -> None:
    import orjson

    from creditops.inference.reasons import reason_texts

    rng = np.random.default_rng(9)
    raw = probe_rows(3000, seed=3)
    raw[:50, RAW_INDEX["Income"]] = np.nan  # missing values: null
    raw[50:60, RAW_INDEX["debt_to_income"]] = np.inf  # a ratio over a zero: null too
    sources = tuple(REASON_CODES)
    contributions = rng.normal(size=(len(raw), len(sources)))
    contributions[100:120] = -1.0  # no positive contribution: the one least favourable
    for top_k, protected in ((4, DEFAULT_PROTECTED), (2, ()), (0, ())):
        names = ReasonNames.of(sources, protected)
        expected = [
            orjson.dumps(r).decode() for r in reason_lists(contributions, raw, names, top_k)
        ]
        assert reason_texts(contributions, raw, names, top_k).tolist() == expected


def test_the_top_contributions_are_a_stable_sorts_first_ones() -> None:
    from creditops.inference.reasons import top_contributions

    rng = np.random.default_rng(11)
    contributions = np.round(rng.normal(size=(2000, 11)), 1)  # many ties
    contributions[:30] = 0.0  # all tied
    for top_k in (0, 1, 4, 11, 20):
        expected = np.argsort(-contributions, axis=1, kind="stable")[:, :top_k]
        order, values = top_contributions(contributions, top_k)
        np.testing.assert_array_equal(order, expected)
        np.testing.assert_array_equal(values, np.take_along_axis(contributions, expected, axis=1))
    contributions[5, 3] = np.nan  # not a number: the sort's order, NaN last
    order, _ = top_contributions(contributions, 11)
    np.testing.assert_array_equal(order, np.argsort(-contributions, axis=1, kind="stable"))
