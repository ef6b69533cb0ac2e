"""PD backtesting: predicted against observed bad rates by grade, once outcomes mature.

For one application month, the granted loans whose performance window has
closed (``application_at`` + ``performance_months`` <= the run's ``as_of``,
and an outcome posted by then) are put into PD grades: by default the deciles
of the reference PDs, or the explicit edges of a master scale. Per grade:

* the observed bad rate against the predicted one (the mean PD of its loans);
* the one-sided binomial test (H1: the true bad rate is above the predicted);
* the Jeffreys test the ECB asks for: ``Beta(bads + 1/2, n - bads + 1/2)``'s
  CDF at the predicted PD, the posterior probability that the PD is not
  underestimated; small = too many defaults;
* a traffic light on the Jeffreys p-value: red below ``backtest_red_p``
  (99.9 %), yellow below ``backtest_yellow_p`` (95 %), else green.

Over all tested grades, the Hosmer-Lemeshow statistic with as many degrees of
freedom as grades (the PDs were fitted on other data: nothing is estimated
here). Early defaults of loans still on the book are left out: a window of
only bads and no goods yet would overstate every bad rate.

Scores of this module come from scipy; no hand-rolled distribution code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from creditops import plots, schema
from creditops.config import MonitorConfig
from creditops.monitoring.table import MonitoringRow, MonthContext, Provider

KIND = "backtest"
LIGHTS = ("green", "yellow", "red")
SUMMARY = ("backtest:hosmer_lemeshow_p", "backtest:red_bands", "backtest:yellow_bands")


@dataclass(frozen=True)
class BandTest:
    """One PD grade's test, or why it has none.

    Attributes:
        band: the grade's name (``g01`` = the lowest PDs).
        pd_from: the lowest PD of the grade (0 for the first).
        pd_to: the PD the grade ends before (1 for the last).
        rows: matured loans in the grade.
        bads: of which bad.
        predicted: their mean PD, None without a test.
        binomial_p: the one-sided binomial test's p-value.
        jeffreys_p: the Jeffreys test's p-value.
        light: green, yellow or red.
        detail: why the grade has no test, else "".
    """

    band: str
    pd_from: float
    pd_to: float
    rows: int
    bads: int
    predicted: float | None = None
    binomial_p: float | None = None
    jeffreys_p: float | None = None
    light: str | None = None
    detail: str = ""

    @property
    def observed(self) -> float | None:
        """The observed bad rate, where the grade was tested."""
        return self.bads / self.rows if self.predicted is not None else None


@dataclass(frozen=True)
class Backtest:
    """Every grade of one month and the Hosmer-Lemeshow test over the tested ones.

    Attributes:
        bands: one entry per grade, lowest PDs first.
        hosmer_lemeshow: the statistic, None when no grade was tested.
        hosmer_lemeshow_p: its p-value (chi-squared with one degree per grade).
    """

    bands: tuple[BandTest, ...]
    hosmer_lemeshow: float | None
    hosmer_lemeshow_p: float | None

    def count(self, light: str) -> int:
        """How many tested grades show ``light``."""
        return sum(band.light == light for band in self.bands)

    @property
    def tested(self) -> int:
        """How many grades had enough matured loans for a test."""
        return sum(band.predicted is not None for band in self.bands)


def grade_edges(reference_scores: np.ndarray, bands: int) -> np.ndarray:
    """The inner edges of ``bands`` quantile grades of the reference PDs (repeats merged)."""
    scores = np.asarray(reference_scores, dtype=np.float64)
    scores = scores[np.isfinite(scores)]
    if scores.size == 0 or bands < 2:
        return np.array([], dtype=np.float64)
    return np.unique(np.quantile(scores, np.linspace(0, 1, bands + 1)[1:-1]))


def binomial_p(bads: int, rows: int, predicted: float) -> float:
    """One-sided binomial test: p-value of at least ``bads`` defaults at PD ``predicted``."""
    return float(stats.binomtest(bads, rows, predicted, alternative="greater").pvalue)


def jeffreys_p(bads: int, rows: int, predicted: float) -> float:
    """Jeffreys test: the CDF of ``Beta(bads + 1/2, rows - bads + 1/2)`` at ``predicted``."""
    return float(stats.beta.cdf(predicted, bads + 0.5, rows - bads + 0.5))


def traffic_light(p_value: float, yellow_p: float, red_p: float) -> str:
    """Red below ``red_p``, yellow below ``yellow_p``, else green."""
    if p_value < red_p:
        return "red"
    return "yellow" if p_value < yellow_p else "green"


def hosmer_lemeshow(
    bads: np.ndarray, rows: np.ndarray, expected: np.ndarray
) -> tuple[float, float]:
    """Hosmer-Lemeshow over grades: ``sum (O - E)^2 / (E (1 - E / n))``, chi2 with G dof.

    Args:
        bads: observed defaults per grade.
        rows: loans per grade.
        expected: expected defaults per grade (the sum of the PDs).

    Returns:
        The statistic and its p-value.
    """
    o = np.asarray(bads, dtype=np.float64)
    n = np.asarray(rows, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    variance = np.maximum(e * (1 - e / n), 1e-12)
    statistic = float(np.sum((o - e) ** 2 / variance))
    return statistic, float(stats.chi2.sf(statistic, df=o.size))


def _test_band(
    name: str, span: tuple[float, float], pds: np.ndarray, bad: np.ndarray, config: MonitorConfig
) -> BandTest:
    rows, bads = int(pds.size), int(bad.sum())
    if rows < config.backtest_min_band_rows:
        reason = f"{rows} rows < min {config.backtest_min_band_rows}"
        return BandTest(name, span[0], span[1], rows, bads, detail=reason)
    # a PD of exactly 0 or 1 is not a binomial parameter the tests accept
    predicted = float(np.clip(pds.mean(), 1e-9, 1 - 1e-9))
    jeffreys = jeffreys_p(bads, rows, predicted)
    return BandTest(
        name,
        span[0],
        span[1],
        rows,
        bads,
        predicted,
        binomial_p(bads, rows, predicted),
        jeffreys,
        traffic_light(jeffreys, config.backtest_yellow_p, config.backtest_red_p),
    )


def backtest(
    pds: np.ndarray, bad: np.ndarray, edges: np.ndarray, config: MonitorConfig
) -> Backtest:
    """Test every grade of matured loans and Hosmer-Lemeshow over the tested grades.

    Args:
        pds: the loans' PDs.
        bad: their outcomes (True = bad).
        edges: the grades' inner edges (a grade is ``[edge_k, edge_k+1)``).
        config: ``[monitor]`` (the minimum rows per grade, the light's levels).

    Returns:
        One :class:`BandTest` per grade and the Hosmer-Lemeshow test.
    """
    p = np.asarray(pds, dtype=np.float64)
    y = np.asarray(bad, dtype=bool)
    index = np.searchsorted(edges, p, side="right")
    bounds = np.concatenate([[0.0], edges, [1.0]])
    bands = tuple(
        _test_band(
            f"g{k + 1:02d}",
            (float(bounds[k]), float(bounds[k + 1])),
            p[index == k],
            y[index == k],
            config,
        )
        for k in range(edges.size + 1)
    )
    tested = [k for k, band in enumerate(bands) if band.predicted is not None]
    if not tested:
        return Backtest(bands, None, None)
    statistic, p_value = hosmer_lemeshow(
        np.array([bands[k].bads for k in tested]),
        np.array([bands[k].rows for k in tested]),
        np.array([p[index == k].sum() for k in tested]),
    )
    return Backtest(bands, statistic, p_value)


def matured_mask(frame: pd.DataFrame, ctx: MonthContext) -> np.ndarray:
    """Granted loans whose performance window closed by ``ctx.as_of``, outcome posted by then."""
    granted = frame["decision"] == "approve"
    known = frame["outcome"].isin([schema.POSITIVE_LABEL, schema.NEGATIVE_LABEL])
    applied = pd.to_datetime(frame["application_at"], utc=True)
    closed = applied + pd.DateOffset(months=ctx.performance_months) <= pd.Timestamp(ctx.as_of)
    mask = granted & known & closed
    if "observed_at" in frame.columns:
        observed = pd.to_datetime(frame["observed_at"], utc=True)
        mask &= observed.isna() | (observed <= pd.Timestamp(ctx.as_of))
    return mask.to_numpy(dtype=bool)


def _edges(ctx: MonthContext, config: MonitorConfig) -> np.ndarray | None:
    if config.backtest_edges:
        return np.asarray(config.backtest_edges, dtype=np.float64)
    if ctx.reference_scores is None:
        return None
    return grade_edges(ctx.reference_scores, config.backtest_bands)


def _band_row(ctx: MonthContext, band: BandTest) -> MonitoringRow:
    metric = f"backtest:{band.band}"
    span = {"pd_from": round(band.pd_from, 6), "pd_to": round(band.pd_to, 6)}
    if band.predicted is None:
        detail = json.dumps({"reason": band.detail, "rows": band.rows, "bads": band.bads} | span)
        return MonitoringRow(
            ctx.month, ctx.model_version, metric, KIND, None, None, None, band.rows, detail
        )
    interval = stats.beta(band.bads + 0.5, band.rows - band.bads + 0.5)
    extras = {
        "predicted": band.predicted,
        "rows": band.rows,
        "bads": band.bads,
        "binomial_p": band.binomial_p,
        "jeffreys_p": band.jeffreys_p,
        "light": band.light,
    }
    return MonitoringRow(
        ctx.month,
        ctx.model_version,
        metric,
        KIND,
        band.observed,
        float(interval.ppf(0.025)),
        float(interval.ppf(0.975)),
        band.rows,
        json.dumps(extras | span),
    )


def backtest_rows(
    frame: pd.DataFrame, ctx: MonthContext, *, config: MonitorConfig | None = None
) -> list[MonitoringRow]:
    """The month provider: ``backtest:*`` rows (kind ``backtest``) of one (month, version).

    Args:
        frame: the month's log rows (``probability``, ``decision``, ``outcome``,
            ``application_at``, ``observed_at``).
        ctx: the month's context (``as_of``, ``performance_months``, reference PDs).
        config: ``[monitor]``'s backtest keys (default: their defaults).

    Returns:
        One row per grade (value = observed bad rate, the Jeffreys 95 % interval
        as lower/upper, the tests in ``detail``), ``backtest:hosmer_lemeshow_p``,
        ``backtest:red_bands`` and ``backtest:yellow_bands``; a figure that
        cannot be computed has value None and the reason.
    """
    settings = config or MonitorConfig()
    edges = _edges(ctx, settings)
    mask = matured_mask(frame, ctx)
    matured = int(mask.sum())
    if edges is None:
        reason = "no reference PDs to grade by (and no [monitor] backtest_edges)"
        return _summary_rows(ctx, matured, (None, None, None), reason)
    pds = frame["probability"].to_numpy(dtype=np.float64)[mask]
    bad = (frame["outcome"].to_numpy() == schema.POSITIVE_LABEL)[mask]
    result = backtest(pds, bad, edges, settings)
    rows = [_band_row(ctx, band) for band in result.bands]
    if result.hosmer_lemeshow_p is None:
        reason = (
            f"no grade has {settings.backtest_min_band_rows} matured outcomes "
            f"({matured} matured rows; a loan matures {ctx.performance_months} months "
            "after its application)"
        )
        return rows + _summary_rows(ctx, matured, (None, None, None), reason)
    values = (
        result.hosmer_lemeshow_p,
        float(result.count("red")),
        float(result.count("yellow")),
    )
    extras = json.dumps({"tested_bands": result.tested, "statistic": result.hosmer_lemeshow})
    return rows + _summary_rows(ctx, matured, values, extras)


def _summary_rows(
    ctx: MonthContext, matured: int, values: tuple[float | None, ...], detail: str
) -> list[MonitoringRow]:
    """``backtest:hosmer_lemeshow_p``, ``backtest:red_bands`` and ``backtest:yellow_bands``."""
    return [
        MonitoringRow(
            ctx.month, ctx.model_version, metric, KIND, value, rows=matured, detail=detail
        )
        for metric, value in zip(SUMMARY, values, strict=True)
    ]


def configured(providers: Sequence[Provider], config: MonitorConfig) -> tuple[Provider, ...]:
    """``providers`` with :func:`backtest_rows` reading ``config``'s backtest keys."""
    return tuple(
        partial(backtest_rows, config=config) if provider is backtest_rows else provider
        for provider in providers
    )


