"""The trigger's rules over the monitoring table's months, pure.

``creditops monitor --by month`` stores one row per (application month, model
version, metric) (:mod:`creditops.monitoring.table`). The check reads the
champion's months and judges the newest ``[check] months`` of them that had
traffic (the look-back). Each rule ends in one of three states: ``fired``,
``quiet`` or ``abstain`` (its evidence is missing or too thin; the record says
which and why):

* ``psi`` / ``drift_share`` (drift, from the first month): the newest month of
  the look-back with a drift figure;
* ``auc_drop`` (realised): the champion's test ROC AUC minus the realised ROC
  AUC on matured outcomes, pooled (weighted by rows) over the newest months
  that have one until ``min_matured_rows`` outcomes; with fewer in all, it
  abstains: a handful of early defaults is a biased sample (only bads yet);
* ``est_auc`` (estimated, while outcomes are immature): fires when the upper
  end of the label-free estimate's band, for the newest look-back month with
  no realised figure, is below the training ROC AUC minus ``max_auc_drop``;
* ``backtest`` (realised): the newest month with a PD backtest fires on a red
  band, or on ``backtest_max_yellow`` yellow ones;
* ``early_default`` (early defaults of open vintages against the first
  vintages' curve): :mod:`creditops.retraining.early_defaults`.

Both realised rules fire only when confirmed (``confirm_months``, default 2):
the same breach on the backtested month(s) before, and on the pooled ROC AUC
of the months before the pooled ones (disjoint outcomes). The monthly check repeats its tests every
month; over 24 months a 5 % test breaches by chance in most quiet runs, two
months in a row rarely.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from creditops.config import CheckConfig
from creditops.retraining.early_defaults import rule_early_default
from creditops.retraining.evidence import MonthEvidence, look_back, months_evidence
from creditops.retraining.policy import RuleResult, TriggerDecision, decide_on_rules

__all__ = ["MonthEvidence", "decide_on_months", "month_rules", "months_evidence"]


def _result(
    rule: str,
    value: float | None,
    limit: float,
    fired: bool,
    reason: str,
    *,
    months: tuple[str, ...] = (),
    evidence: str = "",
    rows: int | None = None,
) -> RuleResult:
    return RuleResult(
        rule, fired, value, limit, reason, months=months, evidence=evidence, rows=rows
    )


def rule_month_psi(window: list[MonthEvidence], config: CheckConfig) -> RuleResult:
    """Fires when the newest month's largest PSI reaches ``psi_max``."""
    limit = config.psi_max
    known = [m for m in window if m.max_psi is not None]
    if not known:
        return _result("psi", None, limit, False, "PSI abstains: no month of the look-back has one")
    m = known[-1]
    assert m.max_psi is not None
    fired = m.max_psi >= limit
    reason = (
        f"{m.month}: largest PSI {m.max_psi:.3f} ({m.max_psi_column}) "
        f"{'>=' if fired else '<'} psi_max {limit:.3f}"
    )
    return _result("psi", m.max_psi, limit, fired, reason, months=(m.month,), evidence="drift")


def rule_month_drift_share(window: list[MonthEvidence], config: CheckConfig) -> RuleResult:
    """Fires when the newest month's drifted share reaches ``min_drift_share``."""
    limit = config.min_drift_share
    known = [m for m in window if m.drift_share is not None]
    if not known:
        reason = "drift share abstains: no month of the look-back has one"
        return _result("drift_share", None, limit, False, reason)
    m = known[-1]
    assert m.drift_share is not None
    fired = m.drift_share >= limit
    reason = (
        f"{m.month}: drifted share {m.drift_share:.3f} "
        f"{'>=' if fired else '<'} min_drift_share {limit:.3f}"
    )
    return _result(
        "drift_share", m.drift_share, limit, fired, reason, months=(m.month,), evidence="drift"
    )


@dataclass(frozen=True)
class PooledAuc:
    """Realised ROC AUC pooled over months: the figure, its rows, bads and months."""

    auc: float | None  # None: fewer than min_matured_rows outcomes in all
    rows: int
    bads: float
    months: tuple[str, ...]

    @property
    def standard_error(self) -> float:
        """Hanley & McNeil's standard error of the ROC AUC on ``bads`` and the goods."""
        if self.auc is None or self.bads <= 0 or self.bads >= self.rows:
            return math.inf
        a, n1, n0 = self.auc, self.bads, self.rows - self.bads
        q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
        variance = (a * (1 - a) + (n1 - 1) * (q1 - a * a) + (n0 - 1) * (q2 - a * a)) / (n1 * n0)
        return math.sqrt(max(variance, 0.0))


