"""The ``creditops`` command line: one short command per stage.

Each command loads the config, configures logging, calls one library function
and turns its result, or a ``CreditOpsError``, into output and an exit code.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
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
    # help texts name config sections like [serve]: not rich markup
    rich_markup_mode=None,
)
console = Console()
err_console = Console(stderr=True)


class State:
    config_path: Path | None = None


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="TOML config file (default: ./creditops.toml if present)."
        ),
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
        err_console.print(
            f"error: {exc}", style="bold red", markup=False, highlight=False, soft_wrap=True
        )
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
    table.add_row(
        "rows (raw / usable / refused)",
        f"{summary['raw_rows']} / {summary['usable_rows']} / {summary['rejected_rows']}",
    )
    balance = summary["class_balance"]
    table.add_row(
        "class balance",
        f"good {balance['good']}, bad {balance['bad']} (bad rate {summary['bad_rate']:.3f})",
    )
    table.add_row("data hash", summary["data_hash"])
    for column, count in summary["missing"].items():
        if count:
            table.add_row(f"missing {column}", str(count))
    console.print(table)
    for line in summary["violations"][:50]:
        console.print(f"  refused: {line}", markup=False)


@app.command("train")
def train_command(
    promote_after: Annotated[
        bool,
        typer.Option("--promote/--no-promote", help="Run the promotion gate right after training."),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Search processes on this machine (default: [train] workers)."),
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Name of the shared study (with --workers or storage).")
    ] = None,
    join: Annotated[
        str | None,
        typer.Option(
            "--join",
            metavar="STUDY",
            help="Only search: add this process to STUDY in [train] study_storage, then exit.",
        ),
    ] = None,
    worker_index: Annotated[
        int, typer.Option(min=1, help="With --join: this worker's number (its sampler seed).")
    ] = 1,
) -> None:
    """Search every configured model family, log every trial, register the finalists."""
    from creditops.training.run import run_training

    if join is not None:
        _join_study(join, worker_index)
        return

    def body(config: Settings) -> Any:
        if workers is not None:
            config = config.model_copy(
                update={"train": config.train.model_copy(update={"workers": workers})}
            )
        report = run_training(config, study=study)
        decision = None
        if promote_after:
            from creditops import registry

            client = registry.connect(config.mlflow)
            decision = registry.promote(client, config.mlflow, config.promote)
        return report, decision

    report, decision = run_stage(body)
    table = Table(
        title=f"training run {report.run_id} ({report.seconds:.1f} s, data {report.data_hash[:12]})",
        caption="* the challenger: best CV ROC AUC (the test split only reports)",
    )
    for column in (
        "family",
        "trials",
        "CV ROC AUC",
        "test ROC AUC",
        "test KS",
        "F1 bad",
        "F1 good",
        "threshold",
        "version",
    ):
        table.add_column(column)
    for f in report.finalists:
        m = f.test_metrics
        mark = "*" if f.version == report.challenger_version else ""
        table.add_row(
            f.family,
            str(f.trials),
            f"{f.cv_auc:.4f} ± {f.cv_auc_sd:.4f}",
            f"{m['roc_auc']:.4f}",
            f"{m['ks']:.4f}",
            f"{m['f1_bad']:.4f}",
            f"{m['f1_good']:.4f}",
            f"{f.threshold:.4f}",
            f"{f.version}{mark}",
        )
    console.print(table)
    if decision is not None:
        _print_decision(decision)


def _join_study(name: str, index: int) -> None:
    from creditops.errors import ConfigError
    from creditops.training.shared_study import SharedStudy, run_worker

    def body(config: Settings) -> Any:
        if not config.train.study_storage:
            raise ConfigError("train.study_storage: --join needs the shared study's storage URL")
        return run_worker(config, SharedStudy(name, config.train.study_storage), index)

    done = run_stage(body)
    console.print(
        f"worker {index} on study {name}: "
        + ", ".join(f"{family} {count} trial(s)" for family, count in done.items())
    )


def _print_decision(decision: Any) -> None:
    verdict = (
        "[bold green]PROMOTED[/]" if decision.promoted else "[bold yellow]kept the champion[/]"
    )
    console.print(f"promotion gate: {verdict} — {decision.reason}")


@app.command("promote")
def promote_command(
    version: Annotated[
        int | None,
        typer.Option("--version", help="Challenger version (default: the 'challenger' alias)."),
    ] = None,
) -> None:
    """Apply the promotion gate: the challenger becomes champion only if it is good enough and better."""
    from creditops import registry

    def body(config: Settings) -> Any:
        client = registry.connect(config.mlflow)
        return registry.promote(client, config.mlflow, config.promote, challenger_version=version)

    decision = run_stage(body)
    _print_decision(decision)
    if not decision.promoted:
        raise typer.Exit(0)


@app.command("models")
def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """List the registered versions with their aliases and key metrics."""
    from creditops import registry

    def body(config: Settings) -> Any:
        client = registry.connect(config.mlflow)
        return config.mlflow.registered_model, registry.list_versions(
            client, config.mlflow.registered_model
        )

    name, versions = run_stage(body)
    if as_json:
        print_json([v.as_dict() for v in versions])
        return
    if not versions:
        console.print(f"no versions of {name!r} yet: run `creditops train`")
        return
    table = Table(title=f"registered model {name}")
    for column in (
        "version",
        "aliases",
        "family",
        "CV AUC",
        "test AUC",
        "test KS",
        "F1 bad",
        "threshold",
        "data",
    ):
        table.add_column(column)
    for v in versions:
        m = v.metrics
        table.add_row(
            str(v.version),
            ", ".join(v.aliases) or "-",
            v.family,
            _fmt(m.get("cv_roc_auc")),
            _fmt(m.get("test_roc_auc")),
            _fmt(m.get("test_ks")),
            _fmt(m.get("test_f1_bad")),
            f"{v.threshold:.4f}",
            v.data_hash[:12],
        )
    console.print(table)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@app.command("rollback")
def rollback_command() -> None:
    """Move 'champion' back to the 'previous' version."""
    from creditops import registry

    def body(config: Settings) -> Any:
        client = registry.connect(config.mlflow)
        return registry.rollback(client, config.mlflow.registered_model)

    old, new = run_stage(body)
    console.print(f"champion moved back from version {old} to version {new}")


@app.command("serve")
def serve_command(
    host: Annotated[str | None, typer.Option(help="Bind address (default: [serve] host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: [serve] port).")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes (default: [serve] workers).")
    ] = None,
) -> None:
    """Serve the champion over HTTP: /predict, /invocations, /feedback, /ready, /model, /metrics."""
    from creditops.serving.server import serve

    def body(config: Settings) -> None:
        path = State.config_path
        if path is None and Path("creditops.toml").is_file():
            path = Path("creditops.toml")
        # serve() checks the inference log's database (one line naming its URL) and
        # creates its table before any worker starts
        serve(config, config_path=path, host=host, port=port, workers=workers)

    run_stage(body)


@app.command("score")
def score_command(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="A .csv or .parquet file.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The scores: a .csv or .parquet file.")
    ],
    model_version: Annotated[
        int | None, typer.Option(help="A registered version (default: the champion).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            metavar="ADDRESS",
            help="Score on a Dask cluster: a scheduler address, or local[:N] "
            "(default: [batch] dask_scheduler; empty = this process).",
        ),
    ] = None,
) -> None:
    """Score a file in chunks: probability, decision, reasons; contract breaches to a rejects file."""
    from creditops.batch.run import score_file

    summary = run_stage(
        lambda c: score_file(
            c,
            input_path,
            output,
            model_version=model_version,
            show_progress=not as_json,
            dask_scheduler=dask,
        )
    )
    if as_json:
        print_json(summary.as_dict())
        return
    console.print(
        f"scored {summary.scored} of {summary.input_rows} row(s) with {summary.model_family} "
        f"v{summary.model_version} ({summary.declined} declined) -> {summary.output}; "
        f"rejected {summary.rejected} -> {summary.rejects}; reasons: {summary.reasons}; "
        f"{summary.seconds:.1f} s, {summary.rows_per_second:,.0f} rows/s",
        markup=False,
    )


@app.command("mlflow-server")
def mlflow_server_command(
    port: Annotated[int | None, typer.Option(help="Port (default: [mlflow_server] port).")] = None,
) -> None:
    """Run the MLflow tracking server of [mlflow_server]: database backend, proxied artifacts."""
    from creditops.infra import run_mlflow_server

    def body(config: Settings) -> None:
        server = config.mlflow_server
        if port is not None:
            server = server.model_copy(update={"port": port})
        run_mlflow_server(server)

    run_stage(body)


# --- the production loop: simulate, monitor, check ------------------------------


def _figure(value: Any) -> str:
    if value is None:
        return "n/a"
    number = float(value)
    return "n/a" if number != number else f"{number:.4f}"


@app.command("simulate")
def simulate_command(
    scenario: Annotated[
        str | None,
        typer.Option(
            "--scenario",
            "-s",
            help="none | covariate | concept | original | ordered-tail (default: [simulate] scenario).",
        ),
    ] = None,
    samples: Annotated[
        int | None, typer.Option(min=1, help="Applicants to send (default: [simulate] samples).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Seed (default: [simulate] seed).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Send simulated applicants to the running service, then post their outcomes to /feedback."""
    from creditops.simulation.run import run_simulation

    summary = run_stage(
        lambda c: run_simulation(c, scenario, samples=samples, seed=seed, show_progress=not as_json)
    )
    if as_json:
        print_json(summary.as_dict())
        return
    table = Table(title=f"simulation {summary.scenario} (seed {summary.seed})", show_header=False)
    table.add_row(
        "sent / scored / refused", f"{summary.rows} / {summary.scored} / {summary.refused}"
    )
    table.add_row("decline rate", _figure(summary.decline_rate))
    table.add_row(
        "true bad rate / model accuracy",
        f"{_figure(summary.bad_rate)} / {_figure(summary.accuracy)}",
    )
    table.add_row(
        "outcomes now / late / never / failed",
        f"{summary.feedback_now} / {summary.feedback_late} / {summary.feedback_never} / "
        f"{summary.feedback_failed}",
    )
    table.add_row(
        "model versions", ", ".join(f"v{v}: {n}" for v, n in summary.model_versions.items())
    )
    table.add_row("seconds", f"{summary.seconds:.1f}")
    console.print(table)
    if summary.refused:
        raise typer.Exit(1)


