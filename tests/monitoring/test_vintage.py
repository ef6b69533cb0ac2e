"""Monitoring by application month on hand-made logs; expected figures computed independently."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from creditops import schema
from creditops.config import MonitorConfig
from creditops.data import Dataset, split_dataset
from creditops.errors import MonitorError
from creditops.monitoring.by_month import Reference, monthly_rows, resolve_as_of, select_months
from creditops.monitoring.table import MonitoringRow, MonthContext
from creditops.monitoring.vintage import (
    PROVIDERS,
    compute_rows,
    gap_months,
    month_is_mature,
    vintage_rows,
)

AS_OF = datetime(2025, 6, 15, tzinfo=UTC)


@pytest.fixture(scope="module")
def reference(credit_dataset: Dataset) -> pd.DataFrame:
    return split_dataset(credit_dataset, 0.2, 42).train


@pytest.fixture(scope="module")
def applicants(credit_dataset: Dataset) -> pd.DataFrame:
    return schema.coerce_features(split_dataset(credit_dataset, 0.2, 42).test).reset_index(
        drop=True
    )


def _log(applicants: pd.DataFrame, months: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """``months[m]`` applications in month ``m``, half of each month's outcomes posted by AS_OF."""
    rng = np.random.default_rng(seed)
    parts = []
    start = 0
    for month, count in months.items():
        rows = applicants.iloc[start : start + count].copy()
        start += count
        applied = pd.Timestamp(f"{month}-01", tz=UTC) + pd.to_timedelta(
            rng.integers(0, 27, count), unit="D"
        )
        rows["application_at"] = applied
        rows["created_at"] = pd.Timestamp("2025-07-01", tz=UTC)  # scored later, in a batch
        rows["model_version"] = 1
        rows["probability"] = rng.uniform(0, 1, count)
        rows["threshold"] = 0.5
        rows["decision"] = np.where(rows["probability"] < 0.5, "approve", "decline")
        rows["explored"] = False
        bad = rng.uniform(0, 1, count) < rows["probability"]
        granted = rows["decision"] == "approve"
        rows["outcome"] = np.where(granted, np.where(bad, "bad", "good"), None)
        rows["observed_at"] = applied + pd.to_timedelta(rng.integers(0, 400, count), unit="D")
        rows.loc[~granted, "observed_at"] = pd.NaT
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def _context(reference: pd.DataFrame, month: str, version: int, **changes: object) -> MonthContext:
    values: dict[str, object] = {
        "month": month,
        "model_version": version,
        "as_of": AS_OF,
        "threshold": 0.5,
        "reference": reference,
        "reference_scores": np.linspace(0.01, 0.99, 500),
        "performance_months": 12,
        "min_rows": 10,
        "min_drift_rows": 20,
    }
    values.update(changes)
    return MonthContext(**values)  # type: ignore[arg-type]


def _by_metric(rows: list[MonitoringRow]) -> dict[tuple[str, int, str], MonitoringRow]:
    return {(r.month, r.model_version, r.metric): r for r in rows}


def test_volume_approval_and_matured_share_match_a_pandas_groupby(
    applicants: pd.DataFrame, reference: pd.DataFrame
) -> None:
    log = _log(applicants, {"2025-01": 60, "2025-02": 45, "2025-03": 30})
    log.loc[log.index[:10], "model_version"] = 2  # a second version in January
    log.loc[log.index[-5:], "application_at"] = pd.NaT  # legacy rows: their created_at counts
    rows = _by_metric(compute_rows(log, lambda m, v: _context(reference, m, v)))

    month = log["application_at"].fillna(log["created_at"]).dt.strftime("%Y-%m")
    granted = log["decision"] == "approve"
    matured = granted & log["outcome"].notna() & (log["observed_at"] <= pd.Timestamp(AS_OF))
    expected = (
        pd.DataFrame({"month": month, "v": log["model_version"], "g": granted, "m": matured})
        .groupby(["month", "v"])
        .agg(volume=("g", "size"), approval=("g", "mean"), granted=("g", "sum"), mat=("m", "sum"))
    )
    assert ("2025-07", 1, "volume") in rows  # the legacy rows' month
    for (m, v), figures in expected.iterrows():
        assert rows[(m, v, "volume")].value == figures["volume"]
        assert rows[(m, v, "approval_rate")].value == pytest.approx(figures["approval"])
        assert rows[(m, v, "matured_rows")].value == figures["mat"]
        share = rows[(m, v, "matured_share")]
        assert share.value == pytest.approx(figures["mat"] / figures["granted"])
        assert json.loads(share.detail)["granted"] == figures["granted"]
    assert len({(r[0], r[1]) for r in rows}) == len(expected)


