"""Logging set-up: the console (rich) and the run log file, as configured.

Every record leaves through :class:`RedactingFilter`: a URL in a message
(a store, a tracking server, a failing driver's error) is written without its
password, whoever logged it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

from creditops.config import LoggingConfig
from creditops.secrets import redact_text

_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s"


class RedactingFilter(logging.Filter):
    """Hide the passwords of URLs in a record's message (it is formatted here, once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "://" in message:
            record.msg, record.args = redact_text(message), None
        return True


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output (tracebacks included) has URL passwords hidden."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


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
    file_handler.setFormatter(RedactingFormatter(_FILE_FORMAT))
    file_handler.addFilter(RedactingFilter())
    root.addHandler(file_handler)
    if console:
        # stderr: stdout stays clean for tables and --json output
        rich_handler = RichHandler(
            console=Console(stderr=True), show_path=False, rich_tracebacks=False, markup=False
        )
        rich_handler.addFilter(RedactingFilter())
        root.addHandler(rich_handler)
    root.propagate = False
    return path
