"""The current window: rows of the inference log, or a CSV file with the contract's columns.

Either way, rows that break the contract are set aside and counted
(:mod:`creditops.monitoring.data_quality`): the figures use the valid rows.
A CSV file may also be the original pipeline's own inference log (``target``,
``prediction``, integer category codes: :mod:`creditops.monitoring.original_log`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from creditops import schema
from creditops.config import MonitorConfig
from creditops.errors import ContractError, MonitorError
from creditops.monitoring.data_quality import DataQuality, set_aside, window_violations
from creditops.monitoring.original_log import (
    PREDICTION_COLUMN,
    TARGET_COLUMN,
    decode_target,
    read_category_codes,
    without_repeats,
)
from creditops.monitoring.result import OUTCOME, SCORE
from creditops.secrets import redact_text, redact_url

log = logging.getLogger(__name__)

# columns a current CSV may carry besides the contract's features
OPTIONAL_COLUMNS = (
    SCORE,
    OUTCOME,
    schema.TARGET,
    TARGET_COLUMN,
    PREDICTION_COLUMN,
    "request_id",
    "created_at",
    "model_version",
    "decision",
    "threshold",
)
# the columns a file may name its outcome by, one at most
OUTCOME_COLUMNS = (OUTCOME, schema.TARGET, TARGET_COLUMN)


@dataclass
class CurrentWindow:
    """The window's valid rows, how it was chosen, and its data quality.

    Attributes:
        rows: the rows that break no rule (contract features, maybe
            ``probability`` and ``outcome``), renumbered from 0.
        description: how the window was chosen, for the reports and the log.
        data_quality: the rows set aside, counted by field and rule.
    """

    rows: pd.DataFrame
    description: str
    data_quality: DataQuality


def read_current_csv(path: Path, *, original_codes: bool = False) -> CurrentWindow:
    """A current window from a CSV file; rows that break the contract are set aside.

    The file holds the 13 features and may add ``probability``, an outcome
    (``outcome`` or ``Status``: good/bad; or the original pipeline's
    ``target``: 0 = bad, 1 = good), the original's ``prediction`` (ignored)
    and the inference log's other columns. A row with a value the contract
    refuses, an outcome it cannot read or a score outside [0, 1] is counted in
    :attr:`CurrentWindow.data_quality`, not refused.

    Args:
        path: the CSV file.
        original_codes: ``[monitor] original_codes``: read integer category
            codes with the original pipeline's code table (off: each code is a
            finding naming the switch).

    Raises:
        ContractError: a feature column is missing, a column is unknown, or
            two columns name the outcome.
        MonitorError: the file cannot be read.
    """
    try:
        raw = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise MonitorError(f"current file {path} not found") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise MonitorError(f"current file {path} is not a readable CSV: {exc}") from exc
    _check_columns(raw, path)
    decoded, code_violations = read_category_codes(raw, enabled=original_codes)
    frame = schema.normalize_raw(decoded.drop(columns=[schema.TARGET], errors="ignore"))
    window = frame.loc[:, list(schema.FEATURES)].copy()
    label_column, label_violations = _add_outcome(window, raw)
    if SCORE in raw:
        window[SCORE] = raw[SCORE]
    contract = _unreadable_numbers(raw, frame) + window_violations(
        window, outcome_field=label_column
    )
    violations = without_repeats(code_violations + label_violations, contract)
    rows, quality = set_aside(window, sorted(violations, key=lambda v: v.row))
    out = schema.coerce_features(rows)
    if OUTCOME in rows:
        out[OUTCOME] = rows[OUTCOME]
    if SCORE in rows:
        out[SCORE] = pd.to_numeric(rows[SCORE]).astype("float64")
    return CurrentWindow(out, f"file {path}", quality)


def _add_outcome(window: pd.DataFrame, raw: pd.DataFrame) -> tuple[str, list[schema.Violation]]:
    """The file's outcome into ``window[OUTCOME]``; the column it came from and its broken cells.

    ``target`` is decoded from the original's 0/1 codes here; the text labels
    of ``outcome``/``Status`` are checked with the rest of the window.
    """
    present = [c for c in OUTCOME_COLUMNS if c in raw]
    if not present:
        return OUTCOME, []
    column = present[0]
    if column == TARGET_COLUMN:
        window[OUTCOME], violations = decode_target(raw[column])
        return column, violations
    window[OUTCOME] = _outcomes(raw[column])
    return column, []


def _unreadable_numbers(raw: pd.DataFrame, frame: pd.DataFrame) -> list[schema.Violation]:
    """Numbers that :func:`creditops.schema.normalize_raw` would quietly turn into missing.

    It reads Income, Assets and Debt as numbers to find their "missing" codes,
    so a text there (Income ``'abc'``) would pass as an unknown income.
    """
    violations = []
    for name in schema.NUMERIC:
        given = raw[name]
        erased = given.notna() & pd.to_numeric(given, errors="coerce").isna() & frame[name].isna()
        violations += [
            schema.Violation(int(i) + 1, name, given.iloc[i], "is not a number")
            for i in np.flatnonzero(erased.to_numpy())
        ]
    return violations


def _check_columns(raw: pd.DataFrame, path: Path) -> None:
    """Refuse a CSV that misses a feature or carries a column the window does not know."""
    present = [str(c) for c in raw.columns if str(c) not in schema.IGNORED_COLUMNS]
    missing = [c for c in schema.FEATURES if c not in present]
    extra = [c for c in present if c not in schema.FEATURES and c not in OPTIONAL_COLUMNS]
    outcomes = [c for c in OUTCOME_COLUMNS if c in present]
    if missing or extra or len(outcomes) > 1:
        parts = []
        if missing:
            parts.append(f"missing column(s): {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected column(s): {', '.join(extra)}")
        if len(outcomes) > 1:
            parts.append(f"more than one outcome column ({', '.join(outcomes)}): keep one")
        raise ContractError(f"current file {path}: " + "; ".join(parts))


def _outcomes(labels: pd.Series) -> pd.Series:
    """The CSV's outcome labels, trimmed and lower-cased; missing stays missing."""
    labels = labels.astype("object").where(labels.notna(), np.nan)
    return labels.where(labels.isna(), labels.astype(str).str.strip().str.lower())


