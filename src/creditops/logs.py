"""Logging set-up: the console (rich) and the run log file, as configured."""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

from creditops.config import LoggingConfig

_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"


def configure_logging(config: LoggingConfig, *, console: bool = True) -> Path:
    """Send creditops' log records to the console and append them to ``config.runs_log``.

    Safe to call more than once: earlier creditops handlers are replaced.

    Returns:
        The run log file's path.
    """
    root = logging.getLogger("creditops")
    root.setLevel(config.level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    path = Path(config.runs_log)
    path.parent.mkdir(parents=True, exist_ok=True)
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter(_FILE_FORMAT))
    root.addHandler(file_handler)
    if console:
        # stderr: stdout stays clean for tables and --json output
        root.addHandler(
            RichHandler(
                console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False
            )
        )
    root.propagate = False
    return path