def pooled_realised_auc(months: list[MonthEvidence], min_rows: int) -> PooledAuc:
    """ROC AUC pooled (rows-weighted) over the newest mature months with one, until ``min_rows``.

    A month whose performance window is still open is skipped: its posted
    outcomes are early defaults only.
    """
    total, bads, weighted, used = 0, 0.0, 0.0, []
    for m in reversed(months):
        if not m.mature or m.roc_auc is None or not m.roc_auc_rows:
            continue
        total += m.roc_auc_rows
        bads += (m.bad_rate or 0.0) * m.roc_auc_rows
        weighted += m.roc_auc * m.roc_auc_rows
        used.append(m.month)
        if total >= min_rows:
            return PooledAuc(weighted / total, total, bads, tuple(reversed(used)))
    return PooledAuc(None, total, bads, tuple(reversed(used)))


def rule_realised_auc(
    months: list[MonthEvidence], config: CheckConfig, baseline: float | None
) -> RuleResult:
    """Fires when the realised ROC AUC fell more than ``max_auc_drop`` below ``baseline``.

    ``baseline`` is the champion's ROC AUC on the test applicants it would
    grant: realised outcomes exist for granted loans only, a narrower score
    range than every applicant's, so the all-applicants test figure is not
    comparable. The drop must also be beyond the sampling error: the pooled
    figure's 95 % upper bound (Hanley & McNeil) below ``baseline``.
    """
    limit = config.max_auc_drop
    pooled = pooled_realised_auc(months, config.min_matured_rows)
    used, rows = pooled.months, pooled.rows
    if baseline is None:
        return _result("auc_drop", None, limit, False, "ROC AUC drop abstains: no baseline AUC")
    if pooled.auc is None:
        reason = (
            f"ROC AUC drop abstains: {rows} matured outcomes < min_matured_rows "
            f"{config.min_matured_rows}" + (f" (months {', '.join(used)})" if used else "")
        )
        return _result("auc_drop", None, limit, False, reason, months=used, rows=rows)
    drop = baseline - pooled.auc
    upper = pooled.auc + 1.96 * pooled.standard_error
    breach = drop > limit and upper < baseline
    confirmed, checks = _confirmations(months, config, baseline, pooled) if breach else (0, 0)
    fired = breach and confirmed == checks
    reason = (
        f"realised ROC AUC {pooled.auc:.4f} (95 % up to {upper:.4f}) on {rows} matured "
        f"outcomes ({used[0]}..{used[-1]}) vs {baseline:.4f} on the granted test applicants: "
        f"drop {drop:+.4f} {'>' if drop > limit else '<='} max_auc_drop {limit:.4f}"
        + ("" if breach or drop <= limit else ", within the sampling error")
        + (_confirmation_text(confirmed, checks) if breach else "")
    )
    return _result(
        "auc_drop", drop, limit, fired, reason, months=used, evidence="realised", rows=rows
    )


def _confirmations(
    months: list[MonthEvidence], config: CheckConfig, baseline: float, pooled: PooledAuc
) -> tuple[int, int]:
    """How many of the ``confirm_months - 1`` earlier pools also breach.

    Each earlier pool is made of the months before the previous pool's: disjoint
    outcomes, so a chance breach is not confirmed by the same loans again.
    """
    checks, confirmed, left = config.confirm_months - 1, 0, list(months)
    for _ in range(checks):
        taken = set(pooled.months)
        left = [m for m in left if m.month not in taken and m.month < min(taken)]
        pooled = pooled_realised_auc(left, config.min_matured_rows)
        if pooled.auc is None:
            break
        upper = pooled.auc + 1.96 * pooled.standard_error
        if not (baseline - pooled.auc > config.max_auc_drop and upper < baseline):
            break
        confirmed += 1
    return confirmed, checks


def _confirmation_text(confirmed: int, checks: int) -> str:
    if checks == 0:
        return ""
    if confirmed == checks:
        return f"; confirmed on the {checks} earlier evidence set(s) (confirm_months)"
    return (
        f"; not confirmed: {confirmed} of the {checks} earlier evidence set(s) breach "
        "(confirm_months): a single breach is the chance a monthly check runs every month"
    )


def rule_estimated_auc(
    window: list[MonthEvidence], config: CheckConfig, training_auc: float | None
) -> RuleResult:
    """Fires when the newest immature month's estimated ROC AUC band lies below the floor."""
    floor = None if training_auc is None else training_auc - config.max_auc_drop
    limit = floor if floor is not None else math.nan
    immature = [m for m in window if not m.mature and m.est_roc_auc_upper is not None]
    if floor is None:
        return _result("est_auc", None, limit, False, "estimated ROC AUC abstains: no training AUC")
    if not immature:
        reason = (
            "estimated ROC AUC abstains: no immature month of the look-back has an estimate"
            if any(not m.mature for m in window)
            else "estimated ROC AUC abstains: every month of the look-back is judged on outcomes"
        )
        return _result("est_auc", None, limit, False, reason)
    m = immature[-1]
    upper = m.est_roc_auc_upper
    assert upper is not None and m.est_roc_auc is not None
    fired = upper < floor
    reason = (
        f"{m.month}: estimated ROC AUC {m.est_roc_auc:.4f} (band up to {upper:.4f}) "
        f"{'<' if fired else '>='} training {training_auc:.4f} - max_auc_drop "
        f"{config.max_auc_drop:.4f} = {floor:.4f}"
    )
    return _result("est_auc", upper, floor, fired, reason, months=(m.month,), evidence="estimated")


