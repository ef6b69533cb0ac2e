"""The reason codes a declined applicant reads: one stable code and plain sentence per model input.

Every model input of the applicant contract (``schema.FEATURES``) and every
derived ratio (``features.DERIVED``, mapped back to the inputs it is computed
from) has one :class:`ReasonCode`. A reason in any output (``POST /predict``,
the ``reasons`` column of ``creditops score``) is the dict
``{"code", "sentence", "feature", "value"}`` of :meth:`ReasonCode.as_reason`.

Codes are stable: a code, once given, keeps its meaning; a new input gets a new
code, never a reused one. Protected attributes (``[fairness] protected``,
:data:`DEFAULT_PROTECTED` until configured) have codes so that the table is
complete, but :func:`allowed_sources` keeps them, and every derived feature
built from one of them, out of every list of reasons.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# The protected bases of ECOA / Regulation B among the contract's inputs: the
# default of [fairness] protected, used wherever that section is not passed in.
DEFAULT_PROTECTED: tuple[str, ...] = ("Age", "Marital")
# The number of key factors a US adverse-action notice may list (Regulation B,
# 12 CFR 1002.9(b)(2), official commentary: "more than four ... not meaningful").
MAX_REASONS = 4


@dataclass(frozen=True)
class ReasonCode:
    """One reason: its stable code, the model input it covers, and the sentence shown.

    Attributes:
        code: "R01".."R99", stable across versions.
        feature: the model input (a contract column or a derived ratio).
        inputs: the contract columns ``feature`` is made of (itself for an input).
        sentence: what a declined applicant reads, in plain words.
    """

    code: str
    feature: str
    inputs: tuple[str, ...]
    sentence: str

    def as_reason(self, value: Any) -> dict[str, Any]:
        """The reason as every output shows it, with this applicant's ``value``."""
        return {
            "code": self.code,
            "sentence": self.sentence,
            "feature": self.feature,
            "value": value,
        }


def _code(code: str, feature: str, sentence: str, *inputs: str) -> ReasonCode:
    return ReasonCode(code, feature, inputs or (feature,), sentence)


REASON_CODES: dict[str, ReasonCode] = {
    c.feature: c
    for c in (
        _code("R01", "Seniority", "the length of time in the current job"),
        _code("R02", "Home", "the type of home ownership"),
        _code("R03", "Time", "the term of the requested loan"),
        _code("R04", "installment_to_income", "income is low relative to the amount requested",
              "Amount", "Time", "Income"),
        _code("R05", "Records", "there are records of unpaid credit"),
        _code("R06", "Job", "the type of job"),
        _code("R07", "Expenses", "the level of monthly expenses"),
        _code("R08", "Income", "monthly income is low or was not stated"),
        _code("R09", "Assets", "the value of assets, or assets not stated"),
        _code("R10", "Debt", "the amount of current debt, or debt not stated"),
        _code("R11", "Amount", "the amount of the requested loan"),
        _code("R12", "Price", "the price of the good being bought"),
        _code("R13", "loan_to_price", "the share of the price the loan would cover",
              "Amount", "Price"),
        _code("R14", "income_free", "income left after expenses is low", "Income", "Expenses"),
        _code("R15", "debt_to_income", "current debt is high relative to income",
              "Debt", "Income"),
        # Protected by default ([fairness] protected): listed so the table covers
        # every input, given only if the configuration says they are not protected.
        _code("R90", "Age", "the age of the applicant"),
        _code("R91", "Marital", "the marital status"),
    )
}  # fmt: skip


def reason_code(feature: str) -> ReasonCode:
    """The code of one model input.

    Raises:
        KeyError: ``feature`` is neither a contract column nor a derived ratio.
    """
    try:
        return REASON_CODES[feature]
    except KeyError:
        raise KeyError(
            f"no reason code for model input {feature!r} "
            f"(the table covers {', '.join(REASON_CODES)})"
        ) from None


def is_protected(feature: str, protected: Iterable[str]) -> bool:
    """Whether ``feature`` is, or is made from, a protected attribute."""
    return bool(set(reason_code(feature).inputs) & set(protected))


def allowed_sources(sources: Iterable[str], protected: Iterable[str]) -> list[int]:
    """Positions in ``sources`` that may be given as reasons (no protected input among them)."""
    guarded = tuple(protected)
    return [i for i, name in enumerate(sources) if not is_protected(name, guarded)]
