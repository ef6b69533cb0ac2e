"""The promotion gate: both models scored on the same held-out rows, the decision logged.

:func:`decide_promotion` is the pure rule; :func:`promote` scores the
challenger and the champion, logs the decision with both numbers as an MLflow
run named ``promote`` and moves the aliases when it passes; :func:`rollback`
moves ``champion`` back to ``previous``.

Every decision names the rule that decided it (:data:`GATE_RULES`):
``undefined`` (no ROC AUC on the holdout), ``floor`` (below ``[promote]
min_auc``, whatever the champion scores), ``no_champion``, ``margin`` (beats,
or fails to beat, the champion by ``min_improvement``), ``already_champion`` or
``holdout``: the gate's rows share a row with either model's training data (or
a model records no training data to check them against), so neither model is
scored on them.

Only an unset alias means "no champion": a registry that fails while the gate
reads the champion raises :class:`~creditops.errors.RegistryUnavailableError`
and no alias moves.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from creditops import schema
from creditops.config import FairnessConfig, MlflowConfig, PromoteConfig
from creditops.errors import RegistryError
from creditops.registry.client import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    ModelRef,
    find_alias,
    get_version,
    load_pipeline,
    load_training_frames,
    resolve_alias,
    set_alias,
)
from creditops.registry.holdout import check_holdout
from creditops.registry.shadow_gate import ShadowEvidence, shadow_refusal

if TYPE_CHECKING:
    from creditops.tracking import TrackingClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PromotionDecision:
    """The gate's verdict and the evidence behind it."""

    promoted: bool
    reason: str
    challenger_version: int
    challenger_auc: float
    champion_version: int | None
    champion_auc: float | None
    min_auc: float
    min_improvement: float
    holdout_rows: int
    holdout_hash: str
    run_id: str = ""
    # the gate rule that decided (one of GATE_RULES)
    rule: str = ""
    # the challenger's fairness figures on the gate's rows (FairnessReport.as_dict)
    fairness: dict[str, Any] = field(default_factory=dict)
    # the challenger's shadow evidence, when the gate was asked for it (ShadowEvidence)
    shadow: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The decision as JSON-ready data."""
        return asdict(self)


GATE_RULES = (
    "undefined",
    "floor",
    "no_champion",
    "margin",
    "already_champion",
    "holdout",
    "fairness",
    "shadow",
)


def decide_promotion(
    challenger_auc: float, champion_auc: float | None, config: PromoteConfig
) -> tuple[bool, str]:
    """The gate: pass the floor, and beat the champion by the margin.

    Returns:
        Whether to promote, and a sentence with the numbers behind it.
    """
    promoted, _, reason = gate_verdict(challenger_auc, champion_auc, config)
    return promoted, reason


def gate_verdict(
    challenger_auc: float, champion_auc: float | None, config: PromoteConfig
) -> tuple[bool, str, str]:
    """The gate with the rule that decided: (promoted, rule, reason with the numbers).

    The floor comes first: a challenger below ``min_auc`` is refused even when
    it beats the champion on the same rows (the reason then says so).
    """
    if not np.isfinite(challenger_auc):
        return (
            False,
            "undefined",
            "challenger ROC AUC is undefined on the holdout (one class only?)",
        )
    if challenger_auc < config.min_auc:
        reason = (
            f"challenger ROC AUC {challenger_auc:.4f} is below the minimum {config.min_auc:.4f} "
            "([promote] min_auc, the floor)"
        )
        if champion_auc is not None and challenger_auc - champion_auc >= config.min_improvement:
            reason += (
                f"; it beats champion {champion_auc:.4f} by {challenger_auc - champion_auc:+.4f}: "
                "the floor, not the margin, refused it"
            )
        return False, "floor", reason
    if champion_auc is None:
        return (
            True,
            "no_champion",
            f"no champion yet; challenger ROC AUC {challenger_auc:.4f} >= minimum {config.min_auc:.4f}",
        )
    gain = challenger_auc - champion_auc
    if gain < config.min_improvement:
        return (
            False,
            "margin",
            (
                f"challenger ROC AUC {challenger_auc:.4f} does not beat champion {champion_auc:.4f} "
                f"by the margin {config.min_improvement:.4f} (gain {gain:+.4f})"
            ),
        )
    return (
        True,
        "margin",
        (
            f"challenger ROC AUC {challenger_auc:.4f} beats champion {champion_auc:.4f} "
            f"by {gain:+.4f} >= margin {config.min_improvement:.4f}"
        ),
    )


def score_auc(client: TrackingClient, ref: ModelRef, holdout: pd.DataFrame) -> float:
    """ROC AUC of ``ref`` on labelled ``holdout`` rows (NaN with a single class)."""
    from creditops.data import label_vector
    from creditops.evaluate import roc_auc

    pipeline = load_pipeline(client, ref)
    proba = pipeline.predict_proba(schema.coerce_features(holdout))[:, 1]
    return roc_auc(label_vector(holdout[schema.TARGET]), proba)


def promote(
    client: TrackingClient,
    mlflow_config: MlflowConfig,
    promote_config: PromoteConfig,
    *,
    holdout: pd.DataFrame | None = None,
    challenger_version: int | None = None,
    context: str = "promote",
    fairness_config: FairnessConfig | None = None,
    shadow: ShadowEvidence | None = None,
) -> PromotionDecision:
    """Apply the gate to the challenger and move the aliases if it passes.

    Both models are scored on the same held-out rows: ``holdout`` when given
    (the retraining loop passes recent labelled traffic), else the
    challenger's own test split. The decision, with both numbers, is logged to
    the console and as an MLflow run named ``promote``. ``fairness_config``
    (default: ``[fairness]``'s defaults) sets the approval-rate floor (rule ``fairness``);
    ``shadow`` (the challenger's shadow-scored rows) refuses one judged on too few live
    applicants (rule ``shadow``) and quotes the shadow comparison.

    The gate's rows must share no row with either model's training data
    (:func:`check_holdout`); otherwise the decision is rule ``holdout`` and
    neither model is scored.

    Raises:
        RegistryError: there is no challenger, or a model cannot be loaded.
        RegistryUnavailableError: the registry failed (nothing moved): a
            champion that cannot be read is never taken for "no champion".
    """
    name = mlflow_config.registered_model
    challenger = (
        get_version(client, name, challenger_version)
        if challenger_version is not None
        else resolve_alias(client, name, CHALLENGER)
    )
    champion = find_alias(client, name, CHAMPION)
    holdout, refusal = _gate_rows(client, challenger, champion, holdout, promote_config)
    if refusal:
        verdict = _refused(challenger, champion, holdout, promote_config, refusal)
    else:
        verdict = _judge(client, challenger, champion, holdout, promote_config)
        verdict = _fairness_floor(client, challenger, holdout, verdict, fairness_config)
        verdict = shadow_verdict(verdict, shadow)
    decision = _log_decision(client, context, promote_config, holdout, verdict)
    if decision.promoted:
        if champion is not None:
            set_alias(client, name, PREVIOUS, champion.version)
        set_alias(client, name, CHAMPION, challenger.version)
    log.info(
        "promotion %s by rule %s: v%s (AUC %.4f) vs champion %s (AUC %s): %s",
        "PASSED" if decision.promoted else "refused",
        decision.rule,
        decision.challenger_version,
        decision.challenger_auc,
        f"v{decision.champion_version}" if decision.champion_version is not None else "none",
        f"{decision.champion_auc:.4f}" if decision.champion_auc is not None else "-",
        decision.reason,
    )
    return decision


def _gate_rows(
    client: TrackingClient,
    challenger: ModelRef,
    champion: ModelRef | None,
    holdout: pd.DataFrame | None,
    config: PromoteConfig,
) -> tuple[pd.DataFrame, str]:
    """The gate's rows (default: the challenger's test split) and why they are refused, if so."""
    known: dict[int, pd.DataFrame] = {}
    if holdout is None:
        known[challenger.version], holdout = load_training_frames(client, challenger)
    if champion is not None and champion.version == challenger.version:
        return holdout, ""  # already the champion: nothing is compared
    models = {"challenger": challenger}
    if champion is not None:
        models["champion"] = champion
    refusal = check_holdout(client, holdout, models, config, known)
    if refusal:
        refusal = "holdout not disjoint from the models' training data: " + refusal
    return holdout, refusal


def _refused(
    challenger: ModelRef,
    champion: ModelRef | None,
    holdout: pd.DataFrame,
    config: PromoteConfig,
    reason: str,
) -> PromotionDecision:
    """The gate's refusal to score on rows a model trained on (rule ``holdout``)."""
    return PromotionDecision(
        promoted=False,
        reason=reason,
        challenger_version=challenger.version,
        challenger_auc=float("nan"),
        champion_version=champion.version if champion else None,
        champion_auc=None,
        min_auc=config.min_auc,
        min_improvement=config.min_improvement,
        holdout_rows=len(holdout),
        holdout_hash="",
        rule="holdout",
    )


def _judge(
    client: TrackingClient,
    challenger: ModelRef,
    champion: ModelRef | None,
    holdout: pd.DataFrame,
    config: PromoteConfig,
) -> PromotionDecision:
    """Score both models on ``holdout`` and apply the gate (nothing logged, no alias moved)."""
    challenger_auc = score_auc(client, challenger, holdout)
    if champion is not None and champion.version == challenger.version:
        champion_auc: float | None = challenger_auc
        promoted, rule = False, "already_champion"
        reason = f"version {challenger.version} is already the champion"
    else:
        champion_auc = score_auc(client, champion, holdout) if champion is not None else None
        promoted, rule, reason = gate_verdict(challenger_auc, champion_auc, config)
    return PromotionDecision(
        promoted=promoted,
        reason=reason,
        challenger_version=challenger.version,
        challenger_auc=challenger_auc,
        champion_version=champion.version if champion else None,
        champion_auc=champion_auc,
        min_auc=config.min_auc,
        min_improvement=config.min_improvement,
        holdout_rows=len(holdout),
        holdout_hash="",
        rule=rule,
    )


def _fairness_floor(
    client: TrackingClient,
    challenger: ModelRef,
    holdout: pd.DataFrame,
    decision: PromotionDecision,
    config: FairnessConfig | None,
) -> PromotionDecision:
    """The fairness figures added to a scored decision; a pass below the floor refused."""
    from creditops.registry.fairness_gate import challenger_fairness, floor_verdict

    if decision.rule == "already_champion":
        return decision
    config = config or FairnessConfig()
    report = challenger_fairness(client, challenger, holdout, config)
    decision = replace(decision, fairness=report.as_dict())
    refuse, sentence = floor_verdict(report, config)
    if refuse and decision.promoted:
        return replace(decision, promoted=False, rule="fairness", reason=sentence)
    return replace(decision, reason=f"{decision.reason}; {sentence}") if sentence else decision


def shadow_verdict(
    decision: PromotionDecision, evidence: ShadowEvidence | None
) -> PromotionDecision:
    """The decision with the shadow evidence; a pass with too few shadow rows refused."""
    if evidence is None or decision.rule == "already_champion":
        return decision
    decision = replace(decision, shadow=evidence.as_dict())
    refusal = shadow_refusal(decision.challenger_version, evidence)
    if decision.promoted and refusal:
        return replace(decision, promoted=False, rule="shadow", reason=refusal)
    suffix = f"; shadow: {evidence.headline}" if evidence.headline else ""
    return replace(decision, reason=decision.reason + suffix)


def _log_decision(
    client: TrackingClient,
    context: str,
    config: PromoteConfig,
    holdout: pd.DataFrame,
    decision: PromotionDecision,
) -> PromotionDecision:
    """Log the gate's decision as an MLflow run; the decision with its run id and holdout hash."""
    from creditops.data import frame_hash

    holdout_hash = frame_hash(holdout)
    metrics = {"challenger_auc": decision.challenger_auc}
    if decision.champion_auc is not None:
        metrics["champion_auc"] = decision.champion_auc
    tags = {
        "creditops.stage": "promote",
        "creditops.context": context,
        "verdict": "promoted" if decision.promoted else "kept",
        "challenger_version": str(decision.challenger_version),
        "champion_version": str(decision.champion_version or "none"),
        "gate_rule": decision.rule,
    }
    with client.run(context, tags=tags) as run_id:
        client.log_values(
            run_id,
            params={
                "min_auc": config.min_auc,
                "min_improvement": config.min_improvement,
                "holdout_rows": len(holdout),
                "holdout_hash": holdout_hash[:16],
            },
            metrics={k: v for k, v in metrics.items() if np.isfinite(v)},
        )
        client.log_text(run_id, decision.reason, "decision.txt")
        if decision.fairness:
            client.log_dict(run_id, decision.fairness, "fairness.json")
    return replace(decision, holdout_hash=holdout_hash, run_id=run_id)


def rollback(client: TrackingClient, name: str) -> tuple[int, int]:
    """Move ``champion`` back to ``previous`` (and ``previous`` to the old champion).

    Returns:
        (old champion version, new champion version).

    Raises:
        RegistryError: no ``previous`` version to roll back to.
    """
    champion = resolve_alias(client, name, CHAMPION)
    previous = find_alias(client, name, PREVIOUS)
    if previous is None:
        raise RegistryError(f"model {name!r} has no 'previous' version to roll back to")
    set_alias(client, name, CHAMPION, previous.version)
    set_alias(client, name, PREVIOUS, champion.version)
    log.info("rollback: champion v%s -> v%s", champion.version, previous.version)
    return champion.version, previous.version