def test_realised_figures_use_only_outcomes_posted_by_as_of(
    applicants: pd.DataFrame, reference: pd.DataFrame
) -> None:
    log = _log(applicants, {"2025-01": 200}, seed=3)
    rows = _by_metric(compute_rows(log, lambda m, v: _context(reference, m, v)))
    seen = log.loc[
        (log["decision"] == "approve")
        & log["outcome"].notna()
        & (log["observed_at"] <= pd.Timestamp(AS_OF))
    ]
    y = (seen["outcome"] == "bad").to_numpy()
    p = seen["probability"].to_numpy()
    assert 10 <= len(seen) < (log["decision"] == "approve").sum()  # some not posted yet
    assert rows[("2025-01", 1, "bad_rate")].value == pytest.approx(y.mean())
    assert rows[("2025-01", 1, "bad_rate")].rows == len(seen)
    assert rows[("2025-01", 1, "roc_auc")].value == pytest.approx(roc_auc_score(y, p))
    assert rows[("2025-01", 1, "ks")].value == pytest.approx(stats.ks_2samp(p[y], p[~y]).statistic)


def test_too_few_matured_outcomes_give_none_naming_the_counts(
    applicants: pd.DataFrame, reference: pd.DataFrame
) -> None:
    log = _log(applicants, {"2025-05": 40}, seed=1)
    matured = int(
        (
            (log["decision"] == "approve")
            & log["outcome"].notna()
            & (log["observed_at"] <= pd.Timestamp(AS_OF))
        ).sum()
    )
    rows = _by_metric(compute_rows(log, lambda m, v: _context(reference, m, v, min_rows=100)))
    for metric in ("bad_rate", "roc_auc", "ks"):
        row = rows[("2025-05", 1, metric)]
        assert row.value is None
        assert row.detail == f"{matured} rows < min 100"


def test_one_class_of_matured_outcomes_has_no_roc_auc(
    applicants: pd.DataFrame, reference: pd.DataFrame
) -> None:
    log = _log(applicants, {"2025-01": 80}, seed=2)
    log["outcome"] = np.where(log["decision"] == "approve", "good", None)
    rows = _by_metric(compute_rows(log, lambda m, v: _context(reference, m, v)))
    assert rows[("2025-01", 1, "bad_rate")].value == 0.0
    assert rows[("2025-01", 1, "roc_auc")].value is None
    assert "one class only" in rows[("2025-01", 1, "roc_auc")].detail


def test_the_vintage_curve_counts_bads_by_months_on_book(
    applicants: pd.DataFrame, reference: pd.DataFrame
) -> None:
    frame = applicants.iloc[:12].copy()
    frame["application_at"] = pd.Timestamp("2025-01-20", tz=UTC)
    frame["created_at"] = frame["application_at"]
    frame["model_version"] = 1
    frame["probability"] = 0.2
    frame["decision"] = ["approve"] * 10 + ["decline"] * 2
    observed = ["2025-02-03", "2025-04-10", "2025-04-28", "2025-06-20"] + [None] * 8
    frame["outcome"] = ["bad"] * 4 + [None] * 8
    frame["observed_at"] = pd.to_datetime(observed, utc=True)
    rows = vintage_rows(frame.reset_index(drop=True), _context(reference, "2025-01", 1))
    # by hand: 10 loans; bads at 1, 3, 3 months on book; the 4th is after AS_OF (2025-06-15)
    assert {r.metric: r.value for r in rows} == {
        "vintage:mob1": 0.1,
        "vintage:mob2": 0.1,
        "vintage:mob3": 0.3,
        "vintage:mob4": 0.3,
        "vintage:mob5": 0.3,  # June is 5 months on book; no later point exists yet
    }
    assert {r.kind for r in rows} == {"vintage"} and {r.rows for r in rows} == {10}
    short = vintage_rows(frame, _context(reference, "2025-01", 1, performance_months=2))
    assert [r.metric for r in short] == ["vintage:mob1", "vintage:mob2"]


