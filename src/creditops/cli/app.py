"""The ``creditops`` command line: one short command per stage.

Each command loads the config, configures logging, calls one library function
and turns its result, or a ``CreditOpsError``, into output and an exit code.
The options are declared in :mod:`creditops.cli.options`, the tables in
:mod:`creditops.cli.render`.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from creditops import stages
from creditops.cli import help_texts, options, render, render_monthly
from creditops.cli import views as views  # registers `compare` and `dashboard` on the app
from creditops.cli.base import app, config_path, run_stage
from creditops.config import SCENARIOS, Settings
from creditops.errors import ConfigError

if TYPE_CHECKING:
    from creditops.batch.run import BatchSummary
    from creditops.pipeline import PipelineSummary
    from creditops.registry import ModelRef, PromotionDecision
    from creditops.serving.journal import ReplaySummary
    from creditops.training.run import TrainingReport

__all__ = ["app", "main", "views"]


@app.command("data")
def data_command(as_json: options.DescriptionJson = False) -> None:
    """Load the dataset and describe it: rows, class balance, missing values, contract breaches."""
    from creditops.data import describe_dataset, load_dataset

    summary = run_stage(lambda c: describe_dataset(load_dataset(c.data)))
    render.dataset(summary, as_json)


@app.command("train")
def train_command(
    promote_after: options.PromoteAfter = False,
    workers: options.SearchWorkers = None,
    study: options.StudyName = None,
    join: options.JoinStudy = None,
    worker_index: options.WorkerIndex = 1,
) -> None:
    """Search every configured model family, log every trial, register the finalists."""
    if join is not None:
        done = run_stage(lambda c: _join_study(c, join, worker_index))
        render.study_worker(join, worker_index, done)
    else:
        report, decision = run_stage(lambda c: _train(c, workers, study, promote_after))
        render.training(report, decision)


def _train(
    config: Settings, workers: int | None, study: str | None, promote_after: bool
) -> tuple[TrainingReport, PromotionDecision | None]:
    """Train (``--workers`` over ``[train] workers``), then run the gate if asked."""
    if workers is not None:
        config = config.model_copy(
            update={"train": config.train.model_copy(update={"workers": workers})}
        )
    report = stages.train(config, study=study)
    decision = None
    if promote_after:
        from creditops import registry

        client = registry.connect(config.mlflow)
        decision = registry.promote(
            client, config.mlflow, config.promote, fairness_config=config.fairness
        )
    return report, decision


def _join_study(config: Settings, name: str, index: int) -> dict[str, int]:
    """Add this process to the shared study ``name``; the trials it ran, per family."""
    from creditops.training.sections import TrainingSections
    from creditops.training.shared_study import SharedStudy, run_worker

    if not config.train.study_storage:
        raise ConfigError("train.study_storage: --join needs the shared study's storage URL")
    shared = SharedStudy(name, config.train.study_storage)
    return run_worker(TrainingSections.from_settings(config), shared, index)


@app.command("promote")
def promote_command(
    version: options.ChallengerVersion = None, min_shadow_rows: options.MinShadowRows = None
) -> None:
    """Apply the promotion gate: the challenger becomes champion only if it is good enough and better."""
    render.promotion(run_stage(lambda c: stages.promote(c, version, min_shadow_rows)))


@app.command("models")
def models_command(as_json: options.ListJson = False) -> None:
    """List the registered versions with their aliases and key metrics."""
    from creditops import registry

    def body(config: Settings) -> tuple[str, list[ModelRef]]:
        client = registry.connect(config.mlflow)
        return config.mlflow.registered_model, registry.list_versions(
            client, config.mlflow.registered_model
        )

    name, versions = run_stage(body)
    render.versions(name, versions, as_json)


@app.command("rollback")
def rollback_command() -> None:
    """Move 'champion' back to the 'previous' version."""
    from creditops import registry

    def body(config: Settings) -> tuple[int, int]:
        client = registry.connect(config.mlflow)
        return registry.rollback(client, config.mlflow.registered_model)

    old, new = run_stage(body)
    render.rollback(old, new)


@app.command("serve")
def serve_command(
    host: options.ServeHost = None,
    port: options.ServePort = None,
    workers: options.ServeWorkers = None,
) -> None:
    """Serve the champion over HTTP: /predict, /invocations, /feedback, /ready, /model, /metrics."""
    path = config_path()
    run_stage(lambda c: stages.serve(c, path, host=host, port=port, workers=workers))


@app.command("score", help=help_texts.SCORE_HELP)
def score_command(
    input_path: options.InputFile,
    output: options.OutputFile,
    model_version: options.ModelVersion = None,
    as_json: options.SummaryJson = False,
    dask: options.DaskAddress = None,
) -> None:
    summary = _score(input_path, output, model_version, as_json, dask)
    render.batch(summary, as_json)


def _score(
    input_path: Path, output: Path, model_version: int | None, as_json: bool, dask: str | None
) -> BatchSummary:
    """``score_file`` with the ``[batch]`` and ``[mlflow]`` sections and the command's options."""
    from creditops.batch.run import score_file

    return run_stage(
        lambda c: score_file(
            c.batch,
            c.mlflow,
            input_path,
            output,
            model_version=model_version,
            show_progress=not as_json,
            dask_scheduler=dask,
            protected=tuple(c.fairness.protected),
        )
    )


