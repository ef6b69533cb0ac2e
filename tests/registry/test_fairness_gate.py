"""The gate's fairness floor on a real registry (SQLite in a temporary folder).

A logistic regression (protected attributes excluded) approves young applicants
far less often than those of 51-61: its approval-rate ratio by Age band is
below the four-fifths floor on the gate's rows, which the test computes itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditops import features, registry, schema
from creditops.config import FairnessConfig, PromoteConfig, Settings
from creditops.data import load_dataset, split_dataset
from creditops.tracking import TrackingClient
from support import make_settings

THRESHOLD = 0.35
GATE = PromoteConfig(allow_unverified_holdout=True)  # a version registered outside training


def _store(root: Path) -> tuple[Settings, TrackingClient, pd.DataFrame, float, int]:
    settings = make_settings(root)
    client = registry.connect(settings.mlflow)
    dataset = load_dataset(settings.data)
    split = split_dataset(dataset, 0.2, 42)
    pipeline = features.build_pipeline("logreg", {"C": 1.0}, seed=0).fit(
        split.X_train, split.y_train
    )
    ref = registry.register_fitted(
        client,
        settings.mlflow.registered_model,
        pipeline,
        family="logreg",
        threshold=THRESHOLD,
        data_hash=dataset.data_hash,
        run_name="fairness-gate",
    )
    # the expected Age ratio, by groupby: bands with >= 30 applicants
    approved = pipeline.predict_proba(split.X_test)[:, 1] < THRESHOLD
    bands = pd.cut(split.X_test["Age"], [18, 26, 36, 51, 62, 200], right=False)
    table = pd.Series(approved).groupby(bands.to_numpy()).agg(["mean", "size"])
    rates = table.loc[table["size"] >= 30, "mean"].to_numpy(dtype=float)
    return settings, client, split.test, float(rates.min() / rates.max()), ref.version


def test_the_floor_refuses_the_challenger_with_the_figures_in_the_record(tmp_path: Path) -> None:
    settings, client, holdout, expected, version = _store(tmp_path)
    assert expected < 0.8, f"precondition: the Age ratio {expected:.3f} is below the floor"
    decision = registry.promote(
        client,
        settings.mlflow,
        GATE,
        holdout=holdout,
        challenger_version=version,
        fairness_config=FairnessConfig(enforce=True),
    )
    assert not decision.promoted and decision.rule == "fairness"
    assert f"Age {expected:.3f}" in decision.reason and "min_approval_ratio" in decision.reason
    age = next(a for a in decision.fairness["attributes"] if a["attribute"] == "Age")
    assert age["dp_ratio"] == pytest.approx(expected, abs=1e-12)
    assert decision.fairness["rows"] == len(holdout)
    # the record: the gate's MLflow run holds the figures and the reason
    run = client.get_run(decision.run_id)
    assert run.data.tags["gate_rule"] == "fairness"
    folder = Path(client.download_artifacts(decision.run_id, "fairness.json", str(tmp_path)))
    recorded = json.loads(folder.read_text())
    assert recorded["attributes"][0]["dp_ratio"] == pytest.approx(expected, abs=1e-12)
    assert registry.find_alias(client, settings.mlflow.registered_model, registry.CHAMPION) is None


def test_not_enforced_promotes_with_a_warning_in_the_record(tmp_path: Path) -> None:
    settings, client, holdout, expected, version = _store(tmp_path)
    decision = registry.promote(
        client,
        settings.mlflow,
        GATE,
        holdout=holdout,
        challenger_version=version,
        fairness_config=FairnessConfig(),
    )
    assert decision.promoted and decision.rule == "no_champion"
    assert "WARNING, not enforced" in decision.reason and f"Age {expected:.3f}" in decision.reason
    text = Path(client.download_artifacts(decision.run_id, "decision.txt", str(tmp_path)))
    assert "WARNING, not enforced" in text.read_text()


def test_a_floor_the_challenger_meets_passes_it(tmp_path: Path) -> None:
    settings, client, holdout, expected, version = _store(tmp_path)
    floor = float(np.floor(expected * 100) / 100)
    decision = registry.promote(
        client,
        settings.mlflow,
        GATE,
        holdout=holdout,
        challenger_version=version,
        fairness_config=FairnessConfig(min_approval_ratio=floor, enforce=True),
    )
    assert decision.promoted, decision.reason
    assert "fairness" not in decision.reason
    assert set(schema.FEATURES) >= {a["attribute"] for a in decision.fairness["attributes"]}
