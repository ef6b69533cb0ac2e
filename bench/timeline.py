"""How fast the trigger notices what goes wrong, on the simulated credit calendar.

For each scenario (none, covariate, concept, downturn) and each seed, a
24-month calendar of applications (``[simulate]``: 300 a month, the change
starting at month 8, a 12-month performance window) is scored in-process by
a small fixed champion (logistic regression, no search); only granted loans
get an outcome, a bad at its default month, a good when the window closes.
At the end of every month the monitoring table is rebuilt from what a lender
knows then (``creditops.monitoring.by_month.monthly_rows``: the same month
providers ``creditops monitor --by month`` runs) and the trigger's monthly
rules (``creditops.retraining.months``, ``[check]`` defaults) judge it.

Printed: per scenario ``scenario S: fired N/10, delay median M months
(range A-B)``, and on ``none`` ``false alarms: K/10`` (any month firing);
which rule fired first; and after ``concept``, the through-the-door ROC AUC
(ground truth: every applicant of months 13-24, declined ones included) of
the champion and of the model retrained at month 24 on the lender's rows,
with and without reject inference.

    .venv/bin/python bench/timeline.py            # 10 seeds (about 13 min on 2 busy cores)
    .venv/bin/python bench/timeline.py --seeds 1  # a quick look
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from creditops import evaluate, schema
from creditops.config import CheckConfig, DataConfig, MonitorConfig, SimulateConfig, ThresholdConfig
from creditops.data import Split, label_vector, load_dataset, split_dataset
from creditops.features import build_pipeline
from creditops.monitoring.by_month import Reference, monthly_rows
from creditops.monitoring.table import MonitoringRow, MonthContext
from creditops.monitoring.vintage import vintage_rows
from creditops.retraining.months import month_rules, months_evidence
from creditops.retraining.rows import build_retraining_split, production_data
from creditops.simulation.calendar import Calendar, build_calendar, month_start
from creditops.simulation.outcomes import observation_dates
from creditops.simulation.scenarios import ScenarioSource
from creditops.training.search import weight_params

SCENARIOS = ("none", "covariate", "concept", "downturn")
PARAMS = {"C": 0.5}
VERSION = 1


@dataclass(frozen=True)
class Champion:
    pipeline: Pipeline
    threshold: float
    reference: Reference
    training_auc: float
    granted_auc: float
    train: pd.DataFrame


def fit(train: pd.DataFrame, weights: np.ndarray | None = None) -> Pipeline:
    """The fixed small model (logistic regression, C 0.5), with sample weights if given."""
    pipeline = build_pipeline("logreg", PARAMS, seed=0)
    X = schema.coerce_features(train)
    pipeline.fit(X, label_vector(train[schema.TARGET]), **weight_params(pipeline, weights))
    return pipeline


def pd_of(pipeline: Pipeline, features: pd.DataFrame) -> np.ndarray:
    return np.asarray(pipeline.predict_proba(schema.coerce_features(features))[:, 1])


def make_champion(split: Split) -> Champion:
    pipeline = fit(split.train)
    threshold = evaluate.choose_threshold(
        split.y_train, pd_of(pipeline, split.train), ThresholdConfig()
    )
    scores = pd_of(pipeline, split.test)
    reference = Reference(split.train, scores, split.y_test, threshold)
    granted = scores < threshold
    return Champion(
        pipeline,
        threshold,
        reference,
        evaluate.roc_auc(split.y_test, scores),
        evaluate.roc_auc(split.y_test[granted], scores[granted]),
        split.train,
    )


def scored_log(calendar: Calendar, champion: Champion, config: SimulateConfig) -> pd.DataFrame:
    """The whole calendar as the inference log would hold it, with each outcome's posting date."""
    probability = pd_of(champion.pipeline, calendar.features)
    assert calendar.outcomes is not None
    log = calendar.features.copy()
    log["probability"] = probability
    log["threshold"] = champion.threshold
    log["decision"] = np.where(probability >= champion.threshold, "decline", "approve")
    log["model_version"] = VERSION
    log["explored"] = False
    log["application_at"] = calendar.application_at.to_numpy()
    log["created_at"] = log["application_at"]
    log["month"] = calendar.month
    log["true_bad"] = calendar.outcomes
    log["observed_at"] = observation_dates(
        calendar.application_at,
        calendar.outcomes,
        calendar.default_month,
        config.performance_months,
    ).to_numpy()
    return log


