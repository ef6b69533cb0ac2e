"""The PD backtest table of ``creditops monitor --by month``: the latest matured month's grades."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.table import Table

from creditops.cli.render import console
from creditops.records import format_figure

if TYPE_CHECKING:
    from creditops.monitoring.table import MonitoringRow

COLUMNS = ("grade", "PD from", "PD to", "rows", "bads", "predicted", "observed")
TESTS = ("binomial p", "Jeffreys p", "light")


def backtest(rows: Sequence[MonitoringRow], png: str = "") -> None:
    """The grades of the latest (month, version) with a test, and which months show red or yellow."""
    # the monitoring stage (scipy, pandas) loads only when a monthly run prints
    from creditops.monitoring.backtest import backtest_table

    grades = backtest_table(rows)
    if grades.empty:
        console.print("PD backtest: no grade has enough matured outcomes yet", markup=False)
        return
    last = grades.iloc[-1]
    latest = grades[
        (grades["month"] == last["month"]) & (grades["model_version"] == last["model_version"])
    ]
    table = Table(title=f"PD backtest, applications of {last['month']} (v{last['model_version']})")
    for title in COLUMNS + TESTS:
        table.add_column(title, justify="right")
    for line in latest.to_dict("records"):
        table.add_row(
            str(line["band"]),
            *(format_figure(line[k]) for k in ("pd_from", "pd_to")),
            str(line["rows"]),
            str(line["bads"]),
            *(
                format_figure(line[k])
                for k in ("predicted", "observed", "binomial_p", "jeffreys_p")
            ),
            str(line["light"]),
        )
    console.print(table)
    for light in ("red", "yellow"):
        lit = grades[grades["light"] == light]
        pairs = zip(lit["month"], lit["model_version"], strict=True)
        months = sorted({f"{month} v{version}" for month, version in pairs})
        if months:
            console.print(f"months with a {light} grade: {', '.join(months)}", markup=False)
    if png:
        console.print(f"PD backtest figure: {png}", markup=False)
