"""Monitoring by application month (vintage): pure figures, no I/O.

The inference log is cut by application month (``application_at``; rows logged
before that column existed use ``created_at``) and model version. For each
(month, version) every :data:`PROVIDERS` entry turns the month's rows and a
:class:`~creditops.monitoring.table.MonthContext` into rows of the monitoring
table:

* volume: applications, approval rate, and the share of the month's granted
  loans (decision ``approve``, explored ones included) whose outcome is known
  by ``as_of`` (matured: posted by then);
* drift: the PSI of every feature and of the score against the champion's
  training reference, and the share of features whose distribution differs
  (two-sample Kolmogorov-Smirnov for numbers, chi-square for categories,
  p < 0.05: the tests Evidently picks for small samples);
* realised: bad rate, ROC AUC and KS of the matured outcomes, when there are at
  least ``min_rows`` of them (else the row holds None and says how many there were);
* vintage: ``vintage:mob<k>``, the cumulative bad rate ``k`` months on book,
  bads seen by then over the month's granted loans, for every ``k`` the month
  has reached (at most ``performance_months``).
* estimated: the label-free ``est_*`` figures (:mod:`creditops.monitoring.estimate`);
* backtest: predicted against observed bad rate by PD grade, once loans mature
  (:mod:`creditops.monitoring.backtest`).

A provider that raises fails the whole computation, named: nothing is written
from a run whose figures are incomplete.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from creditops import evaluate, schema
from creditops.errors import MonitorError
from creditops.monitoring.backtest import backtest_rows
from creditops.monitoring.estimate import estimate_rows
from creditops.monitoring.fairness_rows import fairness_rows
from creditops.monitoring.psi import feature_psi, psi_numeric
from creditops.monitoring.table import MonitoringRow, MonthContext, Provider

GRANTED = "approve"
DRIFT_P_VALUE = 0.05

# --- the month of each row, and when its outcome was seen ------------------------------


def application_times(frame: pd.DataFrame) -> pd.Series:
    """Each row's application timestamp (UTC): ``application_at``, else ``created_at``."""
    created = _utc_series(frame["created_at"])
    if "application_at" not in frame:
        return created
    return _utc_series(frame["application_at"]).fillna(created)


def observed_times(frame: pd.DataFrame) -> pd.Series:
    """When each row's outcome was observed (UTC); NaT for rows without one.

    Rows logged before ``observed_at`` existed got their outcome right after
    scoring: their application time stands in.
    """
    applied = application_times(frame)
    observed = (
        _utc_series(frame["observed_at"])
        if "observed_at" in frame
        else pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    )
    if "outcome" not in frame:
        return observed
    return observed.fillna(applied.where(frame["outcome"].notna()))


def month_labels(times: pd.Series) -> pd.Series:
    """``YYYY-MM`` of each timestamp."""
    labels: pd.Series = times.dt.strftime("%Y-%m")
    return labels


def _utc_series(values: pd.Series) -> pd.Series:
    times: pd.Series = pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]")
    return times


def month_index(month: str) -> int:
    """Months since year 0 of a ``YYYY-MM`` label (consecutive months differ by 1)."""
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


