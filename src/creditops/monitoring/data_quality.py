"""The window's data quality: rows that break the contract, set aside and counted.

A monitor reports; it does not refuse to look. A row of the current window
that breaks the applicant contract (:func:`creditops.validation.validate_rows`),
carries an outcome other than ``good``/``bad`` or a score outside [0, 1] is a
data-quality finding: it is counted by field and rule, a few examples are
kept, and the drift and quality figures are computed on the valid rows only.

Counts are keyed ``"<field>: <rule category>"`` (``"Age: below_minimum"``):
the rule's text without its limits, so the keys stay the same whatever the
contract's limits are, and each key counts rows (a row breaks a given rule of
a given field at most once).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from creditops import schema, validation
from creditops.errors import MonitorError
from creditops.monitoring.result import OUTCOME, SCORE, MonitorResult

# how many broken rules a data-quality example list keeps
EXAMPLES = 5
SCORE_RULE = "must be a number between 0 and 1"
OUTCOME_RULE = f"is not one of {', '.join(schema.LABELS)}"
# the rule texts of validate_rows (and of the window's own columns), by category
_CATEGORIES = (
    ("is required", "required"),
    ("is not one of", "not_a_category"),
    # an original pipeline's integer code while [monitor] original_codes is off
    ("is an integer code", "integer_code"),
    ("is not a number", "not_a_number"),
    ("is not finite", "not_finite"),
    ("is below the minimum", "below_minimum"),
    ("must be greater than", "below_minimum"),
    ("is above the maximum", "above_maximum"),
    ("must be a whole number", "not_whole_number"),
    (SCORE_RULE, "not_a_probability"),
)


@dataclass(frozen=True)
class DataQuality:
    """How many rows of a window break the contract, and how.

    Attributes:
        rows: the window's rows, valid and invalid.
        invalid_rows: the rows that break at least one rule.
        by_rule: rows per ``"<field>: <rule category>"``, commonest first.
        examples: the first broken rules (``row``, ``field``, ``value``,
            ``rule``); rows are counted from 1 in the window (a CSV file's
            data rows, the header not counted).
    """

    rows: int
    invalid_rows: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def valid_rows(self) -> int:
        """The rows the figures are computed on."""
        return self.rows - self.invalid_rows

    @property
    def invalid_share(self) -> float:
        """The share of the window's rows that break the contract (0 for no rows)."""
        return self.invalid_rows / self.rows if self.rows else 0.0

    def describe(self) -> str:
        """The counts in words: ``4 of 300 rows (1.3%) break the contract``."""
        return (
            f"{self.invalid_rows} of {self.rows} rows ({self.invalid_share:.1%}) break the contract"
        )

    def commonest(self, count: int = 3) -> str:
        """The ``count`` commonest broken rules, for messages: ``Age: below_minimum (4 rows)``."""
        return ", ".join(f"{key} ({n} rows)" for key, n in list(self.by_rule.items())[:count])


def rule_category(rule: str) -> str:
    """A rule's category, without its limits or categories (``is above the maximum 10000``).

    An unknown rule text becomes its words without numbers, joined by ``_``.
    """
    for prefix, category in _CATEGORIES:
        if rule.startswith(prefix):
            return category
    words = re.findall(r"[A-Za-z]+", rule)
    return "_".join(words).lower() or "other"


def rule_key(violation: schema.Violation) -> str:
    """The key a violation is counted under: ``"<field>: <rule category>"``."""
    return f"{violation.field}: {rule_category(violation.rule)}"


def rule_metric(key: str) -> str:
    """The MLflow metric of a key's count: ``Age: below_minimum`` -> ``invalid_Age_below_minimum``."""
    return "invalid_" + re.sub(r"[^0-9A-Za-z_]+", "_", key).strip("_")