def as_known(log: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """What a lender knows at ``as_of``: applications so far, outcomes of granted loans posted."""
    now = log.loc[log["application_at"] <= pd.Timestamp(as_of)].copy()
    posted = (now["decision"] == "approve") & (now["observed_at"] <= pd.Timestamp(as_of))
    now["outcome"] = np.where(
        posted, np.where(now["true_bad"] == 1, schema.POSITIVE_LABEL, schema.NEGATIVE_LABEL), None
    )
    now["observed_at"] = now["observed_at"].where(posted)
    return now.drop(columns=["month", "true_bad"])


def month_table(
    log: pd.DataFrame, champion: Champion, monitor: MonitorConfig, start: datetime, months: int
) -> dict[tuple[int, str], list[MonitoringRow]]:
    """Every month's rows as computed when it ends ("now") and when its window closed ("closed")."""
    out: dict[tuple[int, str], list[MonitoringRow]] = {}
    for k in range(1, months + 1):
        month_rows = log.loc[log["month"] == k]
        for when, as_of in (("now", month_start(start, k)), ("closed", month_start(start, k + 12))):
            if when == "closed" and k + 12 > months:
                continue
            rows, _ = monthly_rows(as_known(month_rows, as_of), champion.reference, monitor, as_of)
            out[(k, when)] = rows
        # an open vintage's curve grows every month: recomputed as of each later month's end
        for m in range(k + 1, min(k + 12, months + 1)):
            as_of = month_start(start, m)
            ctx = MonthContext(
                month=as_of_month(start, k),
                model_version=VERSION,
                as_of=as_of,
                threshold=champion.threshold,
                reference=champion.reference.rows,
                reference_scores=champion.reference.scores,
                performance_months=monitor.performance_months,
                min_rows=monitor.min_matured_rows,
            )
            curve = vintage_rows(as_known(month_rows, as_of), ctx)
            out[(k, f"curve{m}")] = [
                r for r in out[(k, "now")] if not r.metric.startswith("vintage:")
            ] + curve
    return out


def as_of_month(start: datetime, k: int) -> str:
    """``YYYY-MM`` of the calendar's month ``k`` (1-based)."""
    return month_start(start, k - 1).strftime("%Y-%m")


def rows_as_of(k: int, m: int) -> str:
    """Which of month ``k``'s row sets a lender has at the end of month ``m``."""
    if k + 12 <= m:
        return "closed"
    return "now" if k == m else f"curve{m}"


def first_fire(
    table: dict[tuple[int, str], list[MonitoringRow]],
    champion: Champion,
    check: CheckConfig,
    months: int,
) -> tuple[int | None, list[str]]:
    """The first month at whose end a rule fired, and which rules did."""
    for m in range(1, months + 1):
        rows = [row for k in range(1, m + 1) for row in table[(k, rows_as_of(k, m))]]
        frame = pd.DataFrame([row.__dict__ for row in rows])
        frame["value"] = frame["value"].astype(object).where(frame["value"].notna(), None)
        results = month_rules(
            months_evidence(frame, VERSION), check, champion.training_auc, champion.granted_auc
        )
        fired = [r.rule for r in results if r.fired]
        if fired:
            return m, fired
    return None, []


def retrained_auc(
    log: pd.DataFrame, champion: Champion, start: datetime, months: int, reject: bool
) -> float:
    """Through-the-door ROC AUC on months 13.. of the model retrained at the calendar's end."""
    as_of = month_start(start, months)
    data = production_data(as_known(log, as_of), as_of=as_of, performance_months=12)
    split = build_retraining_split(
        champion.train, data.rows, 0.3, declined=data.declined if reject else None
    )
    model = fit(split.train, split.weights)
    later = log.loc[log["month"] > 12]
    return evaluate.roc_auc(later["true_bad"].to_numpy(), pd_of(model, later))


def summary_line(scenario: str, fired: list[int | None], drift_month: int) -> str:
    delays = [m - drift_month for m in fired if m is not None]
    line = f"scenario {scenario}: fired {len(delays)}/{len(fired)}"
    if delays:
        line += (
            f", delay median {statistics.median(delays):g} months "
            f"(range {min(delays)}-{max(delays)})"
        )
    early = sum(1 for d in delays if d < 0)
    return line + (f"; {early} fired before the change" if early else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    args = parser.parse_args()
    started = time.perf_counter()
    split = split_dataset(load_dataset(DataConfig()), 0.2, 42)
    champion = make_champion(split)
    simulate = SimulateConfig(start_date=date(2024, 1, 1))
    monitor, check = MonitorConfig(), CheckConfig()
    source = ScenarioSource(unseen=split.test, tail=split.test.iloc[:0])
    print(
        f"champion: logreg C {PARAMS['C']}, test ROC AUC {champion.training_auc:.4f}, "
        f"granted-applicant ROC AUC {champion.granted_auc:.4f}, threshold {champion.threshold:.3f}; {simulate.months} months x "
        f"{simulate.applications_per_month}, change at month {simulate.drift_start_month}, "
        f"performance window {simulate.performance_months} months"
    )
    aucs: dict[str, list[float]] = {"champion": [], "retrained": [], "reject inference": []}
    for scenario in args.scenarios:
        fired: list[int | None] = []
        rules: Counter[str] = Counter()
        for seed in range(args.seeds):
            calendar = build_calendar(scenario, source, simulate, seed)
            log = scored_log(calendar, champion, simulate)
            start = calendar.start
            table = month_table(log, champion, monitor, start, simulate.months)
            month, which = first_fire(table, champion, check, simulate.months)
            fired.append(month)
            rules.update(which)
            if scenario == "concept":
                later = log.loc[log["month"] > 12]
                aucs["champion"].append(
                    evaluate.roc_auc(later["true_bad"].to_numpy(), later["probability"])
                )
                aucs["retrained"].append(
                    retrained_auc(log, champion, start, simulate.months, False)
                )
                aucs["reject inference"].append(
                    retrained_auc(log, champion, start, simulate.months, True)
                )
        print(summary_line(scenario, fired, simulate.drift_start_month))
        print(f"  first rules to fire: {dict(rules) or 'none'}; months {fired}")
        if scenario == "none":
            print(f"false alarms: {sum(m is not None for m in fired)}/{len(fired)}")
    if aucs["champion"]:
        print(
            "concept, through-the-door ROC AUC on months 13-24 (ground truth, declines included): "
            + ", ".join(f"{k} {np.mean(v):.4f} ± {np.std(v):.4f}" for k, v in aucs.items())
        )
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