def rule_backtest(months: list[MonthEvidence], config: CheckConfig) -> RuleResult:
    """Fires on a red band, or ``backtest_max_yellow`` yellow ones, in the newest backtest."""
    limit = float(config.backtest_max_yellow)
    known = [m for m in months if m.red_bands is not None]
    if not known:
        reason = "backtest abstains: no month has a PD backtest on matured outcomes yet"
        return _result("backtest", None, limit, False, reason)
    m = known[-1]
    red, yellow = m.red_bands or 0, m.yellow_bands or 0

    def breaches(month: MonthEvidence) -> bool:
        return (month.red_bands or 0) > 0 or (month.yellow_bands or 0) >= limit

    breach = breaches(m)
    earlier = known[-config.confirm_months : -1] if config.confirm_months > 1 else []
    checks = config.confirm_months - 1
    confirmed = sum(1 for e in earlier if breaches(e)) if breach else 0
    fired = breach and confirmed == checks
    reason = (
        f"{m.month}: PD backtest {red} red and {yellow} yellow band(s) "
        f"({'breach' if breach else 'quiet'}: a red band, or backtest_max_yellow "
        f"{config.backtest_max_yellow} yellow, breaches)"
        + (_confirmation_text(confirmed, checks) if breach else "")
    )
    if breach and confirmed < checks and len(earlier) < checks:
        reason += f" (only {len(earlier)} earlier backtested month(s) yet)"
    return _result(
        "backtest",
        float(red + yellow if fired else yellow),
        limit,
        fired,
        reason,
        months=(*(e.month for e in earlier), m.month),
        evidence="realised",
    )


def month_rules(
    months: list[MonthEvidence],
    config: CheckConfig,
    training_auc: float | None,
    granted_auc: float | None = None,
) -> list[RuleResult]:
    """Every monthly rule's verdict, in a fixed order.

    Args:
        months: the champion's months with traffic, oldest first.
        config: the ``[check]`` rules.
        training_auc: the champion's test ROC AUC (all applicants): the
            estimate's yardstick.
        granted_auc: its test ROC AUC on the applicants it would grant: the
            realised figures' yardstick (default ``training_auc``).
    """
    window = look_back(months, config)
    granted = training_auc if granted_auc is None else granted_auc
    return [
        rule_month_psi(window, config),
        rule_month_drift_share(window, config),
        rule_realised_auc(months, config, granted),
        rule_estimated_auc(window, config, training_auc),
        rule_backtest(months, config),
        rule_early_default(months, config),
    ]


def describe_months(window: list[MonthEvidence]) -> list[dict[str, object]]:
    """The look-back's months for the record: volume, maturity and which evidence each had."""
    return [
        {
            "month": m.month,
            "volume": m.volume,
            "matured_share": m.matured_share,
            "matured_rows": m.matured_rows,
            "evidence": m.evidence,
            "roc_auc": m.roc_auc,
            "est_roc_auc": m.est_roc_auc,
            "est_roc_auc_band": [m.est_roc_auc_lower, m.est_roc_auc_upper],
            "max_psi": m.max_psi,
            "drift_share": m.drift_share,
            "backtest_red_yellow": [m.red_bands, m.yellow_bands],
        }
        for m in window
    ]


def decide_on_months(
    months: list[MonthEvidence],
    config: CheckConfig,
    *,
    training_auc: float | None,
    granted_auc: float | None = None,
    champion_version: int,
    retrain: bool,
    last_retrain: datetime | None,
    now: datetime,
) -> TriggerDecision:
    """The whole monthly policy: the rules over the months, then the action. Pure."""
    window = look_back(months, config)
    rules = month_rules(months, config, training_auc, granted_auc)
    decision = decide_on_rules(
        rules,
        {
            "training_auc": training_auc,
            "granted_auc": granted_auc,
            "months_with_traffic": len(months),
        },
        config,
        champion_version=champion_version,
        retrain=retrain,
        last_retrain=last_retrain,
        now=now,
    )
    decision.source = "months"
    decision.months = describe_months(window)
    decision.window = (
        f"application months {window[0].month}..{window[-1].month} of v{champion_version}"
        if window
        else f"no application month of v{champion_version} with traffic"
    )
    evidence = {m.evidence for m in window}
    decision.messages.append(
        f"look-back of {len(window)} month(s): "
        + ", ".join(f"{m.month} {m.evidence}" for m in window)
        + ("" if "realised" in evidence else "; no month of it has matured outcomes yet")
    )
    return decision
