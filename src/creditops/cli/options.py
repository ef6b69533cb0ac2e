"""The options and arguments of the ``creditops`` commands, declared once each.

Every alias carries its flag names, bounds and help text, so a command's
signature reads as a list of names. The help texts name config sections such
as ``[serve]``: the app renders them as plain text, not rich markup.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import typer


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[object], int]:
    """A parser of a whole-number option whose error names the value and the rule.

    Typer's own message ("Input should be a valid integer") names neither.
    """

    def parse(text: object) -> int:
        if isinstance(text, int) and not isinstance(text, bool):
            value = text
        else:
            try:
                value = int(str(text).strip())
            except ValueError:
                raise typer.BadParameter(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise typer.BadParameter(f"{value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            raise typer.BadParameter(f"{value} is above the maximum {maximum}")
        return value

    return parse


def timestamp(text: object) -> datetime:
    """A parser of a date or time option (ISO 8601) whose error names the value and the rule."""
    if isinstance(text, datetime):
        return text
    try:
        return datetime.fromisoformat(str(text).strip())
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date or time: the rule is ISO 8601, "
            "e.g. 2024-07-01 or 2024-07-01T09:30:00+00:00"
        ) from None


def _count(minimum: int, maximum: int | None = None) -> dict[str, object]:
    """The keywords of a whole-number option: its parser and metavar."""
    return {"parser": whole_number(minimum, maximum), "metavar": "INTEGER"}


ConfigPath = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file (default: ./creditops.toml if present)."),
]

# --- --json, worded for what each command prints
DescriptionJson = Annotated[bool, typer.Option("--json", help="Print the description as JSON.")]
ListJson = Annotated[bool, typer.Option("--json", help="Print as JSON.")]
SummaryJson = Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")]
FiguresJson = Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")]
DecisionJson = Annotated[bool, typer.Option("--json", help="Print the decision record as JSON.")]

# --- train
PromoteAfter = Annotated[
    bool,
    typer.Option("--promote/--no-promote", help="Run the promotion gate right after training."),
]
SearchWorkers = Annotated[
    int | None,
    typer.Option(**_count(1), help="Search processes on this machine (default: [train] workers)."),
]
StudyName = Annotated[
    str | None, typer.Option(help="Name of the shared study (with --workers or storage).")
]
JoinStudy = Annotated[
    str | None,
    typer.Option(
        "--join",
        metavar="STUDY",
        help="Only search: add this process to STUDY in [train] study_storage, then exit.",
    ),
]
WorkerIndex = Annotated[
    int, typer.Option(**_count(1), help="With --join: this worker's number (its sampler seed).")
]

# --- promote
ChallengerVersion = Annotated[
    int | None,
    typer.Option(
        "--version", **_count(1), help="Challenger version (default: the 'challenger' alias)."
    ),
]
MinShadowRows = Annotated[
    int | None,
    typer.Option(
        "--min-shadow-rows",
        **_count(0),
        help="Refuse a challenger shadow-scored on fewer live applicants "
        "(default: [promote] min_shadow_rows).",
    ),
]

# --- serve, mlflow-server
ServeHost = Annotated[str | None, typer.Option(help="Bind address (default: [serve] host).")]
ServePort = Annotated[
    int | None, typer.Option(**_count(0, 65535), help="Port (default: [serve] port).")
]
ServeWorkers = Annotated[
    int | None, typer.Option(**_count(1), help="Worker processes (default: [serve] workers).")
]
MlflowServerPort = Annotated[
    int | None,
    typer.Option(**_count(1, 65535), help="Port (default: [mlflow_server] port)."),
]

# --- store replay
JournalDir = Annotated[
    Path | None,
    typer.Option(help="Folder of journal files (default: [serve] journal_dir)."),
]

# --- score
InputFile = Annotated[Path, typer.Argument(metavar="INPUT", help="A .csv or .parquet file.")]
OutputFile = Annotated[
    Path, typer.Option("--output", "-o", help="The scores: a .csv or .parquet file.")
]
ModelVersion = Annotated[
    int | None,
    typer.Option(**_count(1), help="A registered version (default: the champion)."),
]
DaskAddress = Annotated[
    str | None,
    typer.Option(
        "--dask",
        metavar="ADDRESS",
        help="Score on a Dask cluster: a scheduler address, or local[:N] "
        "(default: [batch] dask_scheduler; empty = this process).",
    ),
]

# --- simulate, pipeline
SimulateScenario = Annotated[
    str | None,
    typer.Option(
        "--scenario",
        "-s",
        help="none | covariate | concept | downturn | original | ordered-tail "
        "(default: [simulate] scenario).",
    ),
]
PipelineScenario = Annotated[
    str | None,
    typer.Option("--scenario", "-s", help="Traffic scenario (default: [pipeline] scenario)."),
]
Samples = Annotated[
    int | None,
    typer.Option(
        **_count(1),
        help="Applicants in all, over the calendar's months (default: [simulate] samples, "
        "else months x applications_per_month).",
    ),
]
Seed = Annotated[int | None, typer.Option(**_count(0), help="Seed (default: [simulate] seed).")]

# --- monitor
MonitorBy = Annotated[
    Literal["month"] | None,
    typer.Option(
        "--by",
        help="month: every application month of the log into the monitoring table "
        "(--since/--until select application dates).",
    ),
]
LastRows = Annotated[
    int | None,
    typer.Option(
        "--last", **_count(1), help="Newest N rows of the log (default: [monitor] window_rows)."
    ),
]
Since = Annotated[
    datetime | None,
    typer.Option(
        parser=timestamp, metavar="WHEN", help="Rows created at or after this time (UTC if naive)."
    ),
]
Until = Annotated[
    datetime | None,
    typer.Option(
        parser=timestamp, metavar="WHEN", help="Rows created before this time (UTC if naive)."
    ),
]
CurrentCsv = Annotated[
    Path | None,
    typer.Option("--current", help="A CSV of applicants to monitor instead of the log."),
]

# --- check, pipeline
CheckRetrain = Annotated[
    bool | None,
    typer.Option(
        "--retrain/--no-retrain", help="Retrain when the trigger fires (default: [check] retrain)."
    ),
]
PipelineRetrain = Annotated[
    bool | None, typer.Option("--retrain/--no-retrain", help="Retrain when the trigger fires.")
]

DashboardOutput = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="The page to write (default: [dashboard] output)."),
]
DashboardServe = Annotated[
    bool,
    typer.Option(
        "--serve", help="Serve the page live on [dashboard] host/port, re-read on every load."
    ),
]
DashboardHost = Annotated[
    str | None, typer.Option("--host", help="Bind address (default: [dashboard] host).")
]
DashboardPort = Annotated[
    int | None,
    typer.Option("--port", **_count(0, 65535), help="Port (default: [dashboard] port)."),
]

FromMonth = Annotated[
    str | None,
    typer.Option("--from", help="First application month, YYYY-MM (default: the first logged)."),
]
ToMonth = Annotated[
    str | None,
    typer.Option("--to", help="Last application month, YYYY-MM (default: the last logged)."),
]
ComparisonJson = Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")]


def month_range(first: str | None, last: str | None) -> tuple[str, str] | None:
    """``--from``/``--to`` as a (first, last) month pair; None when neither is given.

    Raises:
        typer.BadParameter: a month is not YYYY-MM, or the range runs backwards.
    """
    if first is None and last is None:
        return None
    for option, value in (("--from", first), ("--to", last)):
        if value is not None:
            try:
                datetime.strptime(value, "%Y-%m")
            except ValueError:
                raise typer.BadParameter(
                    f"{option} {value!r} is not a month: the rule is YYYY-MM, e.g. 2024-07"
                ) from None
    pair = (first or "0000-01", last or "9999-12")
    if pair[0] > pair[1]:
        raise typer.BadParameter(f"--from {first} is after --to {last}: the range runs backwards")
    return pair


def check_by_month(last: int | None, current: Path | None) -> None:
    """``monitor --by month`` reads every month of the log: refuse a window option with it."""
    if last is not None or current is not None:
        raise typer.BadParameter("--by month reads every month of the log: drop --last/--current")
