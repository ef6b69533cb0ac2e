"""Shadow figures per month from a hand-made log and shadow log, counted by hand."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from creditops.monitoring.shadow_rows import shadow_rows


def test_agreement_and_swaps_per_month() -> None:
    log = pd.DataFrame(
        {
            "request_id": ["a", "b", "c", "d", "e"],
            "model_version": [1, 1, 1, 1, 1],
            "decision": ["approve", "approve", "decline", "decline", "approve"],
            "created_at": pd.to_datetime(["2024-01-05"] * 3 + ["2024-02-01"] * 2, utc=True),
            "application_at": pd.to_datetime(
                ["2024-01-05", "2024-01-06", "2024-01-07", "2024-02-01", "2024-02-02"], utc=True
            ),
        }
    )
    # e was never shadow-scored: it counts nowhere
    shadow = pd.DataFrame(
        {
            "request_id": ["a", "b", "c", "d"],
            "model_version": [2, 2, 2, 2],
            "decision": ["approve", "decline", "approve", "decline"],
        }
    )
    rows = {(r.month, r.metric): r for r in shadow_rows(log, shadow)}
    # January: a agrees, b swap-out, c swap-in; February: d agrees
    assert rows[("2024-01", "shadow:agreement")].value == pytest.approx(1 / 3)
    assert rows[("2024-01", "shadow:swap_in")].value == 1.0
    assert rows[("2024-01", "shadow:swap_out")].value == 1.0
    assert rows[("2024-01", "shadow:agreement")].rows == 3
    assert rows[("2024-02", "shadow:agreement")].value == 1.0
    assert rows[("2024-02", "shadow:agreement")].rows == 1
    assert json.loads(rows[("2024-02", "shadow:swap_in")].detail) == {"challenger_versions": [2]}
    assert {r.kind for r in rows.values()} == {"shadow"}


def test_no_shadow_rows_no_figures() -> None:
    log = pd.DataFrame(
        {
            "request_id": ["a"],
            "model_version": [1],
            "decision": ["approve"],
            "created_at": pd.to_datetime(["2024-01-01"], utc=True),
        }
    )
    empty = pd.DataFrame(columns=["request_id", "model_version", "decision"])
    assert shadow_rows(log, empty) == []
