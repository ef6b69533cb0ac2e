"""What ``creditops compare`` and ``creditops dashboard`` print."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.table import Table

from creditops.cli.render import console, print_json

if TYPE_CHECKING:
    from creditops.comparison.run import ComparisonReport
    from creditops.dashboard.page import DashboardSummary


def dashboard(summary: DashboardSummary) -> None:
    """Where the dashboard page was written, and what it shows."""
    if summary.months == 0:
        console.print(f"{summary.path}: the monitoring table is empty; the page says what to run")
        return
    console.print(
        f"{summary.path}: {summary.months} months, {summary.versions} versions, "
        f"{summary.panels_drawn} panels drawn, {summary.panels_waiting} waiting for data, "
        f"{summary.bytes / 1e6:.1f} MB, {summary.seconds:.2f} s"
    )


def comparison(report: ComparisonReport, as_json: bool) -> None:
    """Champion vs challenger: the swap sets by cut-off rule, then the ROC AUCs."""
    result = report.comparison
    if as_json:
        print_json(result.as_dict())
        return
    console.print(result.headline)
    table = Table("cut-off rule", "challenger cut-off", "agreement", "swap-in", "swap-out")
    for swaps in result.swaps:
        table.add_row(
            swaps.rule,
            f"{swaps.challenger_threshold:.4f}",
            f"{swaps.agreement:.1%}",
            str(swaps.swap_in),
            str(swaps.swap_out),
        )
    console.print(table)
    console.print(f"score PSI {result.score_psi:.4f}, Spearman {result.spearman:.4f}")
    console.print(f"realised: {result.realised.get('note')}")
    console.print(f"written: {report.json_path}, {report.html_path}; MLflow run {report.run_id}")
