"""The original pipeline's integer category codes, accepted on ``POST /invocations``.

The original pipeline trained its model on the categories coded as integers,
in the order of its value table ("Valores limites"), and its simulator sends
them so: ``{"Home": 1, "Records": 0, ...}``. With ``[serve] original_codes =
true`` such a code is turned into the contract's label before validation, so
that the scorer and the inference log see labels only. With the switch off
(the default) a code is refused, and the refusal names the switch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from creditops import schema

# The original's value table, in its order: the code of a label is its position.
ORIGINAL_CODES: dict[str, tuple[str, ...]] = {
    "Home": ("rent", "owner", "parents", "priv", "other", "ignore"),
    "Marital": ("married", "widow", "single", "separated", "divorced"),
    "Records": ("no", "yes"),
    "Job": ("freelance", "fixed", "partime", "others"),
}
SWITCH_HINT = "set [serve] original_codes = true to accept the original pipeline's integer codes"


def as_code(value: Any) -> int | None:
    """``value`` as an integer code (an int, or a whole float as pandas sends), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def decode_records(records: list[Any]) -> list[Any]:
    """The records with each valid original code in a category column replaced by its label.

    Rows that are not objects, labels and unknown codes are left as they are:
    the validation names them (see :func:`explain_codes`).
    """
    decoded: list[Any] = []
    for record in records:
        if not isinstance(record, dict):
            decoded.append(record)
            continue
        row = dict(record)
        for name, labels in ORIGINAL_CODES.items():
            code = as_code(row.get(name))
            if code is not None and 0 <= code < len(labels):
                row[name] = labels[code]
        decoded.append(row)
    return decoded


def explain_codes(
    violations: Sequence[schema.Violation], *, enabled: bool
) -> list[schema.Violation]:
    """The violations, with the rule of each integer code in a category column explained.

    Args:
        violations: what the contract validation found.
        enabled: ``[serve] original_codes``: on, the code is outside the original's
            table; off, codes are refused and the rule names the switch.
    """
    out = []
    for violation in violations:
        labels = ORIGINAL_CODES.get(violation.field)
        if labels is None or as_code(violation.value) is None:
            out.append(violation)
            continue
        if enabled:
            table = ", ".join(f"{code}={label}" for code, label in enumerate(labels))
            rule = f"is not one of the original pipeline's codes ({table})"
        else:
            rule = f"is an integer code: {SWITCH_HINT}"
        out.append(schema.Violation(violation.row, violation.field, violation.value, rule))
    return out
