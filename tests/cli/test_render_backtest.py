"""The PD backtest table printed by ``creditops monitor --by month``."""

from __future__ import annotations

import json

import pytest

from creditops.cli import render_backtest
from creditops.monitoring.table import MonitoringRow


def _grade(month: str, band: str, light: str, observed: float) -> MonitoringRow:
    extras = {"predicted": 0.1, "rows": 200, "bads": round(observed * 200), "light": light}
    extras |= {"binomial_p": 0.5, "jeffreys_p": 0.4, "pd_from": 0.0, "pd_to": 0.2}
    return MonitoringRow(
        month, 3, f"backtest:{band}", "backtest", observed, rows=200, detail=json.dumps(extras)
    )


def test_the_latest_month_is_printed_and_red_months_are_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = [
        _grade("2025-01", "g01", "red", 0.3),
        _grade("2025-02", "g01", "green", 0.1),
        _grade("2025-02", "g02", "yellow", 0.16),
        MonitoringRow("2025-02", 3, "backtest:red_bands", "backtest", 0.0, rows=400),
    ]
    render_backtest.backtest(rows, "reports/backtest-latest.png")
    out = capsys.readouterr().out
    assert "applications of 2025-02 (v3)" in out and "g02" in out and "0.1600" in out
    assert "months with a red grade: 2025-01 v3" in out
    assert "months with a yellow grade: 2025-02 v3" in out
    assert "reports/backtest-latest.png" in out


def test_no_tested_grade_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    absent = MonitoringRow("2025-02", 3, "backtest:g01", "backtest", None, detail="{}")
    render_backtest.backtest([absent])
    assert "no grade has enough matured outcomes yet" in capsys.readouterr().out
