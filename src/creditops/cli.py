"""The ``creditops`` command line: one short command per stage.

Each command loads the config, configures logging, calls one library function
and turns its result, or a ``CreditOpsError``, into output and an exit code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from creditops.config import Settings, load_config
from creditops.errors import CreditOpsError
from creditops.logs import configure_logging

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="creditops: credit-risk scoring, from tracked search to drift-triggered retraining.",
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


class State:
    config_path: Path | None = None


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="TOML config file (default: ./creditops.toml if present)."),
    ] = None,
) -> None:
    State.config_path = config


def settings() -> Settings:
    """Load the config named by ``--config`` (or ./creditops.toml, or the embedded defaults)."""
    path = State.config_path
    if path is None and Path("creditops.toml").is_file():
        path = Path("creditops.toml")
    return load_config(path)


@contextmanager
def handled() -> Iterator[None]:
    """Turn a CreditOpsError into one line on stderr and its exit code."""
    try:
        yield
    except CreditOpsError as exc:
        err_console.print(f"error: {exc}", style="bold red", markup=False, highlight=False)
        raise typer.Exit(exc.exit_code) from None


def run_stage(body: Callable[[Settings], Any]) -> Any:
    """Load config, configure logging, run ``body``; errors become exit codes."""
    with handled():
        config = settings()
        configure_logging(config.logging)
        return body(config)


def print_json(data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


@app.command("data")
def data_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the description as JSON.")] = False,
) -> None:
    """Load the dataset and describe it: rows, class balance, missing values, contract breaches."""
    from creditops.data import describe_dataset, load_dataset

    summary = run_stage(lambda c: describe_dataset(load_dataset(c.data)))
    if as_json:
        print_json(summary)
        return
    table = Table(title=f"dataset {summary['source']}", show_header=False)
    table.add_row("rows (raw / usable / refused)", f"{summary['raw_rows']} / {summary['usable_rows']} / {summary['rejected_rows']}")
    balance = summary["class_balance"]
    table.add_row("class balance", f"good {balance['good']}, bad {balance['bad']} (bad rate {summary['bad_rate']:.3f})")
    table.add_row("data hash", summary["data_hash"])
    for column, count in summary["missing"].items():
        if count:
            table.add_row(f"missing {column}", str(count))
    console.print(table)
    for line in summary["violations"][:50]:
        console.print(f"  refused: {line}", markup=False)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
