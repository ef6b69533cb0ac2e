"""The shadowed challenger's figures per application month, for the monitoring table.

For each (month, champion version) whose applicants a challenger also scored
(:mod:`creditops.serving.shadow_log`): the share of applicants on whose
decision the two agree, and the swap sets: ``shadow:swap_in`` (the challenger
would approve, the champion declined), ``shadow:swap_out`` (the reverse),
each at the challenger's own threshold. ``detail`` names the challenger
version(s). Rows of kind ``shadow``, keyed by the champion's version.
"""

from __future__ import annotations

import json

import pandas as pd

from creditops.monitoring.table import MonitoringRow
from creditops.monitoring.vintage import application_times, month_labels

KIND = "shadow"


def shadow_rows(log_frame: pd.DataFrame, shadow: pd.DataFrame) -> list[MonitoringRow]:
    """Agreement and swap counts per (month, champion version) of the shadow-scored rows.

    Args:
        log_frame: the inference log's rows (``request_id``, ``model_version``,
            ``decision``, ``application_at``/``created_at``).
        shadow: the shadow log (``request_id``, ``model_version``, ``decision``).
    """
    if shadow.empty or log_frame.empty:
        return []
    # the champion model's own decision: an explored decline was granted by policy
    explored = (
        log_frame["explored"].astype(object).fillna(False).astype(bool)
        if "explored" in log_frame
        else pd.Series(False, index=log_frame.index)
    )
    decision = log_frame["decision"].where(~explored, "decline")
    champion = log_frame.assign(
        month=month_labels(application_times(log_frame)), decision=decision
    )[["request_id", "month", "model_version", "decision"]]
    pairs = champion.merge(
        shadow[["request_id", "model_version", "decision"]].rename(
            columns={"model_version": "challenger_version", "decision": "challenger_decision"}
        ),
        on="request_id",
    )
    out: list[MonitoringRow] = []
    for (month, version), group in pairs.groupby(["month", "model_version"]):
        approved = group["decision"] == "approve"
        challenger = group["challenger_decision"] == "approve"
        detail = json.dumps(
            {"challenger_versions": sorted(int(v) for v in group["challenger_version"].unique())}
        )
        rows = len(group)
        for metric, value in (
            ("shadow:agreement", float((approved == challenger).mean())),
            ("shadow:swap_in", float((challenger & ~approved).sum())),
            ("shadow:swap_out", float((approved & ~challenger).sum())),
        ):
            out.append(
                MonitoringRow(
                    str(month), int(str(version)), metric, KIND, value, rows=rows, detail=detail
                )
            )
    return out