store_app = typer.Typer(
    no_args_is_help=True, help="The inference log: load the rows the service journaled."
)
app.add_typer(store_app, name="store")


@store_app.command("replay")
def store_replay_command(
    journal_dir: options.JournalDir = None, as_json: options.SummaryJson = False
) -> None:
    """Load journaled rows into the inference log ([serve] store_url), each exactly once."""
    summary = run_stage(lambda c: _replay(c, journal_dir))
    render.replay(summary, as_json)


def _replay(config: Settings, journal_dir: Path | None) -> ReplaySummary:
    """Replay ``--journal-dir`` (default ``[serve] journal_dir``) into ``[serve] store_url``."""
    from creditops.serving.journal import replay_journals
    from creditops.serving.store import InferenceStore

    store = InferenceStore(config.serve.store_url)
    try:
        store.create()
        return replay_journals(store, journal_dir or config.serve.journal_dir)
    finally:
        store.close()


@app.command("mlflow-server")
def mlflow_server_command(port: options.MlflowServerPort = None) -> None:
    """Run the MLflow tracking server of [mlflow_server]: database backend, proxied artifacts."""
    from creditops.infra import run_mlflow_server

    def body(config: Settings) -> None:
        server = config.mlflow_server
        if port is not None:
            server = server.model_copy(update={"port": port})
        run_mlflow_server(server)

    run_stage(body)


# --- the production loop: simulate, monitor, check ------------------------------


@app.command("simulate")
def simulate_command(
    scenario: options.SimulateScenario = None,
    samples: options.Samples = None,
    seed: options.Seed = None,
    as_json: options.SummaryJson = False,
) -> None:
    """Send simulated applicants to the running service, then post their outcomes to /feedback."""
    progress = not as_json
    summary = run_stage(
        lambda c: stages.simulate(c, scenario, samples=samples, seed=seed, show_progress=progress)
    )
    render.simulation(summary, as_json)
    if summary.refused and not as_json:
        raise typer.Exit(1)


@app.command("monitor", help=help_texts.MONITOR_HELP)
def monitor_command(
    last: options.LastRows = None,
    since: options.Since = None,
    until: options.Until = None,
    current: options.CurrentCsv = None,
    as_json: options.FiguresJson = False,
    by: options.MonitorBy = None,
) -> None:
    if by == "month":
        return _monitor_by_month(since, until, as_json, last=last, current=current)
    result = run_stage(
        lambda c: stages.monitor(c, last_n=last, since=since, until=until, current_csv=current)
    )
    render.monitoring(result, as_json)


def _monitor_by_month(
    since: datetime | None,
    until: datetime | None,
    as_json: bool,
    *,
    last: int | None,
    current: Path | None,
) -> None:
    options.check_by_month(last, current)
    monthly = run_stage(lambda c: stages.monitor_by_month(c, since=since, until=until))
    render_monthly.monthly(monthly, as_json)


@app.command("check")
def check_command(
    retrain: options.CheckRetrain = None, as_json: options.DecisionJson = False
) -> None:
    """Apply the retraining trigger to the latest monitoring figures; retrain if asked."""
    decision = run_stage(lambda c: stages.check(c, retrain))
    render.check(decision, as_json)


@app.command("pipeline")
def pipeline_command(
    scenario: options.PipelineScenario = None,
    samples: options.Samples = None,
    retrain: options.PipelineRetrain = None,
) -> None:
    """The whole loop: train, promote, serve, simulate, monitor, check, retrain, confirm the swap."""
    if scenario is not None and scenario not in SCENARIOS:
        render.error(f"--scenario {scenario!r} is not one of {', '.join(SCENARIOS)}")
        raise typer.Exit(2)
    summary = run_stage(lambda c: _pipeline(c, scenario, samples, retrain))
    render.pipeline(summary)
    if not summary.ok:
        raise typer.Exit(1)


def _pipeline(
    config: Settings, scenario: str | None, samples: int | None, retrain: bool | None
) -> PipelineSummary:
    """``run_pipeline`` with the command's options over the ``[pipeline]`` section."""
    from creditops.pipeline import run_pipeline

    path = config_path()
    return run_pipeline(
        config,
        config_path=path,
        scenario=scenario or config.pipeline.scenario,
        samples=samples,
        retrain=config.pipeline.retrain if retrain is None else retrain,
        ready_timeout=config.pipeline.ready_timeout_seconds,
        poll_seconds=config.pipeline.poll_seconds,
    )


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        render.err_console.print("interrupted")
        sys.exit(130)