def read_window(
    store_url: str,
    *,
    last_n: int | None,
    since: datetime | None,
    until: datetime | None,
) -> pd.DataFrame:
    """A window of the inference log (oldest first).

    Raises:
        MonitorError: the log cannot be read.
    """
    import sqlalchemy as sa

    from creditops.serving.store import FRAME_COLUMNS, InferenceStore

    store = InferenceStore(store_url)
    try:
        if not sa.inspect(store.engine).has_table("inferences"):
            # the service never ran against this store: an empty log, not a broken one
            return pd.DataFrame(columns=list(FRAME_COLUMNS))
        return store.read_frame(last_n=last_n, since=since, until=until)
    except sa.exc.SQLAlchemyError as exc:
        raise MonitorError(
            f"cannot read the inference log {redact_url(store_url)}: {redact_text(str(exc))}"
        ) from exc
    finally:
        store.close()


def read_log_window(
    config: MonitorConfig,
    store_url: str,
    champion_version: int,
    *,
    last_n: int | None,
    since: datetime | None,
    until: datetime | None,
) -> CurrentWindow:
    """The inference log's rows in [``since``, ``until``) or its newest ``last_n``.

    Without any bound, the newest ``[monitor] window_rows``. With
    ``[monitor] champion_rows_only``, rows scored by other versions are left
    out. Rows that break the contract are set aside and counted (rows are
    numbered from 1 in the window, oldest first; examples name the
    ``request_id`` too).

    Raises:
        MonitorError: the log cannot be read, or no row of the window was
            scored by the champion.
    """
    if since is None and until is None and last_n is None:
        last_n = config.window_rows
    current = read_window(store_url, last_n=last_n, since=since, until=until)
    window = describe_window(last_n, since, until)
    if config.champion_rows_only and not current.empty:
        current = champion_rows(current, champion_version, window)
    rows, quality = set_aside(current, window_violations(current))
    if "request_id" in current:
        ids = current["request_id"].astype(str).to_numpy()
        examples = [ex | {"request_id": ids[int(ex["row"]) - 1]} for ex in quality.examples]
        quality = replace(quality, examples=examples)
    return CurrentWindow(rows, window, quality)


def champion_rows(current: pd.DataFrame, champion_version: int, window: str) -> pd.DataFrame:
    """The rows of ``current`` scored by the champion.

    Raises:
        MonitorError: there are none.
    """
    versions = current["model_version"].value_counts().to_dict()
    rows = current.loc[current["model_version"] == champion_version].reset_index(drop=True)
    others = {int(str(k)): int(v) for k, v in versions.items() if int(str(k)) != champion_version}
    if rows.empty:
        raise MonitorError(
            f"the window ({window}) has no rows scored by champion v{champion_version} "
            f"(rows by version: {others}); send traffic first"
        )
    if others:
        log.info("monitor: left out rows scored by other versions %s", others)
    return rows


def describe_window(last_n: int | None, since: datetime | None, until: datetime | None) -> str:
    """How the window was chosen, for the reports and the log."""
    parts = []
    if since is not None:
        parts.append(f"since {since.isoformat()}")
    if until is not None:
        parts.append(f"until {until.isoformat()}")
    if last_n is not None:
        parts.append(f"last {last_n} rows")
    return "inference log, " + ", ".join(parts)
