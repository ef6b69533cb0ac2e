"""``creditops compare``: champion against the shadowed challenger, on the same applicants.

Reads the champion's rows of the inference log and the challenger's rows of
the shadow log (:mod:`creditops.serving.shadow_log`), joined by request id,
over a range of application months; computes :mod:`~creditops.comparison.figures`;
writes them as JSON and HTML under ``[monitor] reports_dir``/compare and logs
them as an MLflow run.

Refused, with the reason: a challenger without a calibrator (its scores are
not PDs, so neither the champion's cut-off nor the estimates apply to them),
two versions trained on different applicant contracts, no shadow rows.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from creditops import registry, schema
from creditops.calibration import CALIBRATION_TAG
from creditops.comparison.figures import Comparison, compare
from creditops.errors import MonitorError
from creditops.records import json_safe
from creditops.registry import ModelRef
from creditops.serving.shadow_log import read_shadow
from creditops.serving.store import InferenceStore
from creditops.tracking import TrackingClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComparisonReport:
    """A comparison and where it was written."""

    comparison: Comparison
    json_path: Path
    html_path: Path
    run_id: str


def _tags(client: TrackingClient, ref: ModelRef) -> dict[str, str]:
    return dict(client.get_model_version(ref.name, str(ref.version)).tags)


def check_comparable(client: TrackingClient, champion: ModelRef, challenger: ModelRef) -> None:
    """Refuse a pair whose scores cannot be set side by side, naming why."""
    if champion.version == challenger.version:
        raise MonitorError(f"champion and challenger are the same version ({champion.version})")
    tags = {ref.version: _tags(client, ref) for ref in (champion, challenger)}
    for ref in (champion, challenger):
        method = tags[ref.version].get(CALIBRATION_TAG, "")
        if method in ("", "none"):
            raise MonitorError(
                f"{ref.label} has no calibrator (tag {CALIBRATION_TAG}={method or 'absent'}): "
                "its scores are not PDs, so they cannot be compared at the same cut-off; "
                "retrain it with [train] calibration on"
            )
    contracts = {v: t.get(schema.CONTRACT_TAG, "") for v, t in tags.items()}
    if (
        not contracts[challenger.version]
        or contracts[challenger.version] != contracts[champion.version]
    ):
        raise MonitorError(
            f"{challenger.label} was trained on contract {contracts[challenger.version] or 'unknown'}"
            f", the champion on {contracts[champion.version] or 'unknown'}: they do not score the "
            "same applicants"
        )


def joined_rows(
    store_url: str, champion: ModelRef, challenger: ModelRef, months: tuple[str, str] | None
) -> pd.DataFrame:
    """The champion's logged rows that the challenger shadow-scored, in the months asked."""
    shadow = read_shadow(store_url, challenger.version)
    if shadow.empty:
        raise MonitorError(
            f"no shadow rows of {challenger.label}: serve with [serve] shadow = true while it "
            "holds the challenger alias"
        )
    store = InferenceStore(store_url)
    try:
        store.create()  # a store never written to reads as empty, not as an error
        log_rows = store.read_frame()
    finally:
        store.close()
    log_rows = log_rows[log_rows["model_version"] == champion.version]
    stamp = log_rows["application_at"] if "application_at" in log_rows else log_rows["created_at"]
    log_rows = log_rows.assign(
        month=pd.to_datetime(stamp, utc=True).dt.strftime("%Y-%m"),
        champion_version=log_rows["model_version"],
        champion_pd=log_rows["probability"],
        # the model's own decision: an explored decline ([serve] explore_share) was
        # granted by policy, not by the champion
        champion_decision=np.where(
            log_rows["probability"] < log_rows["threshold"], "approve", "decline"
        ),
        champion_threshold=log_rows["threshold"],
    )
    shadow = shadow.rename(
        columns={
            "model_version": "challenger_version",
            "probability": "challenger_pd",
            "decision": "challenger_decision",
            "threshold": "challenger_threshold",
        }
    )[
        [
            "request_id",
            "challenger_version",
            "challenger_pd",
            "challenger_decision",
            "challenger_threshold",
        ]
    ]
    joined = log_rows.merge(shadow, on="request_id", how="inner")
    if months is not None:
        joined = joined[(joined["month"] >= months[0]) & (joined["month"] <= months[1])]
    if joined.empty:
        where = f" in {months[0]}..{months[1]}" if months else ""
        raise MonitorError(
            f"no applicant{where} was scored by both v{champion.version} and v{challenger.version}"
        )
    return joined.reset_index(drop=True)