def test_a_month_is_mature_after_its_performance_window() -> None:
    assert not month_is_mature("2024-06", datetime(2025, 6, 30, tzinfo=UTC), 12)
    assert month_is_mature("2024-06", datetime(2025, 7, 1, tzinfo=UTC), 12)


def test_drift_rows_see_a_shifted_month_and_skip_a_small_one(
    applicants: pd.DataFrame, reference: pd.DataFrame
) -> None:
    log = _log(applicants, {"2025-01": 300, "2025-02": 300, "2025-03": 15})
    february = log["application_at"].dt.strftime("%Y-%m") == "2025-02"
    log.loc[february, "Income"] = log.loc[february, "Income"] * 0.4
    rows = _by_metric(compute_rows(log, lambda m, v: _context(reference, m, v)))
    assert "Income" not in json.loads(rows[("2025-01", 1, "drift_share")].detail)["drifted"]
    assert "Income" in json.loads(rows[("2025-02", 1, "drift_share")].detail)["drifted"]
    assert (
        rows[("2025-02", 1, "psi:Income")].value > 0.25 > rows[("2025-01", 1, "psi:Income")].value
    )
    assert rows[("2025-03", 1, "psi:Income")].value is None
    assert rows[("2025-03", 1, "psi:Income")].detail == "15 rows < min 20"


def test_a_provider_that_raises_fails_the_run_naming_it(
    applicants: pd.DataFrame, reference: pd.DataFrame
) -> None:
    def broken_provider(frame: pd.DataFrame, ctx: MonthContext) -> list[MonitoringRow]:
        raise KeyError("no such column")

    log = _log(applicants, {"2025-01": 20})
    with pytest.raises(
        MonitorError, match=r"broken_provider failed on 2025-01 v1.*nothing written"
    ):
        compute_rows(log, lambda m, v: _context(reference, m, v), (*PROVIDERS, broken_provider))


def test_two_providers_writing_one_metric_are_refused(
    applicants: pd.DataFrame, reference: pd.DataFrame
) -> None:
    log = _log(applicants, {"2025-01": 20})
    with pytest.raises(MonitorError, match="both write 'volume'"):
        compute_rows(log, lambda m, v: _context(reference, m, v), (*PROVIDERS, PROVIDERS[0]))


def test_an_empty_log_is_a_clear_message(applicants: pd.DataFrame) -> None:
    empty = _log(applicants, {"2025-01": 5}).iloc[:0]
    with pytest.raises(MonitorError, match="no rows: no application month to monitor"):
        resolve_as_of("", empty)
    with pytest.raises(MonitorError, match="no rows: no application month to monitor"):
        select_months(empty, AS_OF)


def test_a_range_without_traffic_is_a_clear_message(applicants: pd.DataFrame) -> None:
    log = _log(applicants, {"2025-01": 5, "2025-02": 5})
    with pytest.raises(
        MonitorError, match=r"no applications as of 2024-12-31 .*2025-01 to 2025-02"
    ):
        select_months(log, datetime(2024, 12, 31, tzinfo=UTC))
    with pytest.raises(MonitorError, match="since 2025-03-01"):
        select_months(log, AS_OF, since=datetime(2025, 3, 1))


def test_months_without_traffic_are_named_not_filled(
    applicants: pd.DataFrame, reference: pd.DataFrame
) -> None:
    log = _log(applicants, {"2025-01": 30, "2025-04": 30})
    ref = Reference(reference, np.linspace(0.01, 0.99, 100), None, 0.5)
    config = MonitorConfig(min_matured_rows=5, min_rows=10)
    rows, messages = monthly_rows(log, ref, config, AS_OF)
    assert {r.month for r in rows} == {"2025-01", "2025-04"}
    assert messages == ["no traffic in 2025-02, 2025-03: no rows for those months"]
    assert gap_months(["2024-11", "2025-02"]) == ["2024-12", "2025-01"]


def test_as_of_defaults_to_the_latest_date_in_the_log(applicants: pd.DataFrame) -> None:
    log = _log(applicants, {"2025-01": 10})
    latest = max(log["application_at"].max(), log["observed_at"].max())
    assert resolve_as_of("", log) == latest.to_pydatetime()
    day = resolve_as_of(datetime(2025, 3, 31).date(), log)
    assert day.date().isoformat() == "2025-03-31" and day.hour == 23
