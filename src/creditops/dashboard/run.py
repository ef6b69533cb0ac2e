"""``creditops dashboard``: read the monitoring table, write (or serve) the page."""

from __future__ import annotations

from pathlib import Path

from creditops.config import DashboardConfig
from creditops.dashboard.page import DashboardSummary, write_dashboard


def run_dashboard(
    config: DashboardConfig, *, store_url: str, output: Path | None = None
) -> DashboardSummary:
    """Write the dashboard page of the monitoring table in ``store_url``.

    Args:
        config: the ``[dashboard]`` section.
        store_url: the inference log's database, which holds the monitoring table.
        output: the page to write (default: ``[dashboard] output``).

    Raises:
        StoreError: the monitoring table cannot be read.
    """
    from creditops.monitoring.table import read_table

    return write_dashboard(read_table(store_url), output or config.output, source=store_url)


def serve_live(
    config: DashboardConfig, *, store_url: str, host: str | None = None, port: int | None = None
) -> None:
    """Serve the page live (re-read from the table on each load) until interrupted.

    Raises:
        ConfigError: bound beyond loopback without a viewer key.
    """
    from creditops.dashboard.live import serve_dashboard
    from creditops.monitoring.table import read_table

    serve_dashboard(
        lambda: read_table(store_url),
        source=store_url,
        config=config,
        host=host or config.host,
        port=config.port if port is None else port,
    )