def run_compare(
    client: TrackingClient,
    model_name: str,
    *,
    store_url: str,
    reports_dir: Path,
    min_rows: int,
    psi_bins: int = 10,
    months: tuple[str, str] | None = None,
) -> ComparisonReport:
    """Compare the ``champion`` and ``challenger`` aliases on their shared applicants.

    Raises:
        MonitorError: the pair is not comparable, or nothing was shadow-scored.
        RegistryError: an alias is not set, or the registry fails.
    """
    champion = registry.resolve_alias(client, model_name, registry.CHAMPION)
    challenger = registry.resolve_alias(client, model_name, registry.CHALLENGER)
    check_comparable(client, champion, challenger)
    comparison = compare(
        joined_rows(store_url, champion, challenger, months), min_rows=min_rows, psi_bins=psi_bins
    )
    folder = reports_dir / "compare"
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"v{comparison.challenger_version}-vs-v{comparison.champion_version}"
    data = json_safe(comparison.as_dict())
    json_path = folder / f"{stem}.json"
    json_path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    html_path = folder / f"{stem}.html"
    html_path.write_text(comparison_html(comparison), encoding="utf-8")
    run_id = _log_run(client, comparison, json_path, html_path)
    log.info("compare: %s", comparison.headline)
    return ComparisonReport(comparison, json_path, html_path, run_id)


def comparison_metrics(comparison: Comparison) -> dict[str, float]:
    """The comparison's numbers as MLflow metrics (absent figures left out)."""
    served = comparison.swaps[0]
    metrics: dict[str, float] = {
        "rows": float(comparison.rows),
        "agreement": served.agreement,
        "swap_in": float(served.swap_in),
        "swap_out": float(served.swap_out),
        "score_psi": comparison.score_psi,
        "spearman": comparison.spearman,
    }
    for prefix, figures in (("realised", comparison.realised), ("estimated", comparison.estimated)):
        for who in ("champion", "challenger"):
            value = figures.get(f"{who}_roc_auc")
            if isinstance(value, float):
                metrics[f"{prefix}_{who}_roc_auc"] = value
    return metrics


def _log_run(client: TrackingClient, comparison: Comparison, *paths: Path) -> str:
    tags = {
        "creditops.stage": "compare",
        "champion_version": str(comparison.champion_version),
        "challenger_version": str(comparison.challenger_version),
    }
    with client.run("compare", tags=tags) as run_id:
        client.log_values(run_id, metrics=comparison_metrics(comparison))
        for path in paths:
            client.log_artifact(run_id, str(path), artifact_path="compare")
    return run_id


def comparison_html(comparison: Comparison) -> str:
    """The comparison as a small self-contained HTML page (tables only)."""
    rows = "".join(
        f"<tr><td>{html.escape(s.rule)}</td><td>{s.challenger_threshold:.4f}</td>"
        f"<td>{s.agreement:.1%}</td><td>{s.swap_in}</td><td>{s.swap_out}</td>"
        f"<td>{html.escape(_profile_text(s.swap_in_profile))}</td>"
        f"<td>{html.escape(_profile_text(s.swap_out_profile))}</td></tr>"
        for s in comparison.swaps
    )
    figures = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in (
            ("applicants", comparison.rows),
            ("months", ", ".join(comparison.months)),
            ("score PSI", f"{comparison.score_psi:.4f}"),
            ("Spearman rank correlation", f"{comparison.spearman:.4f}"),
            ("realised", json.dumps(json_safe(comparison.realised))),
            ("estimated", json.dumps(json_safe(comparison.estimated))),
        )
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>creditops compare'
        "</title></head><body>"
        f"<h1>{html.escape(comparison.headline)}</h1><table border=1>{figures}</table>"
        "<h2>Swap sets</h2><table border=1><tr><th>rule</th><th>challenger cut-off</th>"
        "<th>agreement</th><th>swap-in</th><th>swap-out</th><th>swap-in applicants</th>"
        f"<th>swap-out applicants</th></tr>{rows}</table></body></html>"
    )


def _profile_text(profile: dict[str, object]) -> str:
    if not profile.get("rows"):
        return "none"
    features = profile.get("features", {})
    parts = [
        f"{name} {info['mean']:.0f} (all {info['all_applicants_mean']:.0f})"
        for name, info in (features.items() if isinstance(features, dict) else [])
    ]
    return (
        f"{profile['rows']} applicants, mean PD champion {profile['mean_champion_pd']:.3f} / "
        f"challenger {profile['mean_challenger_pd']:.3f}; " + ", ".join(parts)
    )