def backtest_table(rows: Sequence[MonitoringRow]) -> pd.DataFrame:
    """The tested grades of ``rows``: one line per (month, version, grade), for people.

    Returns:
        Columns month, model_version, band, pd_from, pd_to, rows, bads,
        predicted, observed, binomial_p, jeffreys_p, light; oldest month first.
    """
    columns = ["month", "model_version", "band", "pd_from", "pd_to", "rows", "bads"]
    columns += ["predicted", "observed", "binomial_p", "jeffreys_p", "light"]
    lines = []
    for row in rows:
        if row.kind != KIND or row.value is None or row.metric in SUMMARY:
            continue
        extras = json.loads(row.detail)
        band = row.metric.removeprefix("backtest:")
        lines.append(
            [row.month, row.model_version, band]
            + [extras.get(name) for name in ("pd_from", "pd_to", "rows", "bads", "predicted")]
            + [row.value]
            + [extras.get(name) for name in ("binomial_p", "jeffreys_p", "light")]
        )
    return pd.DataFrame(lines, columns=columns).sort_values(["month", "model_version", "band"])


def backtest_png(rows: Sequence[MonitoringRow], path: Path) -> Path | None:
    """Predicted against observed by grade for the latest (month, version) with a tested grade.

    Returns:
        The PNG written, or None when no month has a tested grade yet.
    """
    table = backtest_table(rows)
    if table.empty:
        return None
    month, version = table.iloc[-1]["month"], table.iloc[-1]["model_version"]
    latest = table[(table["month"] == month) & (table["model_version"] == version)]
    observed = latest["observed"].to_numpy(dtype=np.float64)
    path.parent.mkdir(parents=True, exist_ok=True)
    interval = stats.beta(latest["bads"] + 0.5, latest["rows"] - latest["bads"] + 0.5)
    return plots.backtest_png(
        list(latest["band"]),
        latest["predicted"].to_numpy(dtype=np.float64),
        observed,
        (interval.ppf(0.025), interval.ppf(0.975)),
        list(latest["light"]),
        path,
        f"PD backtest, applications of {month} (v{version})",
    )
