"""The gate's shadow requirement: a challenger must have been judged on live traffic.

``[promote] min_shadow_rows`` (or ``creditops promote --min-shadow-rows N``):
the challenger is promoted only once the service scored at least that many
applicants with it in the shadow of the champion (``[serve] shadow = true``).
The caller counts them in the shadow log and passes the comparison's headline
(``creditops compare``), which the decision quotes either way.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ShadowEvidence:
    """What the shadow log holds for the challenger.

    Attributes:
        rows: applicants the challenger scored in the shadow.
        required: the fewest the gate accepts (0: no requirement).
        headline: the comparison's one-line summary, or why there is none.
    """

    rows: int
    required: int
    headline: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"rows": self.rows, "required": self.required, "headline": self.headline}


def shadow_refusal(challenger_version: int, evidence: ShadowEvidence) -> str:
    """Why a passing challenger is refused for too few shadow rows; "" when it has enough."""
    if evidence.rows >= evidence.required:
        return ""
    return (
        f"v{challenger_version} was shadow-scored on {evidence.rows} applicants "
        f"< [promote] min_shadow_rows {evidence.required}: serve it in the champion's "
        "shadow ([serve] shadow = true) for longer"
    )
