"""Label-free estimate and PD backtest benchmark, on the simulated calendar.

Runs offline, in-process: the calendar (``simulation.calendar.build_calendar``),
the outcome rules (``simulation.outcomes``), a calibrated model built as
``creditops train`` builds one (out-of-fold raw PDs of the training split, the
calibrator chosen by CV on them, the threshold chosen on the calibrated scale),
and the very month providers ``creditops monitor --by month`` runs
(``monitoring.estimate``, ``monitoring.backtest``). No service, no MLflow.
The model is the one ``creditops train`` would register for ``--family``: the
configured Optuna search (``[train]`` trials, folds; the seed is the
benchmark's), its best trial refitted on the training split and calibrated on
that trial's out-of-fold predictions (``training.evidence.fit_finalist``);
``--default-params`` skips the search (the family's default parameters,
quicker, and for a booster far more over-confident scores).

Figures printed, per seed:

* ``none`` and ``covariate``: per month, the true through-the-door ROC AUC of
  the served model (every applicant's true outcome, declined ones included: the
  simulator's ground truth) against the estimate;
  ``coverage: X % of months inside the band, mean |error| Y``;
* ``covariate, reweighted``: a month's applicants drawn (without replacement)
  from the real unseen applicants (features and outcome together), each
  weighted by the density ratio of the ``covariate`` month's mix to the
  ``none`` month's (a logistic regression telling the two apart). ``covariate`` itself shifts the
  features of an applicant and keeps its outcome, so P(bad | applicant) moves
  with the mix there, against the estimate's assumption; here it does not;
* ``downturn``: the first month (of the calendar; past its end the lender keeps
  watching while loans mature) at which the check's backtest rule fires
  (``retraining.months.rule_backtest`` with ``[check]``: a red grade or
  ``backtest_max_yellow`` yellow ones on the newest backtested month, confirmed
  on the month before; ``--yellow`` and ``--confirm`` override), against the
  downturn's start; the estimate's error on the downturn months, for the ROC
  AUC and for the bad rate of approved loans; the same rule on ``none``;
* ``none, outcomes drawn from the PDs``: the ``none`` months built from unseen
  applicants whose outcomes are drawn once from the model's own PDs, so that the
  PDs are the truth: the error a perfectly calibrated model shows in this
  benchmark, where every month reuses the same unseen applicants and outcomes
  (a perfect estimator's error over fresh outcomes, printed per scenario, leaves
  out that shared luck); with it, per seed, the unseen split's realised AUC minus
  the AUC its PDs imply;
* ECE and Brier score of the model on its test split, before and after
  calibration, and the served Platt slope against one refitted on the unseen
  outcomes (a served slope below it: PDs too narrow for the final model).

Usage: ``.venv/bin/python bench/estimate.py [--seeds 0 1] [--family logreg] [--default-params]``
(about 30 s a seed with the search for LightGBM).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sklearn.model_selection import cross_val_predict

from creditops import calibration, evaluate, features, schema
from creditops.config import CheckConfig, Settings, SimulateConfig, load_config
from creditops.data import load_dataset, split_dataset
from creditops.monitoring.backtest import backtest_rows
from creditops.monitoring.estimate import estimate_performance, expected_roc_auc
from creditops.monitoring.table import MonitoringRow, MonthContext
from creditops.retraining.evidence import months_evidence
from creditops.retraining.months import rule_backtest
from creditops.simulation.calendar import (
    Calendar,
    applicant_months,
    build_calendar,
    month_start,
)
from creditops.simulation.outcomes import observation_dates
from creditops.simulation.scenarios import ScenarioSource
from creditops.training.evidence import fit_finalist
from creditops.training.search import search_family


class Served:
    """A calibrated model, its threshold and its reference PDs (test split).

    ``search``: the model ``creditops train`` would register for ``family``: the
    configured search (``[train]`` trials, folds and seed), its best trial refitted
    and calibrated on that trial's out-of-fold predictions (``fit_finalist``).
    Without it: the family's default parameters, out-of-fold predictions from
    ``cross_val_predict`` (quicker; an untuned booster's scores are far more
    over-confident, which the calibrator fitted on fold models only partly undoes).
    """

    def __init__(self, settings: Settings, family: str, seed: int, search: bool = True) -> None:
        dataset = load_dataset(settings.data)
        split = split_dataset(dataset, settings.data.test_size, seed)
        self.test = split.test
        x_test = schema.coerce_features(split.test)
        self.y_test = split.y_test
        if search:
            config = settings.train.model_copy(update={"seed": seed, "families": [family]})
            x = schema.coerce_features(split.train)
            trials = search_family(family, config, x, split.y_train)
            best = max(trials, key=lambda t: t.cv_auc)
            fit = fit_finalist(best, split, config)
            assert isinstance(fit.model, calibration.CalibratedModel)
            self.model, self.threshold = fit.model, fit.threshold
            self.params = (
                f"searched ({len(trials)} trials, CV AUC {best.cv_auc:.4f}): {best.params}"
            )
        else:
            x = schema.coerce_features(split.train)
            y = split.y_train
            folds = settings.train.cv_folds
            pipeline = features.build_pipeline(family, {}, seed)
            oof = cross_val_predict(pipeline, x, y, cv=folds, method="predict_proba")[:, 1]
            pipeline.fit(x, y)
            self.model, _ = calibration.calibrated_model(
                pipeline, "auto", oof, y, folds=folds, seed=seed
            )
            self.threshold = evaluate.choose_threshold(
                y, self.model.calibrate(oof), settings.train.threshold
            )
            self.params = "default parameters"
        self.raw_test = self.model.raw_proba(x_test)
        self.reference_scores = self.model.predict_proba(x_test)[:, 1]
        self.slope = platt_slope(self.model, x_test, self.y_test)

    def pds(self, calendar: Calendar) -> np.ndarray:
        return np.asarray(self.model.predict_proba(schema.coerce_features(calendar.features))[:, 1])


def platt_slope(model: calibration.CalibratedModel, x: pd.DataFrame, y: np.ndarray) -> str:
    """The served Platt slope against the one the unseen rows' outcomes call for.

    Both are slopes of a logistic regression on the logit of the raw score: the
    served calibrator's, and one refitted on the unseen rows' real outcomes. A
    served slope below the refitted one means PDs too narrow for the final
    model: they imply a lower ROC AUC than it realises.
    """
    refit = float(calibration.fit_calibrator("sigmoid", model.raw_proba(x), y).coef_[0, 0])
    if model.method != "sigmoid":
        return f"served map isotonic; Platt slope refitted on the unseen outcomes {refit:.3f}"
    served = float(model.calibrator.coef_[0, 0])
    return f"Platt slope served {served:.3f}, refitted on the unseen outcomes {refit:.3f}"


def month_errors(calendar: Calendar, pds: np.ndarray, threshold: float, seed: int) -> pd.DataFrame:
    """Per calendar month: true AUC and bad rate of approved, their estimates and bands."""
    assert calendar.outcomes is not None
    lines = []
    for m in range(1, calendar.months + 1):
        where = calendar.month == m
        p, y = pds[where], calendar.outcomes[where]
        est = estimate_performance(p, threshold, seed=seed * 1_000 + m)
        approved = p < threshold
        # a perfect estimator's error: outcomes drawn from the PDs themselves (20 draws)
        rng = np.random.default_rng(seed * 1_000 + m)
        floor = np.mean(
            [
                abs(evaluate.roc_auc(rng.random(p.size) < p, p) - est.roc_auc.value)
                for _ in range(20)
            ]
        )
        lines.append(
            {
                "month": m,
                "true_auc": evaluate.roc_auc(y, p),
                "est_auc": est.roc_auc.value,
                "lower": est.roc_auc.lower,
                "upper": est.roc_auc.upper,
                "true_bad_rate_approved": float(y[approved].mean()),
                "est_bad_rate_approved": est.bad_rate_approved.value,
                "floor": floor,
            }
        )
    frame = pd.DataFrame(lines)
    frame["inside"] = (frame["lower"] <= frame["true_auc"]) & (frame["true_auc"] <= frame["upper"])
    frame["error"] = (frame["est_auc"] - frame["true_auc"]).abs()
    return frame


def reweighted(plain: Calendar, shifted: Calendar, pool: pd.DataFrame, seed: int) -> Calendar:
    """Real applicants of ``pool`` drawn, month by month, into ``shifted``'s mix.

    A month's applicants are drawn without replacement (distinct rows, as in
    ``none``), each with a weight of the density ratio p_shifted(x) / p_plain(x)
    read off a logistic regression fitted to tell the month's ``plain`` rows from
    its ``shifted`` ones: a pure covariate shift, P(bad | x) unchanged. Before
    the drift starts a month is ``plain``'s.
    """
    from dataclasses import replace

    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    assert plain.outcomes is not None
    rng = np.random.default_rng([seed, 31])
    a, b = schema.coerce_features(plain.features), schema.coerce_features(shifted.features)
    candidates = schema.coerce_features(pool)
    truth = (pool[schema.TARGET] == schema.POSITIVE_LABEL).to_numpy(np.int64)
    rows, outcomes = a.copy(), plain.outcomes.copy()
    numeric = [c for c in schema.NUMERIC if c in a]
    for m in range(1, plain.months + 1):
        where = np.flatnonzero(plain.month == m)
        rows_a, rows_b = a.iloc[where], b.iloc[where]
        if rows_a.equals(rows_b):  # before the drift starts
            continue
        tell = make_pipeline(
            make_column_transformer(
                (
                    make_pipeline(
                        FunctionTransformer(lambda v: np.log1p(np.nan_to_num(np.abs(v)))),
                        StandardScaler(),
                    ),
                    numeric,
                ),
                (OneHotEncoder(handle_unknown="ignore"), list(schema.CATEGORICAL)),
            ),
            LogisticRegression(max_iter=1000),
        )
        both = pd.concat([rows_a, rows_b], ignore_index=True)
        tell.fit(both, np.r_[np.zeros(len(where)), np.ones(len(where))])
        p = np.clip(tell.predict_proba(candidates)[:, 1], 1e-6, 1 - 1e-6)
        weight = p / (1 - p)
        drawn = rng.choice(len(candidates), size=len(where), replace=False, p=weight / weight.sum())
        rows.iloc[where] = candidates.iloc[drawn].to_numpy()
        outcomes[where] = truth[drawn]
    return replace(plain, scenario="covariate-reweighted", features=rows, outcomes=outcomes)


def log_frame(calendar: Calendar, pds: np.ndarray, threshold: float, window: int) -> pd.DataFrame:
    """The inference log a lender would hold: granted loans get their outcome's date."""
    assert calendar.outcomes is not None
    granted = pds < threshold
    observed = observation_dates(
        calendar.application_at, calendar.outcomes, calendar.default_month, window
    )
    return pd.DataFrame(
        {
            "probability": pds,
            "decision": np.where(granted, "approve", "decline"),
            "outcome": np.where(granted, np.where(calendar.outcomes == 1, "bad", "good"), None),
            "application_at": calendar.application_at.to_numpy(),
            "observed_at": observed.where(granted).to_numpy(),
            "month": calendar.month,
        }
    )


