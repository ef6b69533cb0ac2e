"""Figures as records: JSON-safe values and one way to print a figure.

Monitoring summaries, trigger decisions and training reports hold NaN
(a metric undefined on one class) and numpy scalars; JSON has neither.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf as ``None``, numpy scalars as Python ones, tuples as lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def format_figure(value: Any, missing: str = "n/a") -> str:
    """A figure with 4 decimals, or ``missing`` when it is absent or not finite."""
    if value is None:
        return missing
    number = float(value)
    return f"{number:.4f}" if math.isfinite(number) else missing
