"""What a retraining trains on: granted loans of closed vintages, never a declined applicant.

And reject inference: each declined applicant twice, weighted by its PD.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from creditops import schema
from creditops.retraining.rows import build_retraining_split, fuzzy_augmented, production_data

AS_OF = datetime(2025, 12, 31, tzinfo=UTC)


def _log() -> pd.DataFrame:
    """Eight log rows: each a (decision, explored, application date, outcome, observed date)."""
    spec = [
        # granted, window closed (applied 2024-06 + 12 months <= 2025-12-31), outcome posted
        ("approve", False, "2024-06-10", "good", "2025-06-10"),
        ("approve", True, "2024-07-01", "bad", "2024-10-01"),  # explored, closed vintage
        ("approve", False, "2024-08-01", "bad", "2024-09-01"),
        # granted, window closed, outcome never posted
        ("approve", False, "2024-09-01", None, None),
        # granted, window still open: an early default (a biased sample): left out
        ("approve", False, "2025-06-01", "bad", "2025-08-01"),
        # declined, closed vintage: never a labelled training row
        ("decline", False, "2024-06-15", None, None),
        ("decline", False, "2024-07-15", None, None),
        # declined, open vintage
        ("decline", False, "2025-07-15", None, None),
    ]
    frame = pd.DataFrame({name: [np.nan] * len(spec) for name in schema.FEATURES})
    frame["Age"] = np.arange(len(spec), dtype=float) + 20
    frame["decision"] = [s[0] for s in spec]
    frame["explored"] = [s[1] for s in spec]
    frame["application_at"] = pd.to_datetime([s[2] for s in spec], utc=True)
    frame["outcome"] = [s[3] for s in spec]
    frame["observed_at"] = pd.to_datetime([s[4] for s in spec], utc=True)
    frame["created_at"] = pd.Timestamp("2026-01-01", tz="UTC")
    frame["probability"] = [0.1, 0.6, 0.3, 0.2, 0.5, 0.8, 0.55, 0.9]
    return frame


def test_production_rows_are_granted_matured_loans_only() -> None:
    data = production_data(_log(), as_of=AS_OF, performance_months=12)
    assert data.rows["Age"].tolist() == [20.0, 21.0, 22.0]
    assert data.rows[schema.TARGET].tolist() == ["good", "bad", "bad"]
    counts = data.counts
    assert (counts.granted, counts.explored, counts.immature, counts.unlabelled) == (3, 1, 1, 1)
    assert counts.declined == 2
    assert counts.outcomes_up_to == "2025-06-10T00:00:00+00:00"
    assert counts.applications_up_to == "2024-08-01T00:00:00+00:00"
    # the declined applicants are set aside with the PD they were served, never labelled
    assert data.declined["Age"].tolist() == [25.0, 26.0]
    assert data.declined["probability"].tolist() == [0.8, 0.55]
    assert schema.TARGET not in data.declined


def test_an_outcome_posted_after_the_as_of_date_is_not_known() -> None:
    log = _log()
    log.loc[0, "observed_at"] = pd.Timestamp("2026-01-05", tz="UTC")  # after AS_OF
    data = production_data(log, as_of=AS_OF, performance_months=12)
    assert data.rows["Age"].tolist() == [21.0, 22.0]
    assert (data.counts.granted, data.counts.unlabelled) == (2, 2)
    # a year earlier every vintage is still open: nothing to train on
    early = production_data(log, as_of=datetime(2025, 3, 1, tzinfo=UTC), performance_months=12)
    assert early.rows["Age"].tolist() == []
    assert (early.counts.immature, early.counts.declined) == (5, 0)


def test_reject_inference_enters_each_decline_twice_weighted_by_its_pd() -> None:
    declined = production_data(_log(), as_of=AS_OF, performance_months=12).declined
    rows, weights = fuzzy_augmented(declined, weight=2.0)
    assert rows[schema.TARGET].tolist() == ["bad", "bad", "good", "good"]
    assert rows["Age"].tolist() == [25.0, 26.0, 25.0, 26.0]
    np.testing.assert_allclose(weights, [1.6, 1.1, 0.4, 0.9])
    # each applicant's two copies weigh the production weight in all
    np.testing.assert_allclose(weights[:2] + weights[2:], [2.0, 2.0])


def test_reject_inference_rows_are_trained_on_never_gated_on() -> None:
    reference = pd.DataFrame({name: [np.nan] * 10 for name in schema.FEATURES})
    reference["Age"] = np.arange(10, dtype=float) + 100
    reference[schema.TARGET] = ["good", "bad"] * 5
    production = reference.assign(Age=reference["Age"] + 100)
    declined = reference.loc[:2, list(schema.FEATURES)].assign(
        Age=[500.0, 501.0, 502.0], probability=[0.2, 0.5, 0.9]
    )
    split = build_retraining_split(reference, production, 0.4, min_holdout=4, declined=declined)
    assert not set(split.test["Age"]) & {500.0, 501.0, 502.0}
    assert len(split.train) == 10 + 6 + 6
    assert split.weights is not None
    augmented = split.train["Age"].isin([500.0, 501.0, 502.0]).to_numpy()
    np.testing.assert_allclose(split.weights[augmented], [0.2, 0.5, 0.9, 0.8, 0.5, 0.1])
    assert (split.weights[~augmented] == 1.0).all()


def test_a_decline_logged_without_its_pd_is_left_out_of_reject_inference() -> None:
    declined = pd.DataFrame({name: [np.nan] * 2 for name in schema.FEATURES})
    declined["probability"] = [np.nan, 0.3]
    rows, weights = fuzzy_augmented(declined)
    assert len(rows) == 2
    np.testing.assert_allclose(weights, [0.3, 0.7])


@pytest.mark.parametrize("months", [0])
def test_without_a_performance_window_every_granted_outcome_counts(months: int) -> None:
    data = production_data(_log(), as_of=AS_OF, performance_months=months)
    assert data.rows["Age"].tolist() == [20.0, 21.0, 22.0, 24.0]
    assert data.counts.declined == 3
