"""The monitoring table as the dashboard's series: pure, no I/O.

The table (:mod:`creditops.monitoring.table`) holds one row per (application
month, model version, metric). Every series here is laid on the same calendar:
every month from the first to the last in the table, so that a month without
traffic is a gap (``None``) in every line, never a zero.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd

from creditops.monitoring.table import TABLE_COLUMNS as STORED_COLUMNS

# the columns the panels read: the monitoring table's, less its write time
TABLE_COLUMNS = tuple(name for name in STORED_COLUMNS if name != "computed_at")


@dataclass(frozen=True)
class Mark:
    """A month to mark on every time axis: a version change or a trigger decision."""

    month: str
    label: str
    # "version" (a new model served from this month) or "trigger" (a decision)
    kind: str
    # a trigger decision that fired (drawn in red) rather than one that stayed quiet
    fired: bool = False


def month_range(months: pd.Series) -> list[str]:
    """Every month from the earliest to the latest of ``months`` ("YYYY-MM"), gaps included."""
    valid = pd.PeriodIndex(sorted(set(months.dropna().astype(str))), freq="M")
    if len(valid) == 0:
        return []
    return [str(period) for period in pd.period_range(valid.min(), valid.max(), freq="M")]


def checked_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table with the columns the panels read; a missing column is a clear error."""
    missing = [column for column in TABLE_COLUMNS if column not in table.columns]
    if missing:
        raise ValueError(f"the monitoring table lacks the columns {missing}")
    # the table holds absent figures as None: as floats, NaN here, None again in each series
    numbers = {
        name: pd.to_numeric(table[name], errors="coerce") for name in ("value", "lower", "upper")
    }
    return table.assign(
        month=table["month"].astype(str),
        model_version=table["model_version"].astype(int),
        **numbers,
    )


def versions(table: pd.DataFrame) -> list[int]:
    """The model versions in the table, oldest first."""
    return sorted(int(version) for version in table["model_version"].unique())


def series(
    table: pd.DataFrame, metric: str, months: list[str], column: str = "value"
) -> dict[int, list[float | None]]:
    """One metric's ``column`` per model version, on ``months`` (``None`` where absent)."""
    rows = table[table["metric"] == metric]
    out: dict[int, list[float | None]] = {}
    for version, group in rows.groupby("model_version"):
        by_month = dict(zip(group["month"], group[column], strict=True))
        out[int(str(version))] = [_number(by_month.get(month)) for month in months]
    return out


def metrics_with_prefix(table: pd.DataFrame, prefix: str) -> list[str]:
    """The metric names that start with ``prefix``, sorted."""
    names = table.loc[table["metric"].str.startswith(prefix), "metric"].unique()
    return sorted(str(name) for name in names)


def served_version(table: pd.DataFrame, months: list[str]) -> list[int | None]:
    """The version that scored most applicants in each month (``None``: no traffic)."""
    volume = table[table["metric"] == "volume"]
    served: list[int | None] = []
    for month in months:
        rows = volume[volume["month"] == month]
        values = rows["value"].to_numpy(dtype=float, na_value=0.0)
        if len(rows) == 0 or values.max() <= 0:
            served.append(None)
        else:
            served.append(int(rows["model_version"].to_numpy()[values.argmax()]))
    return served


def marks(table: pd.DataFrame, months: list[str]) -> list[Mark]:
    """Version changes (the served version of a month differs from the last month's)
    and trigger decisions (rows of kind "trigger"), in month order."""
    out: list[Mark] = []
    last: int | None = None
    for month, version in zip(months, served_version(table, months), strict=True):
        if version is not None and version != last:
            if last is not None:
                out.append(Mark(month, f"v{version}", "version"))
            last = version
    decisions = table[table["kind"] == "trigger"]
    for _, row in decisions.sort_values("month").iterrows():
        fired = bool(row["value"]) if pd.notna(row["value"]) else False
        action = parse_detail(row["detail"]).get("action", "fired" if fired else "quiet")
        out.append(Mark(str(row["month"]), f"trigger: {action}", "trigger", fired))
    return out


def detail_of(table: pd.DataFrame, metric: str, month: str, version: int) -> dict[str, object]:
    """The JSON extras of one row (empty when absent or not JSON)."""
    rows = table[
        (table["metric"] == metric)
        & (table["month"] == month)
        & (table["model_version"] == version)
    ]
    return parse_detail(rows["detail"].iloc[0]) if len(rows) else {}


def parse_detail(text: object) -> dict[str, object]:
    """A row's JSON extras (empty when absent or not JSON)."""
    if not isinstance(text, str) or not text.startswith("{"):
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _number(value: object) -> float | None:
    if value is None:
        return None
    number = float(str(value)) if not isinstance(value, int | float) else float(value)
    return None if pd.isna(number) else number
