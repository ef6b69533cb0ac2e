"""The table of ``creditops monitor --by month``: one line per application month and version."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from creditops.cli import render_backtest
from creditops.cli.render import console, print_json
from creditops.records import format_figure

if TYPE_CHECKING:
    from creditops.monitoring.by_month import MonthlyResult

# (metric, column title): the figures a credit team reads first
MONTH_COLUMNS = (
    ("volume", "volume"),
    ("approval_rate", "approved"),
    ("matured_share", "matured"),
    ("bad_rate", "bad rate"),
    ("roc_auc", "ROC AUC"),
    ("ks", "KS"),
    ("psi:score", "PSI score"),
    ("drift_share", "drift share"),
)


def monthly(result: MonthlyResult, as_json: bool) -> None:
    """The key figures of every (month, version); "-" where a figure is absent."""
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=f"monitor by month as of {result.as_of:%Y-%m-%d}")
    table.add_column("month")
    table.add_column("version", justify="right")
    for _, title in MONTH_COLUMNS:
        table.add_column(title, justify="right")
    for line in result.figures().to_dict("records"):
        cells = []
        for metric, _ in MONTH_COLUMNS:
            value = line.get(metric)
            if value is None:
                cells.append("-")
            else:
                cells.append(f"{value:.0f}" if metric == "volume" else format_figure(value))
        table.add_row(str(line["month"]), f"v{line['model_version']}", *cells)
    console.print(table)
    for message in result.messages:
        console.print(f"note: {message}", markup=False)
    console.print(f"{result.rows_written} rows upserted into the monitoring table", markup=False)
    if result.vintage_png:
        console.print(f"vintage curves: {result.vintage_png}", markup=False)
    render_backtest.backtest(result.rows, result.backtest_png)
