"""A hand-made monitoring table with every kind of row the dashboard draws (tests/dashboard)."""

from __future__ import annotations

import json

import numpy as np

from creditops.monitoring.table import MonitoringRow

FEATURES = ("Income", "Amount", "Seniority")
BANDS = ("band01", "band02", "band03")
GROUPS = ("Age:18-25", "Age:62+", "Marital:married")
# 2024-05 has no traffic: a gap every time series must show as a gap
MONTHS = ("2024-01", "2024-02", "2024-03", "2024-04", "2024-06", "2024-07")
GAP = "2024-05"


def month_rows(month: str, version: int, index: int) -> list[MonitoringRow]:
    """Every kind of figure for one (month, version), values seeded by the month's index."""
    rng = np.random.default_rng(index * 10 + version)
    rows = [
        MonitoringRow(month, version, "volume", "volume", 300.0 + index, rows=300 + index),
        MonitoringRow(month, version, "approval_rate", "volume", 0.7 - 0.01 * index, rows=300),
        MonitoringRow(month, version, "psi:score", "drift", 0.02 * index),
        MonitoringRow(
            month, version, "est_roc_auc", "estimated", 0.83, lower=0.79, upper=0.87, rows=300
        ),
        MonitoringRow(month, version, "shadow:agreement", "shadow", 0.95, rows=300),
        MonitoringRow(month, version, "shadow:swap_in", "shadow", 7.0),
        MonitoringRow(month, version, "shadow:swap_out", "shadow", 5.0),
    ]
    rows += [
        MonitoringRow(month, version, f"psi:{name}", "drift", float(rng.uniform(0, 0.3)))
        for name in FEATURES
    ]
    rows += [
        MonitoringRow(
            month, version, f"fairness:approval_ratio:{group}", "fairness", 0.85 + 0.01 * i
        )
        for i, group in enumerate(GROUPS)
    ]
    if index < 3:  # only the oldest months have matured outcomes
        rows.append(MonitoringRow(month, version, "roc_auc", "realised", 0.81, rows=150))
        rows += [
            MonitoringRow(
                month,
                version,
                f"backtest:{band}",
                "backtest",
                0.1 * (b + 1),
                rows=120,
                detail=json.dumps(
                    {
                        "predicted": 0.1 * (b + 1),
                        "rows": 120,
                        "light": ("green", "yellow", "red")[b],
                    }
                ),
            )
            for b, band in enumerate(BANDS)
        ]
        rows += [
            MonitoringRow(month, version, f"vintage:mob{k}", "vintage", 0.01 * k, rows=200)
            for k in range(1, 7)
        ]
    else:
        rows.append(
            MonitoringRow(month, version, "roc_auc", "realised", None, detail="12 rows < min 100")
        )
    return rows


def table_rows() -> list[MonitoringRow]:
    """Version 1 serves the first three months, version 2 the rest; one trigger fired."""
    rows: list[MonitoringRow] = []
    for index, month in enumerate(MONTHS):
        rows += month_rows(month, 1 if index < 3 else 2, index)
    rows.append(
        MonitoringRow(
            "2024-03",
            1,
            "trigger:decision",
            "trigger",
            1.0,
            detail=json.dumps({"action": "retrained"}),
        )
    )
    return rows
