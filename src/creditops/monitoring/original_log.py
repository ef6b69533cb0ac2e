"""The original pipeline's inference log, read as a ``monitor --current`` window.

The original pipeline's simulator writes ``credit_data_inferences_log.csv``:
the 13 features with the categories as integer codes of its value table
(Home 0-5, Marital 0-4, Records 0-1, Job 0-3), money maybe with cents, its
model's 0/1 output ``prediction``, the simulated 0/1 outcome ``target``, and
maybe an index column. This module reads the two parts the contract does not
know:

* ``target`` is the outcome. The original trained on ``Status`` label-encoded
  in alphabetical order, so ``0`` is ``bad`` and ``1`` is ``good`` (the
  reverse of "1 = the event", creditops' ``bad``): :data:`TARGET_LABELS`.
* Integer category codes are decoded with the service's own code table
  (:data:`creditops.serving.original_codes.ORIGINAL_CODES`) when
  ``[monitor] original_codes`` is on. Off, each code is a data-quality finding
  whose rule names the switch: a code is never read as a label by accident.

``prediction`` is accepted and ignored: it is the original model's decision,
not the champion's, and the champion scores the rows itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from creditops import schema
from creditops.serving.original_codes import ORIGINAL_CODES

TARGET_COLUMN = "target"
PREDICTION_COLUMN = "prediction"
# the original's label encoding of Status (alphabetical): the code is the position
TARGET_LABELS: tuple[str, ...] = ("bad", "good")
TARGET_RULE = "is not one of 0 (bad), 1 (good)"
SWITCH_HINT = "set [monitor] original_codes = true to read the original pipeline's integer codes"
CODE_RULE = f"is an integer code: {SWITCH_HINT}"


def decode_target(values: pd.Series) -> tuple[pd.Series, list[schema.Violation]]:
    """The ``target`` column as outcome labels (0 -> bad, 1 -> good), and its broken cells.

    A missing value stays missing (outcome unknown). Any other value is a
    violation (rows counted from 1) and its outcome is left missing.
    """
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    decoded = np.full(len(values), np.nan, dtype=object)
    for code, label in enumerate(TARGET_LABELS):
        decoded[numbers == code] = label
    labels = pd.Series(decoded, index=values.index, dtype=object)
    broken = np.flatnonzero(values.notna().to_numpy() & labels.isna().to_numpy())
    violations = [
        schema.Violation(int(i) + 1, TARGET_COLUMN, _shown(values.iloc[i]), TARGET_RULE)
        for i in broken
    ]
    return labels, violations


def read_category_codes(
    raw: pd.DataFrame, *, enabled: bool
) -> tuple[pd.DataFrame, list[schema.Violation]]:
    """The file with its integer category codes decoded (switch on), and the codes it broke.

    A cell is a code when it reads as a whole number (``1``, ``1.0``, ``"1"``).
    On, a code of the original's table becomes its label and any other code
    is a violation naming the table; off, every code is a violation naming
    the switch (its cell is left as it was).

    Args:
        raw: the file as read.
        enabled: ``[monitor] original_codes``.

    Returns:
        A new frame, and the violations (rows counted from 1).
    """
    out = raw.copy()
    violations: list[schema.Violation] = []
    for name, labels in ORIGINAL_CODES.items():
        if name not in out:
            continue
        numbers = pd.to_numeric(out[name], errors="coerce").to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            codes = np.isfinite(numbers) & (numbers == np.round(numbers))
        if not codes.any():
            continue
        known = codes & (numbers >= 0) & (numbers < len(labels))
        if enabled:
            column = out[name].astype(object)
            column[known] = [labels[int(n)] for n in numbers[known]]
            out[name] = column
        table = ", ".join(f"{code}={label}" for code, label in enumerate(labels))
        for i in np.flatnonzero(codes & ~known if enabled else codes):
            rule = (
                f"is not one of the original pipeline's codes ({table})" if enabled else CODE_RULE
            )
            violations.append(schema.Violation(int(i) + 1, name, int(numbers[i]), rule))
    return out, violations


def without_repeats(
    first: Sequence[schema.Violation], then: Sequence[schema.Violation]
) -> list[schema.Violation]:
    """``first``, then those of ``then`` about a cell ``first`` does not already name.

    A code's cell also fails the contract's own rules (``3`` is not a Home,
    Records ``0`` read as missing is required): the code's rule says why, once.
    """
    named = {(v.row, v.field) for v in first}
    return [*first, *(v for v in then if (v.row, v.field) not in named)]


def _shown(value: object) -> object:
    """A cell as a message shows it: numpy scalars as Python values."""
    return value.item() if isinstance(value, np.generic) else value
