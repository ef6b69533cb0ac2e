"""What a check reads: the champion's months in the monitoring table, and the production rows."""

from __future__ import annotations

import math
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from creditops.config import CheckConfig
from creditops.errors import MonitorError
from creditops.retraining.months import MonthEvidence, decide_on_months, months_evidence
from creditops.retraining.policy import TriggerDecision
from creditops.retraining.rows import ProductionData, production_data

if TYPE_CHECKING:
    from creditops.registry import ModelRef
    from creditops.tracking import TrackingClient


def table_months(
    store_url: str, champion_version: int
) -> tuple[datetime, list[MonthEvidence]] | None:
    """When the champion's months were last computed, and their evidence (``None``: no table).

    A SQLite file that does not exist is no table (it is not created here).

    Raises:
        StoreError: the table exists but cannot be read.
    """
    import sqlalchemy as sa

    from creditops.monitoring.table import read_table

    url = sa.engine.make_url(store_url)
    database = url.database or ""
    if url.get_backend_name() == "sqlite" and database and not Path(database).exists():
        return None
    table = read_table(store_url)
    months = months_evidence(table, champion_version)
    if not months:
        return None
    mine = table.loc[table["model_version"] == champion_version, "computed_at"]
    return pd.Timestamp(mine.max()).to_pydatetime(), months


def name_the_table(
    decision: TriggerDecision, computed: datetime, config: CheckConfig, now: datetime
) -> None:
    """The monthly figures' time and age into ``decision``; refused when too old."""
    age = (now - computed).total_seconds() / 60.0
    if age > config.max_figures_age_minutes:
        raise MonitorError(
            f"the monitoring table's months of v{decision.champion_version} were computed at "
            f"{computed.isoformat()}, {age:.1f} min ago, more than [check] "
            f"max_figures_age_minutes {config.max_figures_age_minutes:g}: run "
            "`creditops monitor --by month` first"
        )
    decision.figures_computed_at = computed.isoformat()
    decision.figures_age_minutes = age
    decision.messages.insert(
        0, f"figures of {decision.window} computed at {computed.isoformat()} ({age:.1f} min old)"
    )


def read_production(
    store_url: str, window_rows: int, as_of: date | Literal[""] = "", performance_months: int = 0
) -> ProductionData:
    """The granted, matured rows of the inference log, and the declines.

    Args:
        store_url: the inference log.
        window_rows: how many of its newest rows are read when ``performance_months``
            is 0; with a performance window, every row is (its newest are immature).
        as_of: ``[monitor] as_of``: the "now" of the outcomes (default the
            log's latest date, as the monthly monitor takes it).
        performance_months: a vintage's performance window (0: every outcome).

    Raises:
        MonitorError: the inference log cannot be read.
    """
    from creditops.monitoring.by_month import resolve_as_of
    from creditops.monitoring.window import read_window

    # with a performance window the newest rows are the immature ones: a retraining reads
    # the whole log and keeps the closed vintages, else the newest window_rows
    last_n = None if performance_months > 0 else window_rows
    window = read_window(store_url, last_n=last_n, since=None, until=None)
    moment = resolve_as_of(as_of, window) if len(window) else None
    return production_data(window, as_of=moment, performance_months=performance_months)


def granted_baseline(client: TrackingClient, champion: ModelRef) -> float | None:
    """The champion's ROC AUC on its test applicants it would grant (``None``: undefined).

    The yardstick of realised ROC AUC: outcomes exist for granted loans only.

    Raises:
        RegistryError: the champion's data or model cannot be read.
    """
    from creditops import evaluate, registry, schema
    from creditops.data import label_vector

    _, test = registry.load_training_frames(client, champion)
    model = registry.load_pipeline(client, champion)
    pds = np.asarray(model.predict_proba(schema.coerce_features(test))[:, 1])
    granted = pds < champion.threshold
    auc = evaluate.roc_auc(label_vector(test[schema.TARGET])[granted], pds[granted])
    return auc if math.isfinite(auc) else None


def judge_table(
    client: TrackingClient,
    champion: ModelRef,
    store_url: str,
    config: CheckConfig,
    *,
    retrain: bool,
    last: datetime | None,
    now: datetime,
) -> TriggerDecision | None:
    """The monthly policy on the champion's months in the table (``None``: it has none).

    Raises:
        MonitorError: the months are older than ``[check] max_figures_age_minutes``.
        StoreError / RegistryError: the table or the champion cannot be read.
    """
    months = table_months(store_url, champion.version)
    if months is None:
        return None
    decision = decide_on_months(
        months[1],
        config,
        training_auc=champion.metrics.get("test_roc_auc"),
        granted_auc=granted_baseline(client, champion),
        champion_version=champion.version,
        retrain=retrain,
        last_retrain=last,
        now=now,
    )
    name_the_table(decision, months[0], config, now)
    return decision
