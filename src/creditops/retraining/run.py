"""The retraining trigger: a policy of pure functions, a decision record, the retraining run.

The policy (``[check]`` config) fires when any rule fires:

* ``f1``: F1 of the bad class on labelled traffic, at the champion's
  threshold, is below ``min_f1``;
* ``auc_drop``: the champion's test ROC AUC minus the labelled traffic's is
  above ``max_auc_drop``;
* ``drift_share``: Evidently's share of drifted features is at least
  ``min_drift_share``;
* ``psi``: the largest PSI (features and score) is at least ``psi_max``.

A rule whose figure is unavailable (no labelled rows, a window too small)
is skipped and says so. Every decision is written as a JSON record under
``[check] decisions_dir`` and logged as one line with its figures. With
retraining on, a fired trigger retrains unless the last retraining is
younger than ``cooldown_minutes``: training data = the champion's reference
rows + the labelled production rows, except the most recent
``holdout_share`` of them, which form the holdout on which the promotion gate
compares challenger and champion.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from creditops import schema
from creditops.config import CheckConfig
from creditops.errors import MonitorError, TrainingError
from creditops.records import format_figure, json_safe

log = logging.getLogger(__name__)

LAST_RETRAIN = "last-retrain.json"
DECISION_LATEST = "decision-latest.json"


@dataclass(frozen=True)
class TriggerFigures:
    """The figures the policy reads (``None`` = not available in this window)."""

    rows: int
    labelled_rows: int
    f1: float | None = None
    auc: float | None = None
    training_auc: float | None = None
    drift_share: float | None = None
    max_psi: float | None = None
    max_psi_column: str | None = None

    @property
    def auc_drop(self) -> float | None:
        if self.auc is None or self.training_auc is None or not math.isfinite(self.auc):
            return None
        return self.training_auc - self.auc


@dataclass(frozen=True)
class RuleResult:
    """One rule's verdict and the sentence that explains it."""

    rule: str
    fired: bool
    value: float | None
    limit: float
    reason: str


# --- the policy, pure ----------------------------------------------------------


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def rule_f1(figures: TriggerFigures, config: CheckConfig) -> RuleResult:
    """Fires when labelled F1 (bad class) is below ``min_f1``."""
    if not _usable(figures.f1):
        return RuleResult("f1", False, None, config.min_f1, "F1 skipped: too few labelled rows")
    assert figures.f1 is not None
    fired = figures.f1 < config.min_f1
    relation = "<" if fired else ">="
    return RuleResult(
        "f1",
        fired,
        figures.f1,
        config.min_f1,
        f"F1 {figures.f1:.4f} {relation} min_f1 {config.min_f1:.4f}",
    )


def rule_auc_drop(figures: TriggerFigures, config: CheckConfig) -> RuleResult:
    """Fires when ROC AUC fell more than ``max_auc_drop`` below the champion's test figure."""
    drop = figures.auc_drop
    if drop is None:
        return RuleResult(
            "auc_drop",
            False,
            None,
            config.max_auc_drop,
            "ROC AUC drop skipped: no labelled AUC or no training AUC",
        )
    fired = drop > config.max_auc_drop
    relation = ">" if fired else "<="
    return RuleResult(
        "auc_drop",
        fired,
        drop,
        config.max_auc_drop,
        f"ROC AUC {figures.auc:.4f} vs training {figures.training_auc:.4f}: "
        f"drop {drop:+.4f} {relation} "
        f"max_auc_drop {config.max_auc_drop:.4f}",
    )


def rule_drift_share(figures: TriggerFigures, config: CheckConfig) -> RuleResult:
    """Fires when the share of drifted features reaches ``min_drift_share``."""
    if not _usable(figures.drift_share):
        return RuleResult(
            "drift_share",
            False,
            None,
            config.min_drift_share,
            "drift share skipped: window too small",
        )
    assert figures.drift_share is not None
    fired = figures.drift_share >= config.min_drift_share
    relation = ">=" if fired else "<"
    return RuleResult(
        "drift_share",
        fired,
        figures.drift_share,
        config.min_drift_share,
        f"drifted share {figures.drift_share:.3f} {relation} "
        f"min_drift_share {config.min_drift_share:.3f}",
    )


