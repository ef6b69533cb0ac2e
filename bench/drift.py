"""Drift benchmark: false alarms, detection, recovery after retraining, monitor speed.

Runs offline, without the scoring service: the scenario generators, the
champion's pipeline (scoring in-process, as the service would), the
monitor's figures (our PSI + Evidently) and the trigger policy are the very
functions ``creditops simulate/monitor/check`` call, with the HTTP hop left
out so that 50 windows take seconds, not minutes. MLflow is real, in a
temporary directory; training uses a small search budget (``--trials``).

Figures printed:

* false alarms: the trigger over 10 seeds of ``none`` at 2,000 rows (goal: fires at most once);
* detection: ``covariate``, ``concept``, ``original``, ``ordered-tail``, 10 seeds each
  (goal: fires on every seed), with the rules that fired;
* recovery: retraining on ``concept`` traffic through ``run_retraining`` (real
  training + the promotion gate on the most recent labelled rows), then both models'
  ROC AUC on a fresh concept batch drawn from rows neither model trained on;
* weighting (``--weights 1 3 5``): that retraining per ``[check] production_weight``, same
  rows and seeds; fresh-row ROC AUC against the old champion's and the *achievable* one
  (the same search on the production training rows alone), and the gap share recovered;
* speed: ``run_monitor`` on 100,000 rows of a real inference log (goal < 30 s),
  and Evidently's share of that time.

``ordered-tail`` is measured honestly: its model is trained on the raw file's
first half only (the reference is that half's training split) and its traffic
is the second half, which the model never saw.

Usage: ``.venv/bin/python bench/drift.py [--seeds 10] [--rows 2000] [--trials 4]``;
weighting only: ``... --skip detection recovery speed --weights 1 3 5``.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditops import evaluate, registry, schema
from creditops.config import SCENARIOS, Settings, load_config
from creditops.data import Dataset, frame_hash, load_dataset
from creditops.monitoring.result import ModelContext
from creditops.monitoring.run import compute_monitor, run_monitor
from creditops.retraining import policy
from creditops.retraining.run import build_retraining_split, production_rows, run_retraining
from creditops.simulation import scenarios
from creditops.training.run import run_training
from creditops.training.sections import TrainingSections


def settings_for(tmp: Path, trials: int) -> Settings:
    config = Path("creditops.toml") if Path("creditops.toml").is_file() else None
    return load_config(
        config,
        mlflow={
            "tracking_uri": f"sqlite:///{tmp}/mlflow.db",
            "artifact_location": str(tmp / "mlartifacts"),
            "experiment": "bench-drift",
        },
        train={"families": ["logreg", "lightgbm"], "trials_per_family": trials, "trials": {}},
        serve={"store_url": f"sqlite:///{tmp}/inferences.db"},
        monitor={"reports_dir": str(tmp / "reports")},
        check={"decisions_dir": str(tmp / "reports" / "decisions")},
        logging={"runs_log": str(tmp / "runs.log"), "level": "WARNING"},
    )


class Model:
    """A registered version, its pipeline and its reference data."""

    def __init__(self, client: Any, ref: registry.ModelRef) -> None:
        self.ref = ref
        self.pipeline = registry.load_pipeline(client, ref)
        self.train, self.test = registry.load_training_frames(client, ref)
        self.context = ModelContext(
            ref.name, ref.version, ref.data_hash, ref.threshold, dict(ref.metrics)
        )
        self.reference_scores = self.score(self.test)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        proba: np.ndarray = self.pipeline.predict_proba(schema.coerce_features(frame))[:, 1]
        return proba


def window_of(
    model: Model, traffic: scenarios.Traffic, settings: Settings, seed: int
) -> pd.DataFrame:
    """What the inference log would hold for ``traffic``: features, score, outcome."""
    scores = model.score(traffic.features)
    declined = scores >= model.ref.threshold
    outcomes = traffic.outcomes
    if outcomes is None:
        outcomes = scenarios.original_outcomes(declined, settings.simulate.accuracy, seed)
    frame = traffic.features.copy()
    frame["probability"] = scores
    frame["outcome"] = np.where(outcomes == 1, schema.POSITIVE_LABEL, schema.NEGATIVE_LABEL)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    frame["created_at"] = [start + timedelta(seconds=i) for i in range(len(frame))]
    return frame


def judge(model: Model, window: pd.DataFrame, settings: Settings) -> tuple[Any, Any]:
    result, _ = compute_monitor(
        model.train,
        model.reference_scores,
        window,
        model.context,
        settings.monitor,
        drift_share=settings.check.min_drift_share,
    )
    decision = policy.decide(
        policy.figures_from_monitor(result),
        settings.check,
        champion_version=model.ref.version,
        retrain=False,
        last_retrain=None,
        now=datetime.now(UTC),
    )
    return result, decision


def head_dataset(dataset: Dataset) -> Dataset:
    head, _ = scenarios.ordered_halves(dataset.frame)
    return Dataset(head, dataset.source + " (first half)", frame_hash(head), len(head))


def detection(
    settings: Settings,
    models: dict[str, Model],
    source: dict[str, scenarios.ScenarioSource],
    args: Any,
) -> None:
    print(f"\n== trigger over {args.seeds} seeds at {args.rows} rows ==")
    header = f"{'scenario':<13}{'fired':>7}  {'max PSI min/med/max':>21}  {'drift share':>11}  "
    print(header + f"{'AUC drop':>9}  {'F1 min':>6}  rules fired (median figures)")
    for scenario in SCENARIOS:
        model = models["tail" if scenario == "ordered-tail" else "champion"]
        fired, rules = 0, Counter[str]()
        psis, shares, drops, f1s, columns = [], [], [], [], Counter[str]()
        for seed in range(args.seeds):
            traffic = scenarios.generate_traffic(
                scenario, source[scenario], settings.simulate, args.rows, seed
            )
            result, decision = judge(model, window_of(model, traffic, settings, seed), settings)
            fired += decision.fired
            rules.update(r["rule"] for r in decision.rules if r["fired"])
            psis.append(result.max_psi[1])
            columns[result.max_psi[0]] += 1
            shares.append(result.drift_share)
            drops.append(result.auc_drop if result.auc_drop is not None else np.nan)
            f1s.append(result.quality["f1_bad"] if result.quality else np.nan)
        print(
            f"{scenario:<13}{fired:>4}/{args.seeds:<2}  "
            f"{np.min(psis):>7.3f}/{np.median(psis):.3f}/{np.max(psis):.3f}  "
            f"{np.median(shares):>11.3f}  {np.nanmedian(drops):>9.3f}  {np.nanmin(f1s):>6.3f}  "
            + ", ".join(f"{k} x{v}" for k, v in sorted(rules.items()))
            + f"; largest PSI in {dict(columns)}"
        )


def concept_rows(
    settings: Settings, champion: Model, seed: int, rows: int
) -> tuple[pd.DataFrame, scenarios.Traffic]:
    """A labelled window of ``rows`` concept applicants, and 1,000 fresh ones for the verdict.

    The champion's unseen rows, halved: one half feeds the window, the other the fresh rows.
    """
    order = np.random.default_rng([seed, 7]).permutation(len(champion.test))
    half = len(order) // 2
    part_a = champion.test.iloc[order[:half]].reset_index(drop=True)
    part_b = champion.test.iloc[order[half:]].reset_index(drop=True)
    empty = part_a.iloc[:0]
    traffic = scenarios.generate_traffic(
        "concept", scenarios.ScenarioSource(part_a, empty), settings.simulate, rows, seed
    )
    fresh = scenarios.generate_traffic(
        "concept", scenarios.ScenarioSource(part_b, empty), settings.simulate, 1_000, seed + 100
    )
    return window_of(champion, traffic, settings, seed), fresh


def fresh_auc(client: Any, settings: Settings, version: int, fresh: scenarios.Traffic) -> float:
    """ROC AUC of registered ``version`` on the fresh concept rows."""
    assert fresh.outcomes is not None
    ref = registry.get_version(client, settings.mlflow.registered_model, version)
    proba = registry.load_pipeline(client, ref).predict_proba(
        schema.coerce_features(fresh.features)
    )[:, 1]
    return evaluate.roc_auc(fresh.outcomes, proba)


def retrain(
    settings: Settings, client: Any, champion: Model, production: pd.DataFrame, weight: float
) -> Any:
    """``run_retraining`` of ``champion`` at ``weight``; the champion alias then put back."""
    outcome = run_retraining(
        client,
        champion.ref,
        production,
        training=TrainingSections.from_settings(settings),
        promote=settings.promote,
        holdout_share=settings.check.holdout_share,
        production_weight=weight,
    )
    if outcome.promoted:  # every seed and weight starts from the same champion
        registry.set_alias(
            client, settings.mlflow.registered_model, registry.CHAMPION, champion.ref.version
        )
    return outcome


def recovery(settings: Settings, client: Any, champion: Model, args: Any) -> None:
    print("\n== recovery after retraining on concept traffic ==")
    for seed in range(args.recovery_seeds):
        window, fresh = concept_rows(settings, champion, seed, args.rows)
        started = time.perf_counter()
        weight = settings.check.production_weight
        outcome = retrain(settings, client, champion, production_rows(window), weight)
        seconds = time.perf_counter() - started
        assert fresh.outcomes is not None
        old_auc = evaluate.roc_auc(fresh.outcomes, champion.score(fresh.features))
        new_auc = fresh_auc(client, settings, outcome.challenger_version, fresh)
        print(
            f"seed {seed}: gate on the {outcome.holdout_rows} most recent rows: challenger "
            f"v{outcome.challenger_version} {outcome.challenger_auc:.4f} vs champion "
            f"{outcome.champion_auc:.4f} -> {'PROMOTED' if outcome.promoted else 'kept'}; "
            f"fresh unseen concept rows: new {new_auc:.4f} vs old {old_auc:.4f} "
            f"({new_auc - old_auc:+.4f}); retraining {seconds:.1f} s"
        )


def weighting(settings: Settings, client: Any, champion: Model, args: Any) -> None:
    """Fresh concept ROC AUC of the retrained model per ``production_weight``, seed by seed."""
    print(
        f"\n== production_weight on concept: {args.recovery_seeds} seeds, {args.rows} rows, "
        f"{args.trials} trials/family of {settings.train.families} =="
    )
    sections = TrainingSections.from_settings(settings)
    figures: dict[float, list[float]] = {w: [] for w in args.weights}
    promoted: Counter[float] = Counter()
    old, achievable, counts = [], [], []
    for seed in range(args.recovery_seeds):
        window, fresh = concept_rows(settings, champion, seed, args.rows)
        production = production_rows(window)
        assert fresh.outcomes is not None
        old.append(evaluate.roc_auc(fresh.outcomes, champion.score(fresh.features)))
        # the achievable: the same search on the production training rows alone
        alone = build_retraining_split(
            champion.train.iloc[:0], production, settings.check.holdout_share
        )
        report = run_training(sections, split=alone, context="bench-alone", show_progress=False)
        achievable.append(fresh_auc(client, settings, report.challenger_version, fresh))
        counts.append(len(alone.train))
        for weight in args.weights:
            outcome = retrain(settings, client, champion, production, weight)
            promoted[weight] += outcome.promoted
            figures[weight].append(fresh_auc(client, settings, outcome.challenger_version, fresh))
    print(
        f"reference rows {len(champion.train)}, production training rows per seed {counts}; "
        f"old champion {np.mean(old):.4f} {_per_seed(old)}; achievable (production rows "
        f"alone) {np.mean(achievable):.4f} {_per_seed(achievable)}"
    )
    for weight, aucs in figures.items():
        shares = [(a - o) / (b - o) for a, o, b in zip(aucs, old, achievable, strict=True)]
        print(
            f"production_weight {weight:g}: retrained {np.mean(aucs):.4f} {_per_seed(aucs)}; "
            f"vs old {np.mean(aucs) - np.mean(old):+.4f}, vs achievable "
            f"{np.mean(aucs) - np.mean(achievable):+.4f}; share of the gap recovered "
            f"{np.mean(shares):.0%} {[f'{x:.0%}' for x in shares]}; "
            f"promoted by the gate {promoted[weight]}/{len(aucs)}"
        )


def _per_seed(values: list[float]) -> str:
    return "[" + " ".join(f"{v:.4f}" for v in values) + "]"


def speed(settings: Settings, champion: Model, source: scenarios.ScenarioSource, rows: int) -> None:
    from creditops.serving.store import InferenceStore

    print(f"\n== monitor on {rows:,} logged rows ==")
    traffic = scenarios.generate_traffic("none", source, settings.simulate, rows, 0)
    window = window_of(champion, traffic, settings, 0)
    store = InferenceStore(settings.serve.store_url)
    store.create()
    now = datetime.now(UTC)
    records: list[dict[str, Any]] = []
    for i, row in enumerate(window.to_dict(orient="records")):
        row.update(
            request_id=uuid.uuid4().hex,
            batch_id="bench",
            created_at=now - timedelta(seconds=rows - i),
            model_name=champion.ref.name,
            model_version=champion.ref.version,
            decision="decline" if row["probability"] >= champion.ref.threshold else "approve",
            threshold=champion.ref.threshold,
            latency_ms=1.0,
        )
        records.append({str(key): value for key, value in row.items()})
    for start in range(0, rows, 10_000):
        store.write_rows(records[start : start + 10_000])
    store.close()
    started = time.perf_counter()
    result = run_monitor(
        settings.monitor,
        settings.mlflow,
        store_url=settings.serve.store_url,
        drift_share=settings.check.min_drift_share,
        last_n=rows,
    )
    total = time.perf_counter() - started
    print(
        f"run_monitor: {total:.1f} s end to end (read log, reference from MLflow, figures, "
        f"reports, MLflow run); compute {result.seconds:.1f} s of which Evidently "
        f"{result.evidently_seconds:.1f} s ({result.evidently_seconds / total:.0%} of the total)"
    )


def train_models(
    settings: Settings, dataset: Dataset, tail: bool
) -> tuple[Any, Model, Model | None]:
    """The tracking client, the promoted champion and (if ``tail``) the head-only model."""
    started = time.perf_counter()
    sections = TrainingSections.from_settings(settings)
    report = run_training(sections, dataset=dataset, show_progress=False)
    client = registry.connect(settings.mlflow)
    registry.promote(
        client, settings.mlflow, settings.promote, challenger_version=report.challenger_version
    )
    champion = Model(client, registry.resolve_alias(client, settings.mlflow.registered_model))
    line = (
        f"champion v{champion.ref.version} ({champion.ref.family}): test ROC AUC "
        f"{champion.ref.metrics.get('test_roc_auc', float('nan')):.4f}, F1(bad) "
        f"{champion.ref.metrics.get('test_f1_bad', float('nan')):.4f}"
    )
    tail_model = None
    if tail:
        tail_report = run_training(sections, dataset=head_dataset(dataset), show_progress=False)
        version = tail_report.challenger_version
        ref = registry.get_version(client, settings.mlflow.registered_model, version)
        tail_model = Model(client, ref)
        line += (
            f"; head-only model v{ref.version} ({ref.family}) test ROC AUC "
            f"{ref.metrics.get('test_roc_auc', float('nan')):.4f}"
        )
    print(line + f"; training took {time.perf_counter() - started:.0f} s")
    return client, champion, tail_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--rows", type=int, default=2_000)
    parser.add_argument("--trials", type=int, default=4, help="Optuna trials per family")
    parser.add_argument("--recovery-seeds", type=int, default=3)
    parser.add_argument("--speed-rows", type=int, default=100_000)
    parser.add_argument("--skip", nargs="*", default=[], choices=["detection", "recovery", "speed"])
    parser.add_argument(
        "--weights", nargs="*", type=float, default=[], help="production_weight values to compare"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp_name:
        settings = settings_for(Path(tmp_name), args.trials)
        dataset = load_dataset(settings.data)
        client, champion, tail_model = train_models(
            settings, dataset, tail="detection" not in args.skip
        )
        check = settings.check
        print(
            f"policy: F1 < {check.min_f1}, AUC drop > {check.max_auc_drop}, drift share >= "
            f"{check.min_drift_share}, PSI >= {check.psi_max}"
        )
        unseen = scenarios.ScenarioSource(champion.test, champion.test.iloc[:0])
        if tail_model is not None:
            _, tail = scenarios.ordered_halves(dataset.frame)
            tail = scenarios.exclude_rows(tail, tail_model.train)
            sources = {s: unseen for s in SCENARIOS}
            sources["ordered-tail"] = scenarios.ScenarioSource(tail_model.test, tail)
            models = {"champion": champion, "tail": tail_model}
            detection(settings, models, sources, args)
        if "recovery" not in args.skip:
            recovery(settings, client, champion, args)
        if args.weights:
            weighting(settings, client, champion, args)
        if "speed" not in args.skip:
            speed(settings, champion, unseen, args.speed_rows)


if __name__ == "__main__":
    main()