@app.command("monitor")
def monitor_command(
    last: Annotated[
        int | None,
        typer.Option(
            "--last", min=1, help="Newest N rows of the log (default: [monitor] window_rows)."
        ),
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Rows created at or after this time (UTC if naive).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="Rows created before this time (UTC if naive).")
    ] = None,
    current: Annotated[
        Path | None,
        typer.Option("--current", help="A CSV of applicants to monitor instead of the log."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Drift and quality of a traffic window against the champion's training data."""
    from creditops.monitoring.run import run_monitor

    result = run_stage(
        lambda c: run_monitor(c, last_n=last, since=since, until=until, current_csv=current)
    )
    if as_json:
        print_json(result.as_dict())
        return
    table = Table(title=f"monitor: champion v{result.champion_version}, {result.window}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("band / reference")
    table.add_row("rows (labelled)", f"{result.rows} ({result.labelled_rows})", "")
    if result.drift_share is not None:
        table.add_row(
            "drifted features (Evidently)",
            _figure(result.drift_share),
            ", ".join(result.drifted_columns) or "none",
        )
    if result.score_psi is not None:
        table.add_row("PSI score", _figure(result.score_psi), result.psi_bands.get("score", ""))
    for name, value in sorted(result.feature_psi.items(), key=lambda kv: -kv[1]):
        table.add_row(f"PSI {name}", _figure(value), result.psi_bands.get(name, ""))
    if result.quality is not None:
        for key, train_key in (
            ("roc_auc", "test_roc_auc"),
            ("ks", "test_ks"),
            ("f1_bad", "test_f1_bad"),
        ):
            table.add_row(
                key,
                _figure(result.quality.get(key)),
                f"training {_figure(result.training.get(train_key))}",
            )
    console.print(table)
    for message in result.messages:
        console.print(f"note: {message}", markup=False)
    for kind, path in result.reports.items():
        console.print(f"{kind}: {path}", markup=False)


@app.command("check")
def check_command(
    retrain: Annotated[
        bool | None,
        typer.Option(
            "--retrain/--no-retrain",
            help="Retrain when the trigger fires (default: [check] retrain).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the decision record as JSON.")
    ] = False,
) -> None:
    """Apply the retraining trigger to the latest monitoring figures; retrain if asked."""
    from creditops.retraining.run import run_check

    decision = run_stage(lambda c: run_check(c, retrain))
    if as_json:
        print_json(decision.as_dict())
        return
    table = Table(title=f"check: champion v{decision.champion_version} -> {decision.action}")
    table.add_column("rule")
    table.add_column("value", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("verdict")
    for rule in decision.rules:
        verdict = "FIRED" if rule["fired"] else ("skipped" if rule["value"] is None else "ok")
        table.add_row(rule["rule"], _figure(rule["value"]), f"{rule['limit']:g}", verdict)
    console.print(table)
    for line in [*decision.reasons, *decision.messages]:
        console.print(f"  {line}", markup=False)
    if decision.retrain is not None:
        r = decision.retrain
        console.print(
            f"retrained: v{r.challenger_version} {'PROMOTED' if r.promoted else 'not promoted'}: {r.reason}",
            markup=False,
        )
    console.print(f"decision record: {decision.record_path}", markup=False)


@app.command("pipeline")
def pipeline_command(
    scenario: Annotated[
        str | None,
        typer.Option("--scenario", "-s", help="Traffic scenario (default: [pipeline] scenario)."),
    ] = None,
    samples: Annotated[
        int | None, typer.Option(min=1, help="Applicants to send (default: [simulate] samples).")
    ] = None,
    retrain: Annotated[
        bool | None, typer.Option("--retrain/--no-retrain", help="Retrain when the trigger fires.")
    ] = None,
) -> None:
    """The whole loop: train, promote, serve, simulate, monitor, check, retrain, confirm the swap."""
    from creditops.pipeline import run_pipeline

    valid = ("none", "covariate", "concept", "original", "ordered-tail")
    if scenario is not None and scenario not in valid:
        err_console.print(
            f"error: --scenario {scenario!r} is not one of {', '.join(valid)}",
            style="bold red",
            soft_wrap=True,
        )
        raise typer.Exit(2)

    def body(config: Settings) -> Any:
        path = State.config_path
        if path is None and Path("creditops.toml").is_file():
            path = Path("creditops.toml")
        return run_pipeline(
            config,
            config_path=path,
            scenario=scenario or config.pipeline.scenario,
            samples=samples,
            retrain=config.pipeline.retrain if retrain is None else retrain,
            ready_timeout=config.pipeline.ready_timeout_seconds,
            poll_seconds=config.pipeline.poll_seconds,
        )

    summary = run_stage(body)
    table = Table(title=f"creditops pipeline, scenario {summary.scenario}", show_header=False)
    table.add_row(
        "champion before", f"v{summary.champion_before} (served v{summary.served_before})"
    )
    table.add_row("drift", summary.drift_verdict)
    table.add_row("trigger", summary.trigger)
    table.add_row("retraining", summary.retrain)
    swap = "OK" if summary.swap_ok else "MISMATCH"
    table.add_row(
        "champion after",
        f"v{summary.champion_after} (served v{summary.served_after}, expected v{summary.expected_after}: {swap})",
    )
    table.add_row(
        "inference log", f"{summary.rows_logged} rows logged for {summary.rows_sent} scored"
    )
    for name, path in sorted(summary.reports.items()):
        table.add_row(f"report {name}", path)
    table.add_row("decision record", summary.decision_record)
    table.add_row("server log", summary.server_log)
    table.add_row("time", ", ".join(f"{k} {v:.0f} s" for k, v in summary.stage_seconds.items()))
    table.add_row("inspect", summary.mlflow_ui)
    console.print(table)
    if not summary.ok:
        raise typer.Exit(1)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
