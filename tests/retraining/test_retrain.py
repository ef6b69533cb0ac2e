"""The trigger policy (pure, table-driven), the decision record and the retraining split."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditops import schema
from creditops.config import CheckConfig
from creditops.errors import TrainingError
from creditops.retraining import policy
from creditops.retraining import run as retrain

CONFIG = CheckConfig(min_f1=0.5, max_auc_drop=0.05, min_drift_share=0.5, psi_max=0.25)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HEALTHY = policy.TriggerFigures(
    rows=2_000,
    labelled_rows=2_000,
    f1=0.63,
    auc=0.84,
    training_auc=0.85,
    drift_share=0.0,
    max_psi=0.02,
    max_psi_column="Price",
)


def _with(**changes: object) -> policy.TriggerFigures:
    return policy.TriggerFigures(**{**HEALTHY.__dict__, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("figures", "fired_rules"),
    [
        (HEALTHY, []),
        (_with(f1=0.49), ["f1"]),
        (_with(f1=0.50), []),  # the floor itself is not a breach
        (_with(auc=0.79), ["auc_drop"]),  # drop 0.06 > 0.05
        (_with(auc=0.80), []),  # drop 0.05 is within the margin
        (_with(drift_share=0.5), ["drift_share"]),  # reaching the share fires
        (_with(drift_share=0.49), []),
        (_with(max_psi=0.25, max_psi_column="Income"), ["psi"]),  # reaching psi_max fires
        (_with(max_psi=0.2499), []),
        (
            _with(f1=0.3, auc=0.6, drift_share=1.0, max_psi=2.0),
            ["f1", "auc_drop", "drift_share", "psi"],
        ),
        # unlabelled window: quality rules are skipped, drift still judged
        (_with(f1=None, auc=None, labelled_rows=0, max_psi=0.4), ["psi"]),
        # AUC undefined (one class) never fires
        (_with(auc=float("nan")), []),
        # window too small: drift rules are skipped
        (_with(drift_share=None, max_psi=None, f1=0.2), ["f1"]),
    ],
)
def test_rules(figures: policy.TriggerFigures, fired_rules: list[str]) -> None:
    results = policy.evaluate_rules(figures, CONFIG)
    assert [r.rule for r in results if r.fired] == fired_rules


def test_skipped_rules_say_why() -> None:
    results = policy.evaluate_rules(
        _with(f1=None, auc=None, drift_share=None, max_psi=None), CONFIG
    )
    assert not any(r.fired for r in results)
    assert all(r.value is None and "skipped" in r.reason for r in results)


def test_reasons_carry_the_numbers() -> None:
    psi = policy.rule_psi(_with(max_psi=0.31, max_psi_column="Income"), CONFIG)
    assert psi.reason == "largest PSI 0.310 (Income) >= psi_max 0.250"
    drop = policy.rule_auc_drop(_with(auc=0.70), CONFIG)
    assert drop.reason == ("ROC AUC 0.7000 vs training 0.8500: drop +0.1500 > max_auc_drop 0.0500")


@pytest.mark.parametrize(
    ("last", "minutes", "left"),
    [
        (None, 60, 0.0),
        (NOW - timedelta(minutes=10), 60, 50.0),
        (NOW - timedelta(minutes=60), 60, 0.0),
        (NOW - timedelta(minutes=90), 60, 0.0),
        (NOW - timedelta(minutes=1), 0, 0.0),
    ],
)
def test_cooldown_remaining(last: datetime | None, minutes: float, left: float) -> None:
    assert policy.cooldown_remaining(last, NOW, minutes) == pytest.approx(left)


@pytest.mark.parametrize(
    ("fired", "retrain_on", "left", "action"),
    [
        (False, True, 0.0, "none"),
        (False, False, 30.0, "none"),
        (True, False, 0.0, "alert"),
        (True, True, 30.0, "cooldown"),
        (True, True, 0.0, "retrain"),
    ],
)
def test_actions(fired: bool, retrain_on: bool, left: float, action: str) -> None:
    assert policy.decide_action(fired, retrain_on, left) == action


def test_a_decision_holds_every_figure_and_the_why(tmp_path: Path) -> None:
    decision = policy.decide(
        _with(auc=0.70),
        CONFIG,
        champion_version=4,
        retrain=True,
        last_retrain=NOW - timedelta(minutes=5),
        now=NOW,
    )
    assert decision.fired and decision.action == "cooldown"
    assert decision.reasons == [
        "ROC AUC 0.7000 vs training 0.8500: drop +0.1500 > max_auc_drop 0.0500"
    ]
    assert any("cooldown 60 min, 55.0 min left" in m for m in decision.messages)
    path = retrain.write_decision(decision, tmp_path)
    record = json.loads(path.read_text())
    assert record["figures"]["auc_drop"] == pytest.approx(0.15)
    assert {r["rule"] for r in record["rules"]} == {"f1", "auc_drop", "drift_share", "psi"}
    assert json.loads((tmp_path / retrain.DECISION_LATEST).read_text()) == record
    line = decision.log_line()
    assert line.startswith("check v4: FIRED -> cooldown (f1=0.6300/0.5, auc_drop=0.1500/0.05")


def test_decision_records_never_overwrite_each_other(tmp_path: Path) -> None:
    decision = policy.decide(
        HEALTHY, CONFIG, champion_version=1, retrain=False, last_retrain=None, now=NOW
    )
    first = retrain.write_decision(decision, tmp_path)
    second = retrain.write_decision(decision, tmp_path)
    assert first != second and first.is_file() and second.is_file()


def test_nan_figures_are_null_in_the_record(tmp_path: Path) -> None:
    decision = policy.decide(
        _with(auc=math.nan), CONFIG, champion_version=1, retrain=False, last_retrain=None, now=NOW
    )
    record = json.loads(retrain.write_decision(decision, tmp_path).read_text())
    assert record["figures"]["auc"] is None


def test_the_last_retraining_time_round_trips(tmp_path: Path) -> None:
    assert retrain.read_last_retrain(tmp_path) is None
    retrain.mark_retrain(tmp_path, NOW, 3)
    assert retrain.read_last_retrain(tmp_path) == NOW


# --- the retraining data ---------------------------------------------------------------


def _rows(n: int, start: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(start)
    frame = pd.DataFrame({name: [np.nan] * n for name in schema.FEATURES})
    frame["Age"] = np.arange(start, start + n, dtype=float)
    frame[schema.TARGET] = np.where(rng.random(n) < 0.3, "bad", "good")
    return frame


def test_holdout_is_the_most_recent_production_rows() -> None:
    reference, production = _rows(100), _rows(50, start=1_000)
    split = retrain.build_retraining_split(reference, production, 0.4)
    train, holdout = split.train, split.test
    assert split.weights is None
    assert len(holdout) == 20 and len(train) == 130
    assert holdout["Age"].tolist() == list(range(1_030, 1_050))
    assert not set(holdout["Age"]) & set(train["Age"])


def test_production_rows_weigh_production_weight_and_reference_rows_one() -> None:
    reference, production = _rows(100), _rows(50, start=1_000)
    split = retrain.build_retraining_split(reference, production, 0.4, production_weight=3.0)
    assert split.weights is not None and len(split.weights) == len(split.train) == 130
    is_production = (split.train["Age"] >= 1_000).to_numpy()
    assert (split.weights[is_production] == 3.0).all()
    assert (split.weights[~is_production] == 1.0).all()


def test_weights_follow_the_production_rows_left_after_holdout_repeats() -> None:
    reference, production = _rows(100), _rows(50, start=1_000)
    production.loc[0, "Age"] = 1_049.0  # an older row repeats the newest (holdout) applicant
    split = retrain.build_retraining_split(reference, production, 0.4, production_weight=2.0)
    assert split.weights is not None
    assert len(split.train) == 129 and split.weights.sum() == 100 + 2.0 * 29


def test_too_few_production_rows_are_refused() -> None:
    with pytest.raises(TrainingError, match="needs more labelled production rows"):
        retrain.build_retraining_split(_rows(100), _rows(10), 0.3)


def test_a_one_class_holdout_is_refused() -> None:
    production = _rows(100)
    production[schema.TARGET] = "good"
    with pytest.raises(TrainingError, match="one class only"):
        retrain.build_retraining_split(_rows(100), production, 0.3)


def test_production_rows_keep_labelled_rows_oldest_first() -> None:
    log = _rows(4)
    log["outcome"] = ["bad", None, "good", "bad"]
    log["created_at"] = pd.to_datetime(
        ["2026-01-04", "2026-01-01", "2026-01-02", "2026-01-03"], utc=True
    )
    rows = retrain.production_rows(log.drop(columns=[schema.TARGET]))
    assert rows[schema.TARGET].tolist() == ["good", "bad", "bad"]
    assert rows["Age"].tolist() == [2.0, 3.0, 0.0]
