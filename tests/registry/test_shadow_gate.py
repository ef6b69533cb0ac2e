"""The gate's shadow requirement: too few shadow-scored applicants refuse a pass."""

from __future__ import annotations

from creditops.registry.promotion import PromotionDecision, shadow_verdict
from creditops.registry.shadow_gate import ShadowEvidence


def _passed(rule: str = "margin") -> PromotionDecision:
    return PromotionDecision(
        promoted=True,
        reason="v3 beats v2",
        challenger_version=3,
        challenger_auc=0.85,
        champion_version=2,
        champion_auc=0.82,
        min_auc=0.7,
        min_improvement=0.01,
        holdout_rows=500,
        holdout_hash="h",
        rule=rule,
    )


def test_too_few_shadow_rows_refuse_with_the_counts() -> None:
    decision = shadow_verdict(_passed(), ShadowEvidence(rows=120, required=500, headline="h"))
    assert not decision.promoted and decision.rule == "shadow"
    assert "120 applicants < [promote] min_shadow_rows 500" in decision.reason
    assert decision.shadow == {"rows": 120, "required": 500, "headline": "h"}


def test_enough_shadow_rows_pass_and_quote_the_comparison() -> None:
    evidence = ShadowEvidence(rows=800, required=500, headline="agreement 93.0%")
    decision = shadow_verdict(_passed(), evidence)
    assert decision.promoted and decision.rule == "margin"
    assert decision.reason == "v3 beats v2; shadow: agreement 93.0%"


def test_no_requirement_leaves_the_decision_alone() -> None:
    assert shadow_verdict(_passed(), None) == _passed()
    refused = shadow_verdict(
        _passed().__class__(**{**_passed().as_dict(), "promoted": False, "rule": "floor"}),
        ShadowEvidence(rows=0, required=10),
    )
    assert refused.rule == "floor"  # an earlier refusal keeps its own rule
