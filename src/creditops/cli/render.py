"""What the ``creditops`` commands print: one function per result, a table or JSON.

Each function takes the result a library call returned and prints it to the
console; none of them decides an exit code. Off a terminal (a pipe, a log
file, CI), tables are printed whole at their natural width
(:class:`WholeLinesConsole`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, cast

from rich.console import Console, ConsoleDimensions
from rich.table import Table

from creditops import schema
from creditops.records import format_figure
from creditops.secrets import redact_text, redact_values

if TYPE_CHECKING:
    from creditops.batch.run import BatchSummary
    from creditops.monitoring.result import MonitorResult
    from creditops.pipeline import PipelineSummary
    from creditops.registry import ModelRef, PromotionDecision
    from creditops.retraining.policy import TriggerDecision
    from creditops.serving.journal import ReplaySummary
    from creditops.simulation.sender import SimulationSummary
    from creditops.training.run import TrainingReport

# off a terminal, as wide as any line: rich wraps text past it and lays tables out no wider
_UNCUT_WIDTH = 100_000


class WholeLinesConsole(Console):
    """A rich console that never cuts its output when the output is not a terminal.

    Without a terminal to ask, rich lays out for 80 columns: a wider table has
    its cells cut to "rando…", "thres…", and logs or CI output lose the
    figures. Off a terminal this console is as wide as its longest line
    (tables keep their natural width, text is not wrapped); on one, it is the
    terminal's width as usual. Decided at each print, since the output stream
    can change after import (a test runner's capture, a redirect).
    """

    @property
    def size(self) -> ConsoleDimensions:
        """The terminal's size; off a terminal, a width no line reaches."""
        size = super().size
        if self.is_terminal:
            return size
        return ConsoleDimensions(_UNCUT_WIDTH, size.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = WholeLinesConsole()
err_console = WholeLinesConsole(stderr=True)

_TRAINING_COLUMNS = (
    "family",
    "trials",
    "CV ROC AUC",
    "test ROC AUC",
    "test KS",
    "F1 bad",
    "F1 good",
    "threshold",
    "version",
)
_VERSION_COLUMNS = (
    "version",
    "aliases",
    "family",
    "CV AUC",
    "test AUC",
    "test KS",
    "F1 bad",
    "threshold",
    "data",
)
# the labelled window's quality figure, and the training metric it is read against
_QUALITY_FIGURES = (("roc_auc", "test_roc_auc"), ("ks", "test_ks"), ("f1_bad", "test_f1_bad"))


def print_json(data: object) -> None:
    """Print ``data`` as indented JSON (values JSON cannot hold as their ``str``)."""
    console.print_json(json.dumps(redact_values(data), default=str))


def error(message: str) -> None:
    """Print ``error: MESSAGE`` on stderr, as one line."""
    err_console.print(
        f"error: {redact_text(message)}",
        style="bold red",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


def dataset(summary: Mapping[str, object], as_json: bool) -> None:
    """The description of the dataset: rows, class balance, hash, missing values, breaches."""
    if as_json:
        print_json(summary)
        return
    balance = cast(Mapping[str, int], summary["class_balance"])
    missing = cast(Mapping[str, int], summary["missing"])
    violations = cast(list[str], summary["violations"])
    table = Table(title=f"dataset {summary['source']}", show_header=False)
    table.add_row(
        "rows (raw / usable / refused)",
        f"{summary['raw_rows']} / {summary['usable_rows']} / {summary['rejected_rows']}",
    )
    table.add_row(
        "class balance",
        f"good {balance['good']}, bad {balance['bad']} (bad rate {summary['bad_rate']:.3f})",
    )
    table.add_row("data hash", str(summary["data_hash"]))
    for column, count in missing.items():
        if count:
            table.add_row(f"missing {column}", str(count))
    console.print(table)
    for line in violations[:50]:
        console.print(f"  refused: {line}", markup=False)


def training(report: TrainingReport, decision: PromotionDecision | None = None) -> None:
    """One row per finalist, the challenger marked; then the gate's verdict, when it ran."""
    table = Table(
        title=f"training run {report.run_id} ({report.seconds:.1f} s, data {report.data_hash[:12]})",
        caption="* the challenger: best CV ROC AUC (the test split only reports)",
    )
    for column in _TRAINING_COLUMNS:
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
        promotion(decision)


def study_worker(name: str, index: int, done: Mapping[str, int]) -> None:
    """The trials one ``train --join`` worker ran, per family."""
    console.print(
        f"worker {index} on study {name}: "
        + ", ".join(f"{family} {count} trial(s)" for family, count in done.items())
    )


def promotion(decision: PromotionDecision) -> None:
    """The promotion gate's verdict and its reason."""
    verdict = (
        "[bold green]PROMOTED[/]" if decision.promoted else "[bold yellow]kept the champion[/]"
    )
    console.print(f"promotion gate: {verdict} — {decision.reason}")


def versions(name: str, refs: list[ModelRef], as_json: bool) -> None:
    """The registered versions of ``name`` with their aliases and key metrics."""
    if as_json:
        print_json([v.as_dict() for v in refs])
        return
    if not refs:
        console.print(f"no versions of {name!r} yet: run `creditops train`")
        return
    table = Table(title=f"registered model {name}")
    for column in _VERSION_COLUMNS:
        table.add_column(column)
    for v in refs:
        m = v.metrics
        table.add_row(
            str(v.version),
            ", ".join(v.aliases) or "-",
            v.family,
            format_figure(m.get("cv_roc_auc"), missing="-"),
            format_figure(m.get("test_roc_auc"), missing="-"),
            format_figure(m.get("test_ks"), missing="-"),
            format_figure(m.get("test_f1_bad"), missing="-"),
            f"{v.threshold:.4f}",
            v.data_hash[:12],
        )
    console.print(table)


def rollback(old: int, new: int) -> None:
    """Which version the champion alias moved from and to."""
    console.print(f"champion moved back from version {old} to version {new}")


def replay(summary: ReplaySummary, as_json: bool) -> None:
    """One line of counts, one per file still in use."""
    if as_json:
        print_json(summary.as_dict())
        return
    console.print(
        f"replayed {summary.files} journal file(s) from {summary.folder}: read {summary.read} "
        f"row(s), loaded {summary.loaded}, already present {summary.already_present}, "
        f"unreadable {summary.unreadable}",
        markup=False,
    )
    for path in summary.busy_files:
        console.print(f"skipped {path}: a running service still writes to it", markup=False)


def batch(summary: BatchSummary, as_json: bool) -> None:
    """One line: rows scored and rejected, where they went, the speed."""
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


def simulation(summary: SimulationSummary, as_json: bool) -> None:
    """What the simulation sent, what was scored or refused, and the outcomes posted."""
    if as_json:
        print_json(summary.as_dict())
        return
    table = Table(title=f"simulation {summary.scenario} (seed {summary.seed})", show_header=False)
    table.add_row(
        "sent / scored / refused", f"{summary.rows} / {summary.scored} / {summary.refused}"
    )
    table.add_row("decline rate", format_figure(summary.decline_rate))
    table.add_row(
        "true bad rate / model accuracy",
        f"{format_figure(summary.bad_rate)} / {format_figure(summary.accuracy)}",
    )
    table.add_row(
        "months / approved / explored",
        f"{summary.months} / {summary.approved} / {summary.explored}",
    )
    table.add_row(
        f"outcomes by {summary.as_of[:10]}: posted / pending / never / failed",
        f"{summary.outcomes_posted} / {summary.outcomes_pending} / {summary.outcomes_never} / "
        f"{summary.feedback_failed}",
    )
    table.add_row("ground truth", summary.ground_truth)
    table.add_row(
        "model versions", ", ".join(f"v{v}: {n}" for v, n in summary.model_versions.items())
    )
    table.add_row("seconds", f"{summary.seconds:.1f}")
    console.print(table)


def monitoring(result: MonitorResult, as_json: bool) -> None:
    """Data quality, drift and quality figures with their bands, then notes and report paths."""
    if as_json:
        print_json(result.as_dict())
        return
    table = Table(title=f"monitor: champion v{result.champion_version}, {result.window}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("band / reference")
    _data_quality_rows(table, result)
    if result.drift_share is not None:
        table.add_row(
            "drifted features (Evidently)",
            format_figure(result.drift_share),
            ", ".join(result.drifted_columns) or "none",
        )
    if result.score_psi is not None:
        table.add_row(
            "PSI score", format_figure(result.score_psi), result.psi_bands.get("score", "")
        )
    for name, value in sorted(result.feature_psi.items(), key=lambda kv: -kv[1]):
        table.add_row(f"PSI {name}", format_figure(value), result.psi_bands.get(name, ""))
    if result.quality is not None:
        for key, train_key in _QUALITY_FIGURES:
            table.add_row(
                key,
                format_figure(result.quality.get(key)),
                f"training {format_figure(result.training.get(train_key))}",
            )
    console.print(table)
    for message in result.messages:
        console.print(f"note: {message}", markup=False)
    for kind, path in result.reports.items():
        console.print(f"{kind}: {path}", markup=False)


def _data_quality_rows(table: Table, result: MonitorResult) -> None:
    """The window's rows: valid of all, labelled, broken (count and share), by rule, examples."""
    table.add_row(
        "rows", f"{result.rows} of {result.total_rows}", "valid rows: the figures use these"
    )
    table.add_row("labelled rows", str(result.labelled_rows), "")
    table.add_row(
        "rows breaking the contract",
        f"{result.invalid_rows} ({result.invalid_share:.4f})",
        "share of the window, left out of the figures",
    )
    for key, count in result.invalid_by_rule.items():
        table.add_row(f"  {key}", str(count), "rows")
    for example in result.invalid_examples:
        where = f"row {example['row']}"
        if example.get("request_id"):
            where += f" (request {example['request_id']})"
        table.add_row(
            f"  e.g. {where}",
            "",
            f"{example['field']}: {schema.show_value(example['value'])} {example['rule']}",
        )


def check(decision: TriggerDecision, as_json: bool) -> None:
    """Every trigger rule with its value, limit and verdict; the figures judged; the retraining."""
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
        table.add_row(rule["rule"], format_figure(rule["value"]), f"{rule['limit']:g}", verdict)
    console.print(table)
    if decision.window:
        age = decision.figures_age_minutes
        console.print(
            f"figures judged: {decision.window}, computed at {decision.figures_computed_at}"
            + (f" ({age:.1f} minutes before the check)" if age is not None else ""),
            markup=False,
        )
    for line in [*decision.reasons, *decision.messages]:
        console.print(f"  {line}", markup=False)
    if decision.retrain is not None:
        r = decision.retrain
        console.print(
            f"retrained: v{r.challenger_version} {'PROMOTED' if r.promoted else 'not promoted'}"
            + (f" (gate rule {r.gate_rule})" if r.gate_rule else "")
            + f": {r.reason}",
            markup=False,
        )
    if decision.retrain_error:
        console.print(f"retraining FAILED: {decision.retrain_error}", markup=False)
    console.print(f"decision record: {decision.record_path}", markup=False)


def pipeline(summary: PipelineSummary) -> None:
    """The closing table of ``creditops pipeline``: each stage's outcome and the swap check."""
    table = Table(title=f"creditops pipeline, scenario {summary.scenario}", show_header=False)
    table.add_row(
        "champion before", f"v{summary.champion_before} (served v{summary.served_before})"
    )
    table.add_row("drift", summary.drift_verdict)
    table.add_row("by month", summary.months)
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
