"""What the monitoring table says about each application month of a model version, pure.

:func:`months_evidence` turns the table's rows (:func:`creditops.monitoring.table.read_table`)
into one :class:`MonthEvidence` per month with traffic: volume, maturity, the
realised, estimated, drift and backtest figures the trigger's monthly rules
(:mod:`creditops.retraining.months`) judge.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pandas as pd

from creditops.config import CheckConfig


@dataclass(frozen=True)
class MonthEvidence:
    """What the table says about one application month of the champion.

    Attributes:
        month: ``YYYY-MM``.
        volume: applications scored that month.
        matured_share: the share of its granted loans whose outcome matured.
        matured_rows: how many matured outcomes it has.
        roc_auc: the realised ROC AUC on them (``None``: too few, or none).
        roc_auc_rows: the rows behind ``roc_auc``.
        est_roc_auc: the label-free estimate, with its band.
        max_psi: the largest PSI (features and score), and its column.
        drift_share: the share of drifted features.
        red_bands, yellow_bands: the PD backtest's traffic lights.
    """

    month: str
    volume: int
    matured_share: float | None = None
    matured_rows: int | None = None
    roc_auc: float | None = None
    roc_auc_rows: int | None = None
    bad_rate: float | None = None
    est_roc_auc: float | None = None
    est_roc_auc_lower: float | None = None
    est_roc_auc_upper: float | None = None
    max_psi: float | None = None
    max_psi_column: str | None = None
    drift_share: float | None = None
    red_bands: int | None = None
    yellow_bands: int | None = None
    # the month's performance window has closed: its realised figures are final
    # (before, its posted outcomes are early defaults only, a biased sample)
    mature: bool = False
    # the vintage curve: (months on book k, cumulative bad share of granted loans) and
    # how many granted loans it is of
    vintage: tuple[tuple[int, float], ...] = ()
    granted: int = 0

    @property
    def evidence(self) -> str:
        """``realised`` (matured outcomes judged), ``estimated`` (label-free only) or ``drift``."""
        if self.mature and self.roc_auc is not None:
            return "realised"
        return "estimated" if self.est_roc_auc is not None else "drift"


def _number(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]
    return number if math.isfinite(number) else None


def _count(value: object) -> int | None:
    number = _number(value)
    return None if number is None else int(number)


def _month_mature(by_metric: pd.DataFrame) -> bool:
    """The ``month_mature`` flag the monitor wrote in the volume row's details."""
    for metric in ("matured_share", "bad_rate"):
        if metric in by_metric.index:
            try:
                extras = json.loads(str(by_metric.loc[metric, "detail"]))
            except ValueError:
                continue
            if isinstance(extras, dict) and "month_mature" in extras:
                return bool(extras["month_mature"])
    return False


def _one_month(month: str, rows: pd.DataFrame) -> MonthEvidence:
    by_metric = rows.set_index("metric")
    value: dict[str, object] = {str(m): v for m, v in by_metric["value"].items()}
    psi = {m[4:]: _number(v) for m, v in value.items() if m.startswith("psi:")}
    psi_known = {k: v for k, v in psi.items() if v is not None}
    worst = max(psi_known.items(), key=lambda kv: kv[1]) if psi_known else None
    est = by_metric.loc["est_roc_auc"] if "est_roc_auc" in by_metric.index else None
    auc_rows = by_metric["rows"].get("roc_auc")
    curve = sorted(
        (int(m[len("vintage:mob") :]), _number(v) or 0.0)
        for m, v in value.items()
        if m.startswith("vintage:mob") and _number(v) is not None
    )
    curve_rows = [
        _count(n) for m, n in by_metric["rows"].items() if str(m).startswith("vintage:mob")
    ]
    granted = max((n for n in curve_rows if n is not None), default=0)
    return MonthEvidence(
        vintage=tuple(curve),
        granted=granted,
        mature=_month_mature(by_metric),
        month=month,
        volume=_count(value.get("volume")) or 0,
        matured_share=_number(value.get("matured_share")),
        matured_rows=_count(value.get("matured_rows")),
        roc_auc=_number(value.get("roc_auc")),
        roc_auc_rows=_count(auc_rows),
        bad_rate=_number(value.get("bad_rate")),
        est_roc_auc=_number(est["value"]) if est is not None else None,
        est_roc_auc_lower=_number(est["lower"]) if est is not None else None,
        est_roc_auc_upper=_number(est["upper"]) if est is not None else None,
        max_psi=worst[1] if worst else None,
        max_psi_column=worst[0] if worst else None,
        drift_share=_number(value.get("drift_share")),
        red_bands=_count(value.get("backtest:red_bands")),
        yellow_bands=_count(value.get("backtest:yellow_bands")),
    )


def months_evidence(table: pd.DataFrame, model_version: int) -> list[MonthEvidence]:
    """The months of ``model_version`` in the monitoring ``table`` with traffic, oldest first."""
    if table.empty:
        return []
    mine = table.loc[table["model_version"] == model_version]
    months = [_one_month(str(m), rows) for m, rows in mine.groupby("month", sort=True)]
    return [m for m in months if m.volume > 0]


def look_back(months: list[MonthEvidence], config: CheckConfig) -> list[MonthEvidence]:
    """The newest ``[check] months`` months with traffic."""
    return months[-config.months :]
