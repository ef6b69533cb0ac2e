"""The simulated calendar (pure): months, application times, true outcomes, scenario starts."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from creditops import validation
from creditops.config import SimulateConfig
from creditops.data import Dataset, split_dataset
from creditops.errors import SimulationError
from creditops.simulation import calendar, scenarios
from creditops.simulation.run import check_calendar_in_past

CONFIG = SimulateConfig(months=12, applications_per_month=200, drift_start_month=5)


@pytest.fixture(scope="module")
def source(credit_dataset: Dataset) -> scenarios.ScenarioSource:
    split = split_dataset(credit_dataset, 0.2, 42)
    _, tail = scenarios.ordered_halves(credit_dataset.frame)
    return scenarios.ScenarioSource(
        unseen=split.test, tail=scenarios.exclude_rows(tail, split.train)
    )


def test_every_applicant_applies_inside_its_month_in_order(
    source: scenarios.ScenarioSource,
) -> None:
    built = calendar.build_calendar("none", source, CONFIG, seed=1)
    assert len(built) == 12 * 200
    assert np.bincount(built.month)[1:].tolist() == [200] * 12
    stamps = built.application_at
    assert stamps.is_monotonic_increasing
    expected = [f"2024-{m:02d}" for m in built.month]
    assert built.month_labels().tolist() == expected
    assert stamps.iloc[0] >= pd.Timestamp("2024-01-01", tz="UTC")
    assert built.end == datetime(2025, 1, 1, tzinfo=UTC)
    assert validation.validate_rows(built.features) == []


def test_a_bad_defaults_within_the_window_a_good_never(source: scenarios.ScenarioSource) -> None:
    built = calendar.build_calendar("none", source, CONFIG, seed=1)
    assert built.outcomes is not None
    bad = built.outcomes == 1
    assert (built.default_month[~bad] == 0).all()
    months = built.default_month[bad]
    assert months.min() >= 1 and months.max() <= CONFIG.performance_months


@pytest.mark.parametrize("scenario", ["covariate", "concept", "downturn", "ordered-tail"])
def test_a_scenario_starts_at_its_month(source: scenarios.ScenarioSource, scenario: str) -> None:
    none = calendar.build_calendar("none", source, CONFIG, seed=2)
    drifted = calendar.build_calendar(scenario, source, CONFIG, seed=2)
    before = none.month < CONFIG.drift_start_month
    pd.testing.assert_frame_equal(
        none.features.loc[before], drifted.features.loc[before], check_dtype=True
    )
    assert none.outcomes is not None and drifted.outcomes is not None
    np.testing.assert_array_equal(none.outcomes[before], drifted.outcomes[before])
    after = ~before
    changed = (none.outcomes[after] != drifted.outcomes[after]).any() or not none.features.loc[
        after
    ].equals(drifted.features.loc[after])
    assert changed


def test_covariate_shifts_a_little_more_each_month(source: scenarios.ScenarioSource) -> None:
    built = calendar.build_calendar("covariate", source, CONFIG, seed=3)
    none = calendar.build_calendar("none", source, CONFIG, seed=3)
    ratio = built.features["Income"] / none.features["Income"]
    by_month = ratio.groupby(built.month).median()
    assert (by_month.loc[: CONFIG.drift_start_month - 1] == 1.0).all()
    drifting = by_month.loc[CONFIG.drift_start_month :].to_numpy()
    assert (np.diff(drifting) < 0).all()  # income falls further every month
    assert drifting[-1] == pytest.approx(CONFIG.income_factor, abs=0.02)


def test_downturn_multiplies_the_bad_rate(source: scenarios.ScenarioSource) -> None:
    config = SimulateConfig(months=10, applications_per_month=2_000, drift_start_month=6)
    built = calendar.build_calendar("downturn", source, config, seed=4)
    none = calendar.build_calendar("none", source, config, seed=4)
    assert built.outcomes is not None and none.outcomes is not None
    after = built.month >= 6
    # at fixed applicant features (the same rows): only the outcomes changed
    pd.testing.assert_frame_equal(built.features, none.features)
    ratio = built.outcomes[after].mean() / none.outcomes[after].mean()
    assert ratio == pytest.approx(config.downturn_factor, abs=0.12)
    assert (built.outcomes >= none.outcomes).all()


def test_original_outcomes_are_set_after_scoring() -> None:
    built = calendar.build_calendar("original", None, CONFIG, seed=1)
    assert built.outcomes is None and (built.default_month == 0).all()
    settled = built.with_outcomes(np.ones(len(built), dtype=np.int64))
    assert (settled.default_month >= 1).all()


def test_a_calendar_reaching_into_the_future_is_refused() -> None:
    config = SimulateConfig(start_date=date(2026, 6, 1), months=24)
    with pytest.raises(
        SimulationError, match=r"start_date 2026-06-01 \+ months 24 ends 2028-06-01"
    ):
        check_calendar_in_past(config, datetime(2026, 12, 1, tzinfo=UTC))
    check_calendar_in_past(SimulateConfig(), datetime(2026, 12, 1, tzinfo=UTC))
