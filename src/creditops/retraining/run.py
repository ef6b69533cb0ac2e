"""The ``check`` stage: judge the latest monitoring figures, record the decision, retrain.

The rules and the action are :mod:`creditops.retraining.policy` (pure). Every
decision is written as a JSON record under ``[check] decisions_dir`` and
logged as one line with its figures. With retraining on, a fired trigger
retrains unless the last retraining is younger than ``cooldown_minutes``:
training data = the champion's reference rows + the labelled production rows,
except the most recent ``holdout_share`` of them, which form the holdout on
which the promotion gate compares challenger and champion.

The figures judged must be fresh (:mod:`creditops.retraining.freshness`): the
latest monitor run completed, about the current champion, at most
``max_figures_age_minutes`` old. A window read from a CSV file
(``creditops monitor --current``) can alert but never drives a retraining:
its rows are not in the inference log a retraining reads. The cooldown starts
only once a retraining produced a challenger; a failed one is recorded in the
decision (``retrain_error``) and its error raised; one runs at a time (``lock``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from creditops.config import CheckConfig, MlflowConfig, PromoteConfig
from creditops.data import Split
from creditops.retraining.freshness import require_fresh_figures
from creditops.retraining.lock import retrain_exclusively
from creditops.retraining.policy import (
    RetrainOutcome,
    TriggerDecision,
    decide,
    figures_from_monitor,
)
from creditops.retraining.records import (
    DECISION_LATEST,
    LAST_RETRAIN,
    mark_on_table,
    mark_retrain,
    read_last_retrain,
    write_decision,
)
from creditops.retraining.rows import (
    ProductionCounts,
    ProductionData,
    build_retraining_split,
    production_rows,
)
from creditops.retraining.table import judge_table, read_production

if TYPE_CHECKING:
    from creditops.monitoring.result import MonitorResult
    from creditops.registry import ModelRef, PromotionDecision
    from creditops.tracking import TrackingClient
    from creditops.training.run import TrainingReport
    from creditops.training.sections import TrainingSections

log = logging.getLogger(__name__)

__all__ = [
    "DECISION_LATEST",
    "LAST_RETRAIN",
    "build_retraining_split",
    "mark_retrain",
    "production_rows",
    "read_last_retrain",
    "run_check",
    "write_decision",
]

# --- the stage ----------------------------------------------------------------------


def run_retraining(
    client: TrackingClient,
    champion: ModelRef,
    production: pd.DataFrame,
    *,
    training: TrainingSections,
    promote: PromoteConfig,
    holdout_share: float,
    production_weight: float = 1.0,
    declined: pd.DataFrame | None = None,
    counts: ProductionCounts | None = None,
) -> RetrainOutcome:
    """Retrain on reference + labelled production rows, then apply the promotion gate.

    Args:
        client: the tracking client the champion is read through.
        champion: the model whose reference rows the training data starts from.
        production: labelled production rows, oldest first (:func:`production_rows`).
        training: what the training run is configured by (and the gate's model).
        promote: the promotion gate.
        holdout_share: the share of production rows, newest, kept for the gate
            (``[check] holdout_share``).
        production_weight: a production row's weight, a reference row's 1.
        declined: declined applicants for reject inference (``None``: off).
        counts: what the production rows are (recorded in the training run).

    Raises:
        TrainingError: too few production rows, or the search failed.
        RegistryError: the reference data or a model cannot be read.
    """
    from creditops import registry
    from creditops.registry.holdout import describe_rows

    started = time.perf_counter()
    reference, _ = registry.load_training_frames(client, champion)
    split = build_retraining_split(
        reference, production, holdout_share, production_weight=production_weight, declined=declined
    )
    train, holdout = split.train, split.test
    augmented = 0 if declined is None else 2 * len(declined)
    _log_split(len(reference), split, production_weight, augmented)
    report, decision = _train_and_gate(client, split, training, promote)
    _record_production(client, report.run_id, counts, augmented, len(holdout))
    return RetrainOutcome(
        training_run_id=report.run_id,
        challenger_version=report.challenger_version,
        promoted=decision.promoted,
        reason=decision.reason,
        challenger_auc=decision.challenger_auc,
        champion_auc=decision.champion_auc,
        train_rows=len(train),
        production_rows=len(production),
        holdout_rows=len(holdout),
        seconds=time.perf_counter() - started,
        gate_rule=decision.rule,
        reject_inference_rows=augmented,
        holdout_detail=describe_rows(holdout),
    )


def _log_split(reference: int, split: Split, weight: float, augmented: int) -> None:
    from creditops.registry.holdout import describe_rows

    log.info(
        "retraining: %d reference + %d production rows (weight %g each) + %d reject-inference "
        "rows; holdout of the %d most recent matured rows (%s)",
        reference,
        len(split.train) - reference - augmented,
        weight,
        augmented,
        len(split.test),
        describe_rows(split.test),
    )


def _record_production(
    client: TrackingClient,
    run_id: str,
    counts: ProductionCounts | None,
    augmented: int,
    holdout_rows: int,
) -> None:
    """The production rows' counts and the outcomes' date, as the training run's params."""
    params: dict[str, object] = {
        "retrain_reject_inference_rows": augmented,
        "retrain_holdout_rows": holdout_rows,
    }
    if counts is not None:
        params |= {f"retrain_production_{k}": v for k, v in counts.as_dict().items()}
    client.log_values(run_id, params={k: str(v) for k, v in params.items()})


def _train_and_gate(
    client: TrackingClient,
    split: Split,
    training: TrainingSections,
    promote: PromoteConfig,
) -> tuple[TrainingReport, PromotionDecision]:
    """Train a challenger on the split's training rows, then gate it on the split's holdout."""
    from creditops import registry
    from creditops.training.run import run_training

    report = run_training(training, split=split, context="retrain", show_progress=False)
    decision = registry.promote(
        client,
        training.mlflow,
        promote,
        holdout=split.test,
        challenger_version=report.challenger_version,
        context="retrain",
        fairness_config=training.fairness,
    )
    return report, decision


def run_check(
    config: CheckConfig,
    promote: PromoteConfig,
    training: TrainingSections,
    retrain: bool | None = None,
    *,
    store_url: str,
    window_rows: int,
    reports_dir: Path,
    monitor_result: MonitorResult | None = None,
    now: datetime | None = None,
    performance_months: int = 0,
    as_of: date | Literal[""] = "",
) -> TriggerDecision:
    """Apply the trigger policy to the latest monitoring figures; retrain if asked and due.

    Args:
        config: the ``[check]`` section: the policy, its cooldown and records.
        promote: the promotion gate a retraining's challenger goes through.
        training: what a retraining's training run is configured by (names the champion).
        retrain: retrain when the trigger fires (default: ``[check] retrain``).
        store_url: the inference log a retraining reads (``[serve] store_url``).
        window_rows: how many of its newest rows a retraining reads (``[monitor] window_rows``).
        reports_dir: where the latest monitoring summary is (``[monitor] reports_dir``).
        monitor_result: figures to judge; default: the champion's months in the
            monitoring table (``monitor --by month``), else the latest ``monitor`` summary.
        now: the decision's time; default the clock.
        performance_months: a retraining takes outcomes of vintages this old only (0: all).
        as_of: the outcomes' "now" (``[monitor] as_of``; default the log's latest date).

    Raises:
        MonitorError: no figures, or ones a check must not judge (failed or
            unfinished run, another champion, too old).
        TrainingError / RegistryError: the retraining failed (recorded first).
    """
    retrain, now = config.retrain if retrain is None else retrain, now or datetime.now(UTC)
    (client, champion), last = _champion(training.mlflow), read_last_retrain(config.decisions_dir)
    table = monitor_result is None and judge_table(
        client, champion, store_url, config, retrain=retrain, last=last, now=now
    )
    decision = table or _judge_window(
        config, reports_dir, monitor_result, champion.version, retrain, last, now
    )
    failure: Exception | None = None
    if decision.action == "retrain":  # one at a time: a lock in the inference store
        rows = partial(read_production, store_url, window_rows, as_of, performance_months)
        sections = _RetrainSections(config, promote, training)
        failure = retrain_exclusively(
            decision,
            lambda: _retrain(decision, client, champion, rows, sections, now),
            store_url=store_url,
            config=config,
            now=now,
        )
    log.info("%s (record %s)", decision.log_line(), write_decision(decision, config.decisions_dir))
    mark_on_table(decision, store_url)  # the dashboard marks it on its time axes
    if failure is not None:
        raise failure
    return decision


def _judge_window(
    config: CheckConfig,
    reports_dir: Path,
    monitor_result: MonitorResult | None,
    champion_version: int,
    retrain: bool,
    last: datetime | None,
    now: datetime,
) -> TriggerDecision:
    """The policy on one monitoring window's figures (the summary, or ``monitor_result``)."""
    result, age = _judged_figures(config, reports_dir, monitor_result, champion_version, now)
    decision = decide(
        figures_from_monitor(result),
        config,
        champion_version=champion_version,
        retrain=retrain,
        last_retrain=last,
        now=now,
    )
    _name_the_figures(decision, result, age)
    return decision


def _judged_figures(
    config: CheckConfig,
    reports_dir: Path,
    monitor_result: MonitorResult | None,
    champion_version: int,
    now: datetime,
) -> tuple[MonitorResult, float]:
    """The figures a check judges and their age; refused when stale (see ``freshness``)."""
    from creditops.monitoring.reports import load_latest_result
    from creditops.monitoring.result import read_run_status

    if monitor_result is not None:
        result, status = monitor_result, None
    else:
        result, status = load_latest_result(reports_dir), read_run_status(reports_dir)
    age = require_fresh_figures(
        result,
        status,
        champion_version=champion_version,
        now=now,
        max_age_minutes=config.max_figures_age_minutes,
    )
    return result, age


def _name_the_figures(decision: TriggerDecision, result: MonitorResult, age: float) -> None:
    """The judged figures' monitor run, window, time and age into ``decision``."""
    decision.monitor_run_id = result.run_id
    decision.window = result.window
    decision.figures_computed_at = result.created_at
    decision.figures_age_minutes = age
    decision.messages.insert(
        0, f"figures of {result.window} computed at {result.created_at} ({age:.1f} min old)"
    )
    if decision.action == "retrain" and result.current_file:
        decision.action = "alert"
        decision.messages.append(
            f"retraining not started: the figures are of the file {result.current_file} "
            "(`creditops monitor --current`), whose rows are not in the inference log a "
            "retraining trains and gates on; monitor the inference log (`creditops monitor` "
            "without --current) and check again to retrain"
        )


@dataclass(frozen=True)
class _RetrainSections:
    check: CheckConfig
    promote: PromoteConfig
    training: TrainingSections


def _retrain(
    decision: TriggerDecision,
    client: TrackingClient,
    champion: ModelRef,
    read_rows: Callable[[], ProductionData],
    sections: _RetrainSections,
    started: datetime,
) -> Exception | None:
    """Retrain into ``decision``; the cooldown starts only once a challenger exists.

    Returns:
        The failure, recorded in ``decision.retrain_error`` (``None``: retrained).
    """
    try:
        data = read_rows()
        decision.production = data.counts.as_dict() | {
            "reject_inference": sections.check.reject_inference
        }
        outcome = run_retraining(
            client,
            champion,
            data.rows,
            training=sections.training,
            promote=sections.promote,
            holdout_share=sections.check.holdout_share,
            production_weight=sections.check.production_weight,
            declined=data.declined if sections.check.reject_inference else None,
            counts=data.counts,
        )
    except Exception as exc:  # any failure is recorded, then raised by run_check
        decision.retrain_error = f"{type(exc).__name__}: {exc}"
        log.error("retraining of v%s failed: %s", champion.version, decision.retrain_error)
        return exc
    decision.retrain = outcome
    mark_retrain(
        sections.check.decisions_dir, started, champion.version, outcome.challenger_version
    )
    return None


def _champion(mlflow: MlflowConfig) -> tuple[TrackingClient, ModelRef]:
    """The tracking client and the champion.

    Raises:
        NoChampionError: there is no champion.
    """
    from creditops import registry

    client = registry.connect(mlflow)
    return client, registry.resolve_alias(client, mlflow.registered_model, registry.CHAMPION)