def month_label(index: int) -> str:
    """The ``YYYY-MM`` label of :func:`month_index` ``index``."""
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def month_is_mature(month: str, as_of: datetime, performance_months: int) -> bool:
    """Whether ``as_of`` is at least ``performance_months`` after the month's end."""
    closes = month_index(month) + 1 + performance_months
    return as_of >= datetime(closes // 12, closes % 12 + 1, 1, tzinfo=UTC)


def _granted(frame: pd.DataFrame) -> pd.Series:
    return frame["decision"] == GRANTED


def _matured(frame: pd.DataFrame, as_of: datetime) -> pd.Series:
    """Granted rows whose outcome was posted by ``as_of``."""
    observed = observed_times(frame)
    return _granted(frame) & frame["outcome"].notna() & (observed <= pd.Timestamp(as_of))


def _row(
    ctx: MonthContext,
    metric: str,
    kind: str,
    value: float | None,
    *,
    rows: int | None = None,
    detail: str = "",
) -> MonitoringRow:
    """A row of ``ctx``'s month and version; a NaN value becomes None."""
    if value is not None and not math.isfinite(value):
        value = None
    return MonitoringRow(
        ctx.month, ctx.model_version, metric, kind, value, rows=rows, detail=detail
    )


# --- the providers ------------------------------------------------------------------------


def volume_rows(frame: pd.DataFrame, ctx: MonthContext) -> list[MonitoringRow]:
    """Volume, approval rate, and the matured share of the month's granted loans."""
    granted = int(_granted(frame).sum())
    matured = int(_matured(frame, ctx.as_of).sum())
    explored = int(frame["explored"].fillna(False).astype(bool).sum()) if "explored" in frame else 0
    extras = json.dumps(
        {
            "granted": granted,
            "matured": matured,
            "explored": explored,
            "month_mature": month_is_mature(ctx.month, ctx.as_of, ctx.performance_months),
        }
    )
    volume = len(frame)
    return [
        _row(ctx, "volume", "volume", float(volume), rows=volume),
        _row(ctx, "approval_rate", "volume", granted / volume if volume else None, rows=volume),
        _row(
            ctx,
            "matured_share",
            "volume",
            matured / granted if granted else None,
            rows=granted,
            detail=extras if granted else "no granted loans",
        ),
        _row(ctx, "matured_rows", "volume", float(matured), rows=granted),
    ]


def drift_rows(frame: pd.DataFrame, ctx: MonthContext) -> list[MonitoringRow]:
    """PSI of every feature and of the score, and the share of drifted features."""
    metrics = [f"psi:{name}" for name in schema.FEATURES] + ["psi:score", "drift_share"]
    rows = len(frame)
    if rows < ctx.min_drift_rows:
        why = f"{rows} rows < min {ctx.min_drift_rows}"
        return [_row(ctx, metric, "drift", None, rows=rows, detail=why) for metric in metrics]
    out = [
        _row(ctx, f"psi:{name}", "drift", value, rows=rows)
        for name, value in feature_psi(ctx.reference, frame, ctx.psi_bins).items()
    ]
    if ctx.reference_scores is None or frame["probability"].isna().all():
        out.append(_row(ctx, "psi:score", "drift", None, rows=rows, detail="no reference scores"))
    else:
        score_psi = psi_numeric(
            np.asarray(ctx.reference_scores, dtype=np.float64),
            frame["probability"].to_numpy(dtype=np.float64),
            ctx.psi_bins,
        )
        out.append(_row(ctx, "psi:score", "drift", score_psi, rows=rows))
    drifted = drifted_features(ctx.reference, frame)
    share = len(drifted) / len(schema.FEATURES)
    detail = json.dumps({"drifted": drifted, "test": "KS / chi-square, p < 0.05"})
    out.append(_row(ctx, "drift_share", "drift", share, rows=rows, detail=detail))
    return out


def drifted_features(reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    """The features whose current distribution differs from the reference's (p < 0.05)."""
    from scipy import stats

    drifted = []
    for name in schema.FEATURES:
        if name in schema.CATEGORICAL:
            ref = reference[name].astype("object").fillna("<missing>").astype(str)
            cur = current[name].astype("object").fillna("<missing>").astype(str)
            counts = pd.concat([ref.value_counts(), cur.value_counts()], axis=1).fillna(0)
            if counts.shape[0] < 2:
                continue  # one level everywhere: nothing to differ
            p_value = float(stats.chi2_contingency(counts.to_numpy()).pvalue)
        else:
            ref_values = reference[name].dropna().to_numpy(dtype=np.float64)
            cur_values = current[name].dropna().to_numpy(dtype=np.float64)
            if ref_values.size == 0 or cur_values.size == 0:
                continue
            p_value = float(stats.ks_2samp(ref_values, cur_values).pvalue)
        if p_value < DRIFT_P_VALUE:
            drifted.append(name)
    return drifted


def realised_rows(frame: pd.DataFrame, ctx: MonthContext) -> list[MonitoringRow]:
    """Bad rate, ROC AUC and KS of the matured outcomes, or why not."""
    matured = frame.loc[_matured(frame, ctx.as_of)]
    count = len(matured)
    metrics = ("bad_rate", "roc_auc", "ks")
    if count < ctx.min_rows:
        why = f"{count} rows < min {ctx.min_rows}"
        return [_row(ctx, metric, "realised", None, rows=count, detail=why) for metric in metrics]
    y = (matured["outcome"] == schema.POSITIVE_LABEL).to_numpy(dtype=np.int64)
    scores = matured["probability"].to_numpy(dtype=np.float64)
    bads = int(y.sum())
    mature = month_is_mature(ctx.month, ctx.as_of, ctx.performance_months)
    extras = json.dumps({"bads": bads, "month_mature": mature})
    out = [_row(ctx, "bad_rate", "realised", bads / count, rows=count, detail=extras)]
    if bads in (0, count):
        why = f"matured outcomes hold one class only ({bads} bad of {count})"
        out += [_row(ctx, m, "realised", None, rows=count, detail=why) for m in ("roc_auc", "ks")]
        return out
    out.append(_row(ctx, "roc_auc", "realised", evaluate.roc_auc(y, scores), rows=count))
    out.append(_row(ctx, "ks", "realised", evaluate.ks_statistic(y, scores), rows=count))
    return out


def vintage_rows(frame: pd.DataFrame, ctx: MonthContext) -> list[MonitoringRow]:
    """``vintage:mob<k>``: bads seen within ``k`` months on book over the granted loans."""
    reached = ctx.as_of.year * 12 + ctx.as_of.month - 1
    top = min(ctx.performance_months, reached - month_index(ctx.month))
    if top < 1:
        return []
    granted = frame.loc[_granted(frame)]
    count = len(granted)
    if count == 0:
        return [
            _row(ctx, f"vintage:mob{k}", "vintage", None, rows=0, detail="no granted loans")
            for k in range(1, top + 1)
        ]
    observed = observed_times(granted)
    seen_bad = (
        (granted["outcome"] == schema.POSITIVE_LABEL) & (observed <= pd.Timestamp(ctx.as_of))
    ).to_numpy()
    on_book = np.full(count, np.iinfo(np.int64).max)
    months = month_labels(observed[seen_bad]).map(month_index).to_numpy(dtype=np.int64)
    on_book[seen_bad] = months - month_index(ctx.month)
    return [
        _row(ctx, f"vintage:mob{k}", "vintage", float(np.sum(on_book <= k)) / count, rows=count)
        for k in range(1, top + 1)
    ]


PROVIDERS: tuple[Provider, ...] = (
    volume_rows,
    drift_rows,
    realised_rows,
    vintage_rows,
    estimate_rows,
    backtest_rows,
    fairness_rows,
)


# --- every (month, version) ----------------------------------------------------------------


def month_frames(log: pd.DataFrame) -> list[tuple[str, int, pd.DataFrame]]:
    """The log cut by application month and model version, in order."""
    months = month_labels(application_times(log))
    out = []
    for key, frame in log.groupby([months, log["model_version"]], sort=True):
        month, version = key
        out.append((str(month), int(str(version)), frame.reset_index(drop=True)))
    return out


def compute_rows(
    log: pd.DataFrame,
    context_for: Callable[[str, int], MonthContext],
    providers: Sequence[Provider] = PROVIDERS,
) -> list[MonitoringRow]:
    """Every provider's rows for every (month, version) of ``log``.

    Args:
        log: inference log rows (the columns of the log's frame).
        context_for: the context of a (month, version).
        providers: the month providers to run, in order.

    Raises:
        MonitorError: a provider raised, returned a row of another month or
            version, or named a metric another provider already wrote.
    """
    rows: list[MonitoringRow] = []
    for month, version, frame in month_frames(log):
        ctx = context_for(month, version)
        owners: dict[str, str] = {}
        for provider in providers:
            name = getattr(provider, "__qualname__", repr(provider))
            try:
                produced = provider(frame, ctx)
            except Exception as exc:  # a provider's bug, named, fails the run
                raise MonitorError(
                    f"monitoring provider {name} failed on {month} v{version}: "
                    f"{type(exc).__name__}: {exc}; nothing written"
                ) from exc
            for row in produced:
                if (row.month, row.model_version) != (month, version):
                    raise MonitorError(
                        f"monitoring provider {name} returned a row of {row.month} "
                        f"v{row.model_version} for {month} v{version}; nothing written"
                    )
                if row.metric in owners:
                    raise MonitorError(
                        f"monitoring providers {owners[row.metric]} and {name} both write "
                        f"{row.metric!r} for {month} v{version}; nothing written"
                    )
                owners[row.metric] = name
            rows.extend(produced)
    return rows


def gap_months(months: Sequence[str]) -> list[str]:
    """The months between the first and last of ``months`` that are not among them."""
    if not months:
        return []
    indexes = {month_index(m) for m in months}
    return [month_label(i) for i in range(min(indexes), max(indexes) + 1) if i not in indexes]
