"""The command line's frame: the Typer app, the config it loads, errors as exit codes.

:mod:`creditops.cli.app` and :mod:`creditops.cli.views` declare the commands on
:data:`app`; each runs its stage through :func:`run_stage`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import typer

from creditops.cli import options, render
from creditops.config import Settings, load_config
from creditops.errors import CreditOpsError
from creditops.logs import configure_logging

Result = TypeVar("Result")

# read from the directory creditops runs in when no --config is given
DEFAULT_CONFIG = Path("creditops.toml")

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="creditops: credit-risk scoring, from tracked search to drift-triggered retraining.",
    pretty_exceptions_enable=False,
    # help texts name config sections like [serve]: not rich markup
    rich_markup_mode=None,
)


class State:
    """What the root callback read, for the command that runs after it."""

    config_path: Path | None = None


@app.callback()
def _root(config: options.ConfigPath = None) -> None:
    State.config_path = config


def config_path() -> Path | None:
    """The config file: ``--config``, else ./creditops.toml if present, else none (the defaults)."""
    if State.config_path is not None:
        return State.config_path
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def settings() -> Settings:
    """Load the config named by ``--config`` (or ./creditops.toml, or the embedded defaults)."""
    return load_config(config_path())


@contextmanager
def handled() -> Iterator[None]:
    """Turn a CreditOpsError into one line on stderr and its exit code."""
    try:
        yield
    except CreditOpsError as exc:
        render.error(str(exc))
        raise typer.Exit(exc.exit_code) from None


def run_stage(body: Callable[[Settings], Result]) -> Result:
    """Load config, configure logging, run ``body``; errors become exit codes."""
    with handled():
        config = settings()
        configure_logging(config.logging)
        return body(config)
