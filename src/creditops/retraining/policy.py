"""The retraining trigger's policy, pure: rules over the monitor's figures, and the action.

The policy (``[check]`` config) fires when any rule fires:

* ``f1``: F1 of the bad class on labelled traffic, at the champion's
  threshold, is below ``min_f1``;
* ``auc_drop``: the champion's test ROC AUC minus the labelled traffic's is
  above ``max_auc_drop``;
* ``drift_share``: Evidently's share of drifted features is at least
  ``min_drift_share``;
* ``psi``: the largest PSI (features and score) is at least ``psi_max``;
* ``invalid_share``: the share of the window's rows that break the contract
  (set aside by the monitor) is above ``max_invalid_share``.

A rule whose figure is unavailable (no labelled rows, a window too small)
is skipped and says so; ``invalid_share`` abstains, left out of the record,
when the figures carry no data-quality share at all. A fired trigger leads to
``alert`` with retraining off, else to ``retrain`` unless the last retraining
is younger than ``cooldown_minutes`` (``cooldown``). When ``invalid_share``
is the only rule that fired, the action is ``alert``: a retraining does not
mend a broken data feed. :func:`decide` returns the whole
verdict as a :class:`TriggerDecision`; :mod:`creditops.retraining.run`
records it and runs the retraining.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from creditops.config import CheckConfig
from creditops.records import format_figure, json_safe

if TYPE_CHECKING:
    from creditops.monitoring.result import MonitorResult


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
    # share of the window's rows that break the contract (None: not measured)
    invalid_share: float | None = None
    invalid_rows: int = 0

    @property
    def auc_drop(self) -> float | None:
        """The champion's test ROC AUC minus the labelled window's (``None``: undefined)."""
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
    # the application months judged, the kind of evidence (drift, realised,
    # estimated) and how many rows (matured outcomes) it stood on
    months: tuple[str, ...] = ()
    evidence: str = ""
    rows: int | None = None
    # fired | quiet | abstain (no figure to judge: neither fired nor quiet)
    state: str = ""

    def __post_init__(self) -> None:
        if not self.state:
            state = "fired" if self.fired else "abstain" if self.value is None else "quiet"
            object.__setattr__(self, "state", state)


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


_NOT = {"<": ">=", ">": "<=", ">=": "<"}


def _threshold_rule(
    rule: str,
    value: float | None,
    limit: float,
    *,
    fires_when: str,
    skipped: str,
    describe: Callable[[float, str], str],
) -> RuleResult:
    """A rule that fires when ``value`` stands in ``fires_when`` ("<", ">", ">=") to ``limit``.

    An absent or undefined value abstains with the ``skipped`` sentence;
    ``describe(value, relation)`` words the verdict with the relation that held.
    """
    if value is None or not _usable(value):
        return RuleResult(rule, False, None, limit, skipped)
    fired = {"<": value < limit, ">": value > limit, ">=": value >= limit}[fires_when]
    relation = fires_when if fired else _NOT[fires_when]
    return RuleResult(rule, fired, value, limit, describe(value, relation))


def rule_f1(figures: TriggerFigures, config: CheckConfig) -> RuleResult:
    """Fires when labelled F1 (bad class) is below ``min_f1``."""
    limit = config.min_f1
    return _threshold_rule(
        "f1",
        figures.f1,
        limit,
        fires_when="<",
        skipped="F1 skipped: too few labelled rows",
        describe=lambda v, r: f"F1 {v:.4f} {r} min_f1 {limit:.4f}",
    )


def rule_auc_drop(figures: TriggerFigures, config: CheckConfig) -> RuleResult:
    """Fires when ROC AUC fell more than ``max_auc_drop`` below the champion's test figure."""
    limit = config.max_auc_drop
    return _threshold_rule(
        "auc_drop",
        figures.auc_drop,
        limit,
        fires_when=">",
        skipped="ROC AUC drop skipped: no labelled AUC or no training AUC",
        describe=lambda v, r: (
            f"ROC AUC {figures.auc:.4f} vs training {figures.training_auc:.4f}: "
            f"drop {v:+.4f} {r} max_auc_drop {limit:.4f}"
        ),
    )


def rule_drift_share(figures: TriggerFigures, config: CheckConfig) -> RuleResult:
    """Fires when the share of drifted features reaches ``min_drift_share``."""
    limit = config.min_drift_share
    return _threshold_rule(
        "drift_share",
        figures.drift_share,
        limit,
        fires_when=">=",
        skipped="drift share skipped: window too small",
        describe=lambda v, r: f"drifted share {v:.3f} {r} min_drift_share {limit:.3f}",
    )


def rule_psi(figures: TriggerFigures, config: CheckConfig) -> RuleResult:
    """Fires when any PSI (a feature's or the score's) reaches ``psi_max``."""
    limit = config.psi_max
    return _threshold_rule(
        "psi",
        figures.max_psi,
        limit,
        fires_when=">=",
        skipped="PSI skipped: window too small",
        describe=lambda v, r: (
            f"largest PSI {v:.3f} ({figures.max_psi_column}) {r} psi_max {limit:.3f}"
        ),
    )


