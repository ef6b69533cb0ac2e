"""The dashboard page from a monitoring table: panels, gaps, marks, the empty case."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from creditops.config import load_config
from creditops.dashboard.page import EMPTY_HINT, render_page, write_dashboard
from creditops.dashboard.panels import build_panels
from creditops.dashboard.run import run_dashboard
from creditops.monitoring.table import TABLE_COLUMNS, read_table
from monitoring_rows import GAP, MONTHS


def test_every_panel_has_a_chart(table: pd.DataFrame) -> None:
    panels = build_panels(table)
    assert [p.key for p in panels] == [
        "volume",
        "drift",
        "auc",
        "vintage",
        "backtest",
        "fairness",
        "shadow",
    ]
    assert all(p.figure is not None for p in panels), [p.note for p in panels if p.figure is None]


def test_a_month_without_traffic_is_a_gap_not_a_zero(table: pd.DataFrame) -> None:
    volume = next(p for p in build_panels(table) if p.key == "volume").figure
    assert volume is not None
    bars = [trace for trace in volume.data if trace.type == "bar"]
    months = list(bars[0].x)
    # the calendar has every month, the gap included, in order
    assert months == sorted([*MONTHS, GAP])
    gap = months.index(GAP)
    for trace in volume.data:
        assert trace.y[gap] is None, trace.name
    # the served months carry their own volume (300 + the month's index), per version
    totals = [sum(t.y[i] or 0 for t in bars) for i in range(len(months)) if months[i] != GAP]
    assert totals == [300.0 + i for i in range(len(MONTHS))]


def test_version_change_and_trigger_are_marked_on_time_axes(table: pd.DataFrame) -> None:
    for panel in build_panels(table):
        if panel.key == "vintage":  # months on book, not calendar time
            continue
        assert panel.figure is not None
        shapes = {(s.x0, s.line.dash) for s in panel.figure.layout.shapes if s.x0 is not None}
        assert ("2024-04", "dot") in shapes, panel.key  # v2 served from 2024-04
        assert ("2024-03", "dash") in shapes, panel.key  # the trigger fired in 2024-03


def test_backtest_lights_come_from_the_rows(table: pd.DataFrame) -> None:
    panel = next(p for p in build_panels(table) if p.key == "backtest")
    assert panel.figure is not None
    heat = panel.figure.data[0]
    months = list(heat.x)
    first = months.index("2024-01")
    # bands 1..3 were written green, yellow, red; immature months have no light
    assert [row[first] for row in heat.z] == [0, 1, 2]
    assert all(row[months.index("2024-06")] is None for row in heat.z)


def test_empty_table_says_what_to_run(tmp_path: Path) -> None:
    empty = pd.DataFrame(columns=list(TABLE_COLUMNS))
    page = render_page(empty, source="sqlite:///x.db")
    assert "creditops monitor --by month" in page
    assert "Plotly" not in page  # no charts at all, so none broken
    summary = write_dashboard(empty, tmp_path / "d.html", source="sqlite:///x.db")
    assert summary.months == 0 and summary.panels_drawn == 0
    assert "creditops simulate" in EMPTY_HINT


def test_a_panel_without_data_gives_its_reason(table: pd.DataFrame) -> None:
    no_shadow = table[table["kind"] != "shadow"]
    panel = next(p for p in build_panels(no_shadow) if p.key == "shadow")
    assert panel.figure is None and "no challenger was shadowed" in panel.note


def test_run_dashboard_writes_a_self_contained_page(store_url: str, tmp_path: Path) -> None:
    output = tmp_path / "reports" / "dashboard.html"
    summary = run_dashboard(load_config(None).dashboard, store_url=store_url, output=output)
    page = output.read_text(encoding="utf-8")
    assert summary.months == len(MONTHS) and summary.versions == 2
    assert summary.panels_drawn == 7 and summary.bytes == len(page.encode())
    assert "<script src=" not in page and "<link" not in page  # opens offline: nothing fetched
    assert not list(output.parent.glob(".*partial"))


def test_a_password_in_the_store_url_is_not_shown(table: pd.DataFrame) -> None:
    page = render_page(table, source="postgresql+psycopg://u:hunter2@db:5432/x")
    assert "hunter2" not in page


def test_read_table_round_trip_feeds_the_page(store_url: str) -> None:
    # the page reads exactly what the monitor stored: no metric lost on the way
    table = read_table(store_url)
    metrics = set(table["metric"])
    assert {"volume", "psi:Income", "est_roc_auc", "backtest:band01", "trigger:decision"} <= metrics


@pytest.mark.parametrize("missing", ["metric", "value"])
def test_a_malformed_table_is_a_clear_error(table: pd.DataFrame, missing: str) -> None:
    with pytest.raises(ValueError, match=missing):
        build_panels(table.drop(columns=[missing]))
