"""The commands that look back over the traffic: ``compare`` and ``dashboard``."""

from __future__ import annotations

from creditops import stages
from creditops.cli import options, render_views
from creditops.cli.base import app, run_stage


@app.command("compare")
def compare_command(
    first: options.FromMonth = None,
    last: options.ToMonth = None,
    as_json: options.ComparisonJson = False,
) -> None:
    """Champion vs the shadowed challenger on the same applicants: agreement, swaps, AUCs."""
    months = options.month_range(first, last)
    render_views.comparison(run_stage(lambda c: stages.compare(c, months=months)), as_json)


@app.command("dashboard")
def dashboard_command(
    output: options.DashboardOutput = None,
    serve: options.DashboardServe = False,
    host: options.DashboardHost = None,
    port: options.DashboardPort = None,
) -> None:
    """Draw the monitoring table month by month as one HTML page (--serve: live, on loopback)."""
    if serve:
        run_stage(lambda c: stages.dashboard_live(c, host=host, port=port))
        return
    render_views.dashboard(run_stage(lambda c: stages.dashboard(c, output=output)))