def rule_psi(figures: TriggerFigures, config: CheckConfig) -> RuleResult:
    """Fires when any PSI (a feature's or the score's) reaches ``psi_max``."""
    if not _usable(figures.max_psi):
        return RuleResult("psi", False, None, config.psi_max, "PSI skipped: window too small")
    assert figures.max_psi is not None
    fired = figures.max_psi >= config.psi_max
    relation = ">=" if fired else "<"
    return RuleResult(
        "psi",
        fired,
        figures.max_psi,
        config.psi_max,
        f"largest PSI {figures.max_psi:.3f} ({figures.max_psi_column}) {relation} "
        f"psi_max {config.psi_max:.3f}",
    )


RULES = (rule_f1, rule_auc_drop, rule_drift_share, rule_psi)


def evaluate_rules(figures: TriggerFigures, config: CheckConfig) -> list[RuleResult]:
    """Every rule's verdict, in a fixed order."""
    return [rule(figures, config) for rule in RULES]


def cooldown_remaining(
    last_retrain: datetime | None, now: datetime, cooldown_minutes: float
) -> float:
    """Minutes left before another retraining may start (0 when free)."""
    if last_retrain is None:
        return 0.0
    left = last_retrain + timedelta(minutes=cooldown_minutes) - now
    return max(left.total_seconds() / 60.0, 0.0)


def decide_action(fired: bool, retrain: bool, cooldown_left: float) -> str:
    """``none`` | ``alert`` (fired, retraining off) | ``cooldown`` | ``retrain``."""
    if not fired:
        return "none"
    if not retrain:
        return "alert"
    return "cooldown" if cooldown_left > 0 else "retrain"


def figures_from_monitor(result: Any) -> TriggerFigures:
    """The policy's figures out of a :class:`creditops.monitor.MonitorResult`."""
    quality = result.quality or {}
    worst = result.max_psi
    return TriggerFigures(
        rows=result.rows,
        labelled_rows=result.labelled_rows,
        f1=quality.get("f1_bad"),
        auc=quality.get("roc_auc"),
        training_auc=result.training.get("test_roc_auc"),
        drift_share=result.drift_share,
        max_psi=worst[1] if worst else None,
        max_psi_column=worst[0] if worst else None,
    )


# --- the decision record ----------------------------------------------------------


@dataclass
class RetrainOutcome:
    """What a retraining run produced and what the gate said."""

    training_run_id: str
    challenger_version: int
    promoted: bool
    reason: str
    challenger_auc: float
    champion_auc: float | None
    train_rows: int
    production_rows: int
    holdout_rows: int
    seconds: float


@dataclass
class TriggerDecision:
    """The trigger's verdict with every figure behind it."""

    created_at: str
    champion_version: int
    fired: bool
    action: str
    reasons: list[str]
    rules: list[dict[str, Any]]
    figures: dict[str, Any]
    cooldown_minutes_left: float
    monitor_run_id: str = ""
    retrain: RetrainOutcome | None = None
    record_path: str = ""
    messages: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        safe: dict[str, Any] = json_safe(data)
        return safe

    def log_line(self) -> str:
        figures = ", ".join(f"{r['rule']}={format_figure(r['value'])}/{r['limit']:g}" for r in self.rules)
        why = "; ".join(self.reasons) or "no rule fired"
        verdict = "FIRED" if self.fired else "quiet"
        line = f"check v{self.champion_version}: {verdict} -> {self.action} ({figures}): {why}"
        if self.retrain is not None:
            r = self.retrain
            line += (
                f"; retrained v{r.challenger_version} "
                f"{'PROMOTED' if r.promoted else 'not promoted'}: {r.reason}"
            )
        return line


def decide(
    figures: TriggerFigures,
    config: CheckConfig,
    *,
    champion_version: int,
    retrain: bool,
    last_retrain: datetime | None,
    now: datetime,
) -> TriggerDecision:
    """The whole policy: rules, then the action given retraining and the cooldown. Pure."""
    rules = evaluate_rules(figures, config)
    fired_rules = [r for r in rules if r.fired]
    left = cooldown_remaining(last_retrain, now, config.cooldown_minutes)
    action = decide_action(bool(fired_rules), retrain, left)
    messages = [r.reason for r in rules if r.value is None]
    if action == "cooldown":
        messages.append(
            f"retraining held back: the last one was at "
            f"{last_retrain.isoformat() if last_retrain else '?'}, "
            f"cooldown {config.cooldown_minutes:g} min, {left:.1f} min left"
        )
    return TriggerDecision(
        created_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        champion_version=champion_version,
        fired=bool(fired_rules),
        action=action,
        reasons=[r.reason for r in fired_rules],
        rules=[asdict(r) for r in rules],
        figures=asdict(figures) | {"auc_drop": figures.auc_drop},
        cooldown_minutes_left=left,
        messages=messages,
    )