def backtest_fires(
    frame: pd.DataFrame, calendar: Calendar, served: Served, window: int, check: CheckConfig
) -> tuple[int | None, str]:
    """The first monthly run at which the check's backtest rule fires (``[check]`` settings)."""
    for k in range(1, calendar.months + window + 2):
        as_of = month_start(calendar.start, k - 1)  # the run at the start of month k
        rows: list[MonitoringRow] = []
        for m in range(1, min(k, calendar.months + 1)):
            month = frame.loc[frame["month"] == m]
            label = f"{month_start(calendar.start, m - 1):%Y-%m}"
            ctx = MonthContext(
                month=label,
                model_version=1,
                as_of=as_of,
                threshold=served.threshold,
                reference=pd.DataFrame(),
                reference_scores=served.reference_scores,
                performance_months=window,
                min_rows=100,
            )
            rows.append(MonitoringRow(label, 1, "volume", "volume", float(len(month))))
            rows += backtest_rows(month, ctx)
        if not rows:
            continue
        table = pd.DataFrame([row.__dict__ for row in rows])
        table["value"] = table["value"].astype(object).where(table["value"].notna(), None)
        rule = rule_backtest(months_evidence(table, 1), check)
        if rule.fired:
            return k, rule.reason
    return None, "never"


def run_seed(
    settings: Settings, family: str, seed: int, check: CheckConfig, search: bool = True
) -> dict[str, pd.DataFrame]:
    """One seed's figures, printed; its months' errors by scenario."""
    started = time.perf_counter()
    served = Served(settings, family, seed, search)
    figures = calibration.calibration_figures(
        served.y_test, served.raw_test, served.reference_scores
    )
    print(
        f"seed {seed}: {family}, {served.params}\n  calibration {served.model.method}, threshold "
        f"{served.threshold:.3f}; test ECE {figures['ece_uncalibrated']:.4f} -> "
        f"{figures['ece_calibrated']:.4f}, Brier {figures['brier_uncalibrated']:.4f} -> "
        f"{figures['brier_calibrated']:.4f} (noise floor: ECE of outcomes drawn from the PDs "
        f"{figures['ece_noise_floor']:.4f}, reached or passed in "
        f"{figures['ece_noise_share']:.0%} of draws); {served.slope}"
    )
    source = ScenarioSource(unseen=served.test, tail=served.test.iloc[:0])
    sim = settings.simulate
    window = sim.performance_months
    calendars: dict[str, Calendar] = {}
    by_scenario: dict[str, pd.DataFrame] = {}
    for scenario in ("none", "covariate", "covariate, reweighted", "downturn"):
        if scenario == "covariate, reweighted":
            calendar = reweighted(calendars["none"], calendars["covariate"], served.test, seed)
        else:
            calendar = build_calendar(scenario, source, sim, seed)
        calendars[scenario] = calendar
        pds = served.pds(calendar)
        errors = month_errors(calendar, pds, served.threshold, seed)
        by_scenario[scenario] = errors
        print(
            f"  {scenario}: coverage: {100 * errors['inside'].mean():.0f} % of months inside "
            f"the band, mean |error| {errors['error'].mean():.4f} "
            f"({calendar.months} months x {len(calendar) // calendar.months}; a perfect "
            f"estimator's mean |error| on months of this size {errors['floor'].mean():.4f})"
        )
        if scenario in ("none", "downturn"):
            fired, why = backtest_fires(
                log_frame(calendar, pds, served.threshold, window), calendar, served, window, check
            )
            print(
                f"    backtest rule fires at month {fired} ({why}); drift starts at month "
                f"{sim.drift_start_month}" + (" (no drift in none)" if scenario == "none" else "")
            )
        if scenario == "downturn":
            after = errors[errors["month"] >= sim.drift_start_month]
            gap = (after["est_bad_rate_approved"] - after["true_bad_rate_approved"]).mean()
            print(
                f"    from month {sim.drift_start_month}: mean |AUC error| "
                f"{after['error'].mean():.4f}, coverage {100 * after['inside'].mean():.0f} %; "
                f"bad rate of approved: estimated {after['est_bad_rate_approved'].mean():.4f} vs "
                f"true {after['true_bad_rate_approved'].mean():.4f} (error {gap:+.4f})"
            )
    by_scenario[DESIGN_FLOOR] = design_floor(served, sim, seed)
    print(f"  ({time.perf_counter() - started:.0f} s)")
    return by_scenario