def summarize(violations: Sequence[schema.Violation], rows: int) -> DataQuality:
    """Count ``violations`` of a window of ``rows`` rows by field and rule category."""
    counts = Counter(rule_key(v) for v in violations)
    by_rule = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return DataQuality(
        rows=rows,
        invalid_rows=len({v.row for v in violations}),
        by_rule=by_rule,
        examples=[v.as_dict() for v in violations[:EXAMPLES]],
    )


def window_violations(
    frame: pd.DataFrame, *, outcome_field: str = OUTCOME
) -> list[schema.Violation]:
    """Every broken rule of a window: the features, the outcome and the score.

    Args:
        frame: the window, features already normalized
            (:func:`creditops.schema.normalize_raw`); ``outcome`` lower-case
            text or missing, ``probability`` as read.
        outcome_field: the outcome's name in messages (``Status`` when the
            file calls it so).

    Returns:
        The violations, by row (rows counted from 1).
    """
    present = [c for c in schema.FEATURES if c in frame]
    violations = validation.validate_rows(frame.loc[:, present])
    rows = np.arange(1, len(frame) + 1)
    if OUTCOME in frame:
        labels = frame[OUTCOME]
        wrong = (labels.notna() & ~labels.isin(schema.LABELS)).to_numpy()
        violations += [
            schema.Violation(int(rows[i]), outcome_field, labels.iloc[i], OUTCOME_RULE)
            for i in np.flatnonzero(wrong)
        ]
    if SCORE in frame:
        scores = pd.to_numeric(frame[SCORE], errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            wrong = ~((scores >= 0) & (scores <= 1))
        violations += [
            schema.Violation(int(rows[i]), SCORE, frame[SCORE].iloc[i], SCORE_RULE)
            for i in np.flatnonzero(wrong)
        ]
    return sorted(violations, key=lambda v: v.row)


def set_aside(
    frame: pd.DataFrame, violations: Sequence[schema.Violation]
) -> tuple[pd.DataFrame, DataQuality]:
    """The rows of ``frame`` that break no rule (renumbered from 0), and the window's counts.

    ``violations`` count rows from 1 (:func:`window_violations`).
    """
    quality = summarize(violations, len(frame))
    if not violations:
        return frame.reset_index(drop=True), quality
    broken = validation.rows_with_violations(violations, first_row=1)
    keep = np.ones(len(frame), dtype=bool)
    keep[broken] = False
    return frame.loc[keep].reset_index(drop=True), quality


def require_valid_rows(quality: DataQuality, min_rows: int, window: str = "") -> None:
    """Refuse an empty window, or one whose broken rows leave fewer than ``min_rows`` valid rows.

    A window without broken rows passes whatever its size: a small clean
    window still gets the figures that make sense.

    Raises:
        MonitorError: the window has no rows; or too few valid ones, naming the
            counts, the commonest broken rules and the first one.
    """
    where = f"the window {window}" if window else "the window"
    if quality.rows == 0:
        raise MonitorError(f"{where} has no rows: nothing to monitor")
    if quality.invalid_rows == 0 or quality.valid_rows >= min_rows:
        return
    if quality.valid_rows == 0:
        counts = f"every one of its {quality.rows} rows breaks the contract"
    else:
        counts = (
            f"{quality.describe()}, leaving {quality.valid_rows} valid rows, fewer than "
            f"[monitor] min_rows {min_rows}"
        )
    first = quality.examples[0]
    raise MonitorError(
        f"{where}: {counts}; nothing to monitor. Commonest broken rules: {quality.commonest()}; "
        f"first: row {first['row']}, {first['field']}: {schema.show_value(first['value'])} "
        f"{first['rule']}"
    )


def record_data_quality(result: MonitorResult, quality: DataQuality) -> None:
    """The window's broken rows into ``result``, and a note when there are any."""
    result.invalid_rows = quality.invalid_rows
    result.invalid_share = quality.invalid_share
    result.invalid_by_rule = dict(quality.by_rule)
    result.invalid_examples = list(quality.examples)
    if quality.invalid_rows:
        result.messages.append(
            f"{quality.describe()} and are left out of the figures: {quality.commonest()}"
        )