def write_decision(decision: TriggerDecision, directory: Path) -> Path:
    """Write the record (timestamped + ``decision-latest.json``); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = decision.created_at.replace("-", "").replace(":", "")
    path = directory / f"decision-{stamp}.json"
    suffix = 1
    while path.exists():
        path = directory / f"decision-{stamp}-{suffix}.json"
        suffix += 1
    decision.record_path = str(path)
    text = json.dumps(decision.as_dict(), indent=2)
    path.write_text(text, encoding="utf-8")
    (directory / DECISION_LATEST).write_text(text, encoding="utf-8")
    return path


def read_last_retrain(directory: Path) -> datetime | None:
    """When the last retraining started (``None`` if never)."""
    path = directory / LAST_RETRAIN
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return datetime.fromisoformat(data["started_at"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None


def mark_retrain(directory: Path, when: datetime, champion_version: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / LAST_RETRAIN).write_text(
        json.dumps({"started_at": when.isoformat(), "champion_version": champion_version}),
        encoding="utf-8",
    )


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
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, holdout): reference + older production rows, and the most recent ones.

    Args:
        reference: the champion's training rows (features + ``Status``).
        production: labelled production rows, oldest first.
        holdout_share: the share of production rows, newest, kept for the gate.

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
    return train, holdout


# --- the stage ----------------------------------------------------------------------


def run_retraining(
    settings: Any, client: Any, champion: Any, production: pd.DataFrame
) -> RetrainOutcome:
    """Retrain on reference + labelled production rows, then apply the promotion gate.

    Raises:
        TrainingError: too few production rows, or the search failed.
        RegistryError: the reference data or a model cannot be read.
    """
    import time

    from creditops import registry
    from creditops.data import Split
    from creditops.training.run import run_training

    started = time.perf_counter()
    reference, _ = registry.load_training_frames(client, champion)
    train, holdout = build_retraining_split(reference, production, settings.check.holdout_share)
    log.info(
        "retraining: %d reference + %d production rows; "
        "holdout of the %d most recent labelled rows",
        len(reference),
        len(train) - len(reference),
        len(holdout),
    )
    report = run_training(
        settings, split=Split(train, holdout), context="retrain", show_progress=False
    )
    decision = registry.promote(
        client,
        settings.mlflow,
        settings.promote,
        holdout=holdout,
        challenger_version=report.challenger_version,
        context="retrain",
    )
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
    )


def run_check(
    settings: Any,
    retrain: bool | None = None,
    *,
    monitor_result: Any = None,
    now: datetime | None = None,
) -> TriggerDecision:
    """Apply the trigger policy to the latest monitoring figures; retrain if asked and due.

    Args:
        retrain: retrain when the trigger fires (default: ``[check] retrain``).
        monitor_result: figures to judge; default: the latest ``creditops monitor`` summary.

    Raises:
        MonitorError: no monitoring summary, or it is about another champion.
        TrainingError / RegistryError: the retraining failed.
    """
    from creditops import registry
    from creditops.monitoring import run as monitor

    config: CheckConfig = settings.check
    retrain = config.retrain if retrain is None else retrain
    now = now or datetime.now(UTC)
    result = monitor_result or monitor.load_latest_result(settings.monitor.reports_dir)
    client = registry.connect(settings.mlflow)
    champion = registry.resolve_alias(client, settings.mlflow.registered_model, registry.CHAMPION)
    if result.champion_version != champion.version:
        raise MonitorError(
            f"the latest monitoring summary is about v{result.champion_version}, "
            "the champion is now "
            f"v{champion.version}: run `creditops monitor` again"
        )
    figures = figures_from_monitor(result)
    decision = decide(
        figures,
        config,
        champion_version=champion.version,
        retrain=retrain,
        last_retrain=read_last_retrain(config.decisions_dir),
        now=now,
    )
    decision.monitor_run_id = result.run_id
    if decision.action == "retrain":
        from creditops.monitoring.run import read_window

        mark_retrain(config.decisions_dir, now, champion.version)
        window = read_window(
            settings.serve.store_url, last_n=settings.monitor.window_rows, since=None, until=None
        )
        window = window.loc[window["outcome"].notna()]
        decision.retrain = run_retraining(settings, client, champion, production_rows(window))
    path = write_decision(decision, config.decisions_dir)
    log.info("%s (record %s)", decision.log_line(), path)
    return decision