DESIGN_FLOOR = "none, outcomes drawn from the PDs"


def design_floor(served: Served, sim: SimulateConfig, seed: int) -> pd.DataFrame:
    """The months' errors when the model's PDs are the truth, months drawn as ``none`` draws them.

    Every month reuses the same few hundred unseen applicants and their one
    outcome each, so a month's true AUC carries the unseen split's own luck
    (its realised AUC against the AUC its PDs imply), shared by every month of
    a seed: a perfect estimator's error over fresh outcomes per month (the
    ``floor`` column) leaves that out. Here each unseen applicant's outcome is
    drawn once from the model's own PD, and the ``none`` calendar is built from
    them: the error a perfectly calibrated model would show in this benchmark.
    """
    pool = served.test.copy()
    rng = np.random.default_rng([seed, 41])
    bad = rng.random(len(pool)) < served.reference_scores
    pool[schema.TARGET] = np.where(bad, schema.POSITIVE_LABEL, schema.NEGATIVE_LABEL)
    calendar = build_calendar("none", ScenarioSource(unseen=pool, tail=pool.iloc[:0]), sim, seed)
    errors = month_errors(calendar, served.pds(calendar), served.threshold, seed)
    luck = evaluate.roc_auc(served.y_test, served.reference_scores) - expected_roc_auc(
        served.reference_scores
    )
    print(
        f"  {DESIGN_FLOOR}: coverage: {100 * errors['inside'].mean():.0f} % of months inside the "
        f"band, mean |error| {errors['error'].mean():.4f} (the unseen split's realised AUC "
        f"minus the AUC its PDs imply: {luck:+.4f}, shared by every month of this seed)"
    )
    return errors


