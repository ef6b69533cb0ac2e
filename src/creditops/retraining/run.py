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
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from creditops import schema
from creditops.config import CheckConfig, MlflowConfig, PromoteConfig
from creditops.data import Split
from creditops.errors import TrainingError
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
    mark_retrain,
    read_last_retrain,
    write_decision,
)

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
    "mark_retrain",
    "read_last_retrain",
    "run_check",
    "write_decision",
]

# --- the retraining data, pure ----------------------------------------------------


def production_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Labelled inference-log rows as training rows: 13 features + ``Status``, oldest first."""
    labelled = frame.loc[frame["outcome"].notna()]
    if "created_at" in labelled:
        labelled = labelled.sort_values("created_at", kind="stable")
    out = schema.coerce_features(labelled.reset_index(drop=True))
    out[schema.TARGET] = labelled["outcome"].astype(str).to_numpy()
    return out


def build_retraining_split(
    reference: pd.DataFrame,
    production: pd.DataFrame,
    holdout_share: float,
    *,
    min_holdout: int = 20,
    production_weight: float = 1.0,
) -> Split:
    """Training rows (reference + older production rows) and the holdout (the most recent ones).

    Args:
        reference: the champion's training rows (features + ``Status``).
        production: labelled production rows, oldest first.
        holdout_share: the share of production rows, newest, kept for the gate.
        production_weight: the sample weight of each production training row;
            reference rows weigh 1 (``[check] production_weight``). At 1 the
            split carries no weights: the fit is the unweighted one.

    Returns:
        The split: ``train`` the training rows, reference first, ``test`` the
        holdout, ``weights`` one per training row (``None`` at weight 1).

    Raises:
        TrainingError: too few production rows, or a holdout with a single class.
    """
    n_holdout = math.ceil(len(production) * holdout_share)
    if n_holdout < min_holdout or len(production) - n_holdout < 1:
        raise TrainingError(
            f"retraining needs more labelled production rows: {len(production)} give a holdout of "
            f"{n_holdout} (minimum {min_holdout}); wait for more outcomes"
        )
    holdout = production.iloc[len(production) - n_holdout :].reset_index(drop=True)
    if holdout[schema.TARGET].nunique() < 2:
        raise TrainingError(
            "the holdout of recent labelled rows holds one class only: "
            "the gate cannot compare ROC AUC"
        )
    columns = [*schema.FEATURES, schema.TARGET]
    older = production.iloc[: len(production) - n_holdout].loc[:, columns]
    # An applicant seen again in the holdout must not also be trained on: it
    # would flatter the challenger at the gate.
    features = list(schema.FEATURES)
    held = set(pd.util.hash_pandas_object(holdout.loc[:, features], index=False).tolist())
    keys = pd.util.hash_pandas_object(older.loc[:, features], index=False)
    repeated = keys.isin(held).to_numpy()
    if repeated.any():
        log.info(
            "retraining: %d older production row(s) repeat a holdout applicant and are left out",
            int(repeated.sum()),
        )
    train = pd.concat([reference.loc[:, columns], older.loc[~repeated]], ignore_index=True)
    if production_weight == 1.0:
        return Split(train, holdout)
    weights = np.ones(len(train), dtype=np.float64)
    weights[len(reference) :] = production_weight
    return Split(train, holdout, weights)


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
) -> RetrainOutcome:
    """Retrain on reference + labelled production rows, then apply the promotion gate.

    Args:
        client: the tracking client the champion is read through.
        champion: the model whose reference rows the training data starts from.
        production: labelled production rows, oldest first (:func:`production_rows`).
        training: what the training run is configured by (``training.mlflow``
            also names the registered model the gate works on).
        promote: the promotion gate.
        holdout_share: the share of production rows, newest, kept for the gate
            (``[check] holdout_share``).
        production_weight: the weight of each production training row against
            a reference row's 1 (``[check] production_weight``).

    Raises:
        TrainingError: too few production rows, or the search failed.
        RegistryError: the reference data or a model cannot be read.
    """
    from creditops import registry

    started = time.perf_counter()
    reference, _ = registry.load_training_frames(client, champion)
    split = build_retraining_split(
        reference, production, holdout_share, production_weight=production_weight
    )
    train, holdout = split.train, split.test
    log.info(
        "retraining: %d reference + %d production rows (weight %g each); "
        "holdout of the %d most recent labelled rows",
        len(reference),
        len(train) - len(reference),
        production_weight,
        len(holdout),
    )
    report, decision = _train_and_gate(client, split, training, promote)
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
    )


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
    )
    return report, decision


def read_production(store_url: str, window_rows: int) -> pd.DataFrame:
    """The labelled rows among the inference log's newest ``window_rows``, as training rows.

    Raises:
        MonitorError: the inference log cannot be read.
    """
    from creditops.monitoring.window import read_window

    window = read_window(store_url, last_n=window_rows, since=None, until=None)
    return production_rows(window.loc[window["outcome"].notna()])


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
) -> TriggerDecision:
    """Apply the trigger policy to the latest monitoring figures; retrain if asked and due.

    Args:
        config: the ``[check]`` section: the policy, its cooldown and records.
        promote: the promotion gate a retraining's challenger goes through.
        training: what a retraining's training run is configured by; its
            ``mlflow`` section names the champion.
        retrain: retrain when the trigger fires (default: ``[check] retrain``).
        store_url: the inference log a retraining reads (``[serve] store_url``).
        window_rows: how many of its newest rows a retraining reads (``[monitor] window_rows``).
        reports_dir: where the latest monitoring summary is (``[monitor] reports_dir``).
        monitor_result: figures to judge; default: the latest ``creditops monitor`` summary.
        now: the decision's time; default the clock.

    Raises:
        MonitorError: no monitoring summary, or one a check must not judge: from
            a failed or unfinished run, about another champion, or too old.
        TrainingError / RegistryError: the retraining failed (recorded first).
    """
    retrain = config.retrain if retrain is None else retrain
    now = now or datetime.now(UTC)
    client, champion = _champion(training.mlflow)
    result, age = _judged_figures(config, reports_dir, monitor_result, champion.version, now)
    decision = decide(
        figures_from_monitor(result),
        config,
        champion_version=champion.version,
        retrain=retrain,
        last_retrain=read_last_retrain(config.decisions_dir),
        now=now,
    )
    _name_the_figures(decision, result, age)
    failure: Exception | None = None
    if decision.action == "retrain":  # one at a time: a lock in the inference store
        rows = partial(read_production, store_url, window_rows)
        sections = _RetrainSections(config, promote, training)
        failure = retrain_exclusively(
            decision,
            lambda: _retrain(decision, client, champion, rows, sections, now),
            store_url=store_url,
            config=config,
            now=now,
        )
    path = write_decision(decision, config.decisions_dir)
    log.info("%s (record %s)", decision.log_line(), path)
    if failure is not None:
        raise failure
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
    read_rows: Callable[[], pd.DataFrame],
    sections: _RetrainSections,
    started: datetime,
) -> Exception | None:
    """Retrain into ``decision``; the cooldown starts only once a challenger exists.

    Returns:
        The failure, recorded in ``decision.retrain_error`` (``None``: retrained).
    """
    try:
        outcome = run_retraining(
            client,
            champion,
            read_rows(),
            training=sections.training,
            promote=sections.promote,
            holdout_share=sections.check.holdout_share,
            production_weight=sections.check.production_weight,
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