def rule_invalid_share(figures: TriggerFigures, config: CheckConfig) -> RuleResult:
    """Fires when the share of rows breaking the contract is above ``max_invalid_share``."""
    limit = config.max_invalid_share
    total = figures.rows + figures.invalid_rows
    return _threshold_rule(
        "invalid_share",
        figures.invalid_share,
        limit,
        fires_when=">",
        skipped="invalid share skipped: the window's data quality was not measured",
        describe=lambda v, r: (
            f"invalid share {v:.3f} ({figures.invalid_rows} of {total} rows "
            f"break the contract) {r} max_invalid_share {limit:.3f}"
        ),
    )


RULES = (rule_f1, rule_auc_drop, rule_drift_share, rule_psi, rule_invalid_share)
# rules about the data feed, not the model: they alert, never retrain on their own
DATA_RULES = frozenset({"invalid_share"})


def evaluate_rules(figures: TriggerFigures, config: CheckConfig) -> list[RuleResult]:
    """Every rule's verdict, in a fixed order (``invalid_share`` only when measured)."""
    return [
        rule(figures, config)
        for rule in RULES
        if rule is not rule_invalid_share or figures.invalid_share is not None
    ]


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


def figures_from_monitor(result: MonitorResult) -> TriggerFigures:
    """The policy's figures out of a :class:`~creditops.monitoring.result.MonitorResult`."""
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
        invalid_share=result.invalid_share,
        invalid_rows=result.invalid_rows,
    )


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
    # the promotion gate's rule that decided (creditops.registry.promotion.GATE_RULES)
    gate_rule: str = ""
    # declined applicants' rows added by reject inference (2 per applicant; 0: off)
    reject_inference_rows: int = 0
    # the gate's rows: how many of each class, and that neither model trained on them
    holdout_detail: str = ""


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
    # the figures judged: their window, when the monitor computed them, their age
    window: str = ""
    figures_computed_at: str = ""
    figures_age_minutes: float | None = None
    retrain: RetrainOutcome | None = None
    # a retraining that failed: its error (the cooldown does not start)
    retrain_error: str = ""
    record_path: str = ""
    messages: list[str] = field(default_factory=list)
    # "window" (one monitor summary) or "months" (the monitoring table's look-back)
    source: str = "window"
    # the look-back's months: volume, maturity, which evidence (realised/estimated/drift)
    months: list[dict[str, Any]] = field(default_factory=list)
    abstained: list[str] = field(default_factory=list)
    # the production rows a retraining read: granted/explored/declined counts, outcomes' date
    production: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The record as JSON-safe data (the decision file's format)."""
        data = asdict(self)
        safe: dict[str, Any] = json_safe(data)
        return safe

    def log_line(self) -> str:
        """The verdict, every rule's figure and limit, and any retraining, in one line."""
        figures = ", ".join(
            f"{r['rule']}={format_figure(r['value'])}/{r['limit']:g}" for r in self.rules
        )
        why = "; ".join(self.reasons) or "no rule fired"
        verdict = "FIRED" if self.fired else "quiet"
        line = f"check v{self.champion_version}: {verdict} -> {self.action} ({figures}): {why}"
        if self.retrain is not None:
            r = self.retrain
            line += (
                f"; retrained v{r.challenger_version} "
                f"{'PROMOTED' if r.promoted else 'not promoted'} (gate rule {r.gate_rule}): "
                f"{r.reason}"
            )
        if self.retrain_error:
            line += f"; retraining FAILED: {self.retrain_error}"
        if self.window:
            line += f"; figures of {self.window} computed at {self.figures_computed_at}"
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
    return decide_on_rules(
        evaluate_rules(figures, config),
        asdict(figures) | {"auc_drop": figures.auc_drop},
        config,
        champion_version=champion_version,
        retrain=retrain,
        last_retrain=last_retrain,
        now=now,
    )


def decide_on_rules(
    rules: list[RuleResult],
    figures: dict[str, Any],
    config: CheckConfig,
    *,
    champion_version: int,
    retrain: bool,
    last_retrain: datetime | None,
    now: datetime,
) -> TriggerDecision:
    """The action given the rules' verdicts, retraining and the cooldown. Pure."""
    fired_rules = [r for r in rules if r.fired]
    model_fired = any(r.rule not in DATA_RULES for r in fired_rules)
    left = cooldown_remaining(last_retrain, now, config.cooldown_minutes)
    action = decide_action(bool(fired_rules), retrain and model_fired, left)
    messages = [r.reason for r in rules if r.state == "abstain"]
    if fired_rules and retrain and not model_fired:
        messages.append(
            "retraining not started: only data-quality rules fired; fix the data feed "
            "(see the monitor's data-quality report), a retraining does not mend broken rows"
        )
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
        figures=figures,
        cooldown_minutes_left=left,
        messages=messages,
        abstained=[r.rule for r in rules if r.state == "abstain"],
    )
