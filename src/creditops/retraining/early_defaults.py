"""The trigger's early-default rule: open vintages defaulting faster than the first ones did, pure.

A vintage's outcomes mature over its performance window, but its defaults show
up before: at each month on book, the cumulative bad share of the champion's
first vintages (the baseline: its first ``[check] months`` months with
traffic) says how many bads an open vintage should have by now. Many more,
with a one-sided Poisson test, is a downturn seen months before the realised
rules can see it (:mod:`creditops.retraining.months` runs it with the others).
"""

from __future__ import annotations

from creditops.config import CheckConfig
from creditops.retraining.evidence import MonthEvidence, look_back
from creditops.retraining.policy import RuleResult


def expected_early_defaults(
    window: list[MonthEvidence], baseline: list[MonthEvidence]
) -> tuple[float, float, tuple[str, ...]]:
    """Bads seen so far in the look-back's open vintages, and as many as the baseline implies.

    Each open vintage at its latest months on book ``k`` is compared with the
    pooled cumulative bad share at ``k`` of the baseline vintages (the
    champion's first months) that reached ``k``.

    Returns:
        Observed bads, expected bads, and the vintages counted.
    """
    observed, expected, used = 0.0, 0.0, []
    for m in window:
        if m.mature or not m.vintage or not m.granted:
            continue
        k, share = m.vintage[-1]
        pooled = [
            (dict(b.vintage)[k], b.granted)
            for b in baseline
            if b.month != m.month and k in dict(b.vintage) and b.granted
        ]
        rows = sum(n for _, n in pooled)
        if rows == 0:
            continue
        observed += share * m.granted
        expected += m.granted * sum(r * n for r, n in pooled) / rows
        used.append(m.month)
    return observed, expected, tuple(used)


def rule_early_default(months: list[MonthEvidence], config: CheckConfig) -> RuleResult:
    """Fires when the open vintages default faster than the champion's first vintages did.

    Defaults show up before a vintage matures: observed bads of the look-back's
    open vintages against those the baseline vintage curve implies, one-sided
    Poisson test at ``early_default_p`` and a ratio of at least ``early_default_ratio``.
    """
    from scipy import stats

    limit = config.early_default_ratio
    window, baseline = look_back(months, config), months[: config.months]
    observed, expected, used = expected_early_defaults(window, baseline)
    if expected < 5:
        reason = (
            f"early defaults abstain: {expected:.1f} expected bads < 5 "
            "(too few open vintages, or no baseline vintage reached their months on book)"
        )
        return RuleResult("early_default", False, None, limit, reason, months=used)
    ratio = observed / expected
    p_value = float(stats.poisson.sf(round(observed) - 1, expected))
    fired = ratio >= limit and p_value < config.early_default_p
    reason = (
        f"early defaults of {', '.join(used)}: {observed:.0f} bads vs {expected:.1f} expected "
        f"from the first vintages' curve (ratio {ratio:.2f}, p {p_value:.2g}): "
        f"{'fires' if fired else 'quiet'} at ratio >= {limit:g} and p < {config.early_default_p:g}"
    )
    return RuleResult(
        "early_default", fired, ratio, limit, reason, months=used, evidence="early defaults"
    )