def check_month_size(settings: Settings) -> None:
    """Stop before any work if a month needs more applicants than the unseen split holds."""
    sim = settings.simulate
    total = sim.samples or sim.months * sim.applications_per_month  # as build_calendar counts
    biggest = int(np.bincount(applicant_months(total, sim.months)).max())
    unseen = len(split_dataset(load_dataset(settings.data), settings.data.test_size, 0).test)
    if biggest > unseen:
        raise SystemExit(
            f"--per-month: {biggest} applications a month is more than the "
            f"{unseen} unseen applicants a reweighted covariate month draws from "
            "without replacement"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument(
        "--family",
        default="lightgbm",
        help="the family to search and serve (default: lightgbm, the default champion family)",
    )
    parser.add_argument(
        "--default-params",
        action="store_true",
        help="the family's default parameters instead of the configured search (quicker)",
    )
    parser.add_argument(
        "--yellow", type=int, default=None, help="[check] backtest_max_yellow (default: config)"
    )
    parser.add_argument(
        "--confirm", type=int, default=None, help="[check] confirm_months (default: config)"
    )
    parser.add_argument("--per-month", type=int, default=None, help="applications per month")
    parser.add_argument(
        "--jitter",
        type=float,
        default=None,
        help="[simulate] jitter: the share of cells swapped between rows (0: none)",
    )
    args = parser.parse_args()
    simulate: dict[str, float | int] = {}
    if args.per_month is not None:
        simulate["applications_per_month"] = args.per_month
    if args.jitter is not None:
        simulate["jitter"] = args.jitter
    settings = load_config(None, logging={"level": "WARNING"}, simulate=simulate)
    print(
        f"{settings.simulate.months} months x {settings.simulate.applications_per_month}, "
        f"jitter {settings.simulate.jitter}, downturn x{settings.simulate.downturn_factor} "
        f"from month {settings.simulate.drift_start_month}"
    )
    print(f"bench/estimate.py at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    check = settings.check.model_copy(
        update={
            k: v
            for k, v in (("backtest_max_yellow", args.yellow), ("confirm_months", args.confirm))
            if v is not None
        }
    )
    print(
        f"backtest rule: [check] backtest_max_yellow {check.backtest_max_yellow}, "
        f"confirm_months {check.confirm_months} (retraining.months.rule_backtest)"
    )
    check_month_size(settings)
    runs = [
        run_seed(settings, args.family, seed, check, not args.default_params) for seed in args.seeds
    ]
    print(f"all {len(runs)} seeds, every month:")
    for scenario in runs[0]:
        months = pd.concat([run[scenario] for run in runs], ignore_index=True)
        signed = (months["est_auc"] - months["true_auc"]).mean()
        print(
            f"  {scenario}: coverage: {100 * months['inside'].mean():.1f} % of months inside "
            f"the band, mean |error| {months['error'].mean():.4f} (mean signed error "
            f"{signed:+.4f}; a perfect estimator's {months['floor'].mean():.4f})"
        )


if __name__ == "__main__":
    main()
