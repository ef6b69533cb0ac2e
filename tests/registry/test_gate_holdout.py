"""The gate scores only on rows neither model trained on.

A real store: a champion trained by ``creditops train``, then a challenger
trained on a split whose test rows include rows the champion trained on (as
after a retraining on production rows). Expected counts come from a pandas
merge of the frames, not from the gate's own row keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from creditops import features, registry, schema
from creditops.config import Settings
from creditops.data import Split, load_dataset
from creditops.registry.holdout import row_keys, shared_rows
from creditops.tracking import TrackingClient
from creditops.training.run import run_training
from creditops.training.sections import TrainingSections
from support import TINY_TRAIN, make_settings

COLUMNS = [*schema.FEATURES, schema.TARGET]
ONE_LOGREG = {**TINY_TRAIN, "families": ["logreg"], "trials_per_family": 1}


@dataclass(frozen=True)
class GateStore:
    settings: Settings
    client: TrackingClient
    champion: int
    challenger: int
    champion_train: pd.DataFrame
    challenger_train: pd.DataFrame
    challenger_test: pd.DataFrame


def _matches(rows: pd.DataFrame, training: pd.DataFrame) -> int:
    """Rows of ``rows`` equal, on every contract column and Status, to a training row."""
    left = rows.loc[:, COLUMNS].astype({c: object for c in schema.CATEGORICAL}).reset_index()
    right = training.loc[:, COLUMNS].astype({c: object for c in schema.CATEGORICAL})
    return int(left.merge(right.drop_duplicates(), on=COLUMNS)["index"].nunique())


@pytest.fixture(scope="module")
def gate_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateStore]:
    root = tmp_path_factory.mktemp("gate-holdout")
    settings = make_settings(root, train=ONE_LOGREG)
    sections = TrainingSections.from_settings(settings)
    first = run_training(sections, show_progress=False)
    client = registry.connect(settings.mlflow)
    assert registry.promote(client, settings.mlflow, settings.promote).promoted
    champion = registry.get_version(client, settings.mlflow.registered_model, 1)
    train, test = registry.load_training_frames(client, champion)
    # the challenger's test rows: 80 rows the champion never saw and 12 it trained on
    challenger_test = pd.concat([test.iloc[:80], train.iloc[-12:]], ignore_index=True)
    challenger_train = pd.concat([test.iloc[80:], train.iloc[:2000]], ignore_index=True)
    second = run_training(
        sections, split=Split(challenger_train, challenger_test), show_progress=False
    )
    yield GateStore(
        settings,
        client,
        first.challenger_version,
        second.challenger_version,
        train,
        challenger_train,
        challenger_test,
    )


def _promote_runs(store: GateStore) -> list[dict[str, str]]:
    experiment = store.client.get_experiment_by_name(store.settings.mlflow.experiment)
    runs = store.client.search_runs(
        [experiment.experiment_id], "tags.`creditops.stage` = 'promote'"
    )
    return [dict(run.data.tags) for run in runs]


def test_a_row_read_back_from_csv_has_the_same_key(tmp_path: Path) -> None:
    frame = load_dataset(make_settings(tmp_path).data).frame.iloc[:200]
    frame.to_csv(tmp_path / "rows.csv", index=False)
    raw = pd.read_csv(tmp_path / "rows.csv")
    back = pd.concat([schema.coerce_features(raw), raw[[schema.TARGET]]], axis=1)
    assert row_keys(back) == row_keys(frame)
    assert shared_rows(frame, back) == 200
    # one changed cell (the label) is another row
    flipped = back.copy()
    flipped.loc[0, schema.TARGET] = "good" if back.loc[0, schema.TARGET] == "bad" else "bad"
    assert shared_rows(frame.iloc[:1], flipped.iloc[:1]) == 0


def test_the_gate_refuses_a_holdout_the_champion_trained_on(gate_store: GateStore) -> None:
    store = gate_store
    name = store.settings.mlflow.registered_model
    expected = _matches(store.challenger_test, store.champion_train)
    assert expected == 12  # by construction; the merge agrees
    decision = registry.promote(
        store.client,
        store.settings.mlflow,
        store.settings.promote,
        challenger_version=store.challenger,
    )
    assert not decision.promoted and decision.rule == "holdout"
    assert (
        f"{expected} of {len(store.challenger_test)} holdout rows are in champion "
        f"v{store.champion}'s training data"
    ) in decision.reason
    assert "challenger" not in decision.reason.split(": ", 1)[1]
    assert registry.resolve_alias(store.client, name).version == store.champion
    assert registry.find_alias(store.client, name, registry.PREVIOUS) is None
    logged = [t for t in _promote_runs(store) if t["gate_rule"] == "holdout"]
    assert logged and logged[0]["verdict"] == "kept"


def test_the_gate_refuses_a_holdout_the_challenger_trained_on(gate_store: GateStore) -> None:
    store = gate_store
    # 20 of the challenger's own training rows the champion never saw, and 30 neither saw
    holdout = pd.concat(
        [store.challenger_train.iloc[:20], store.challenger_test.iloc[:30]], ignore_index=True
    )
    in_challenger = _matches(holdout, store.challenger_train)
    assert in_challenger == 20 and _matches(holdout, store.champion_train) == 0
    decision = registry.promote(
        store.client,
        store.settings.mlflow,
        store.settings.promote,
        holdout=holdout,
        challenger_version=store.challenger,
    )
    assert decision.rule == "holdout" and not decision.promoted
    assert (
        f"{in_challenger} of 50 holdout rows are in challenger v{store.challenger}'s training data"
    ) in decision.reason
    assert "champion v" not in decision.reason
    name = store.settings.mlflow.registered_model
    assert registry.resolve_alias(store.client, name).version == store.champion


def test_a_disjoint_holdout_is_gated(gate_store: GateStore) -> None:
    store = gate_store
    holdout = store.challenger_test.iloc[:80]  # rows neither model trained on
    assert _matches(holdout, store.champion_train) == 0
    assert _matches(holdout, store.challenger_train) == 0
    decision = registry.promote(
        store.client,
        store.settings.mlflow,
        store.settings.promote.model_copy(update={"min_improvement": 0.99}),
        holdout=holdout,
        challenger_version=store.challenger,
    )
    assert decision.rule == "margin" and not decision.promoted
    assert decision.holdout_rows == 80 and decision.champion_auc is not None


def test_a_version_without_training_data_is_refused_unless_allowed(
    gate_store: GateStore, caplog: pytest.LogCaptureFixture
) -> None:
    store = gate_store
    name = store.settings.mlflow.registered_model
    dataset = load_dataset(store.settings.data)
    fitted = features.build_pipeline("logreg", {"C": 0.5}, seed=0).fit(
        dataset.features, dataset.target
    )
    imported = registry.register_fitted(
        store.client,
        name,
        fitted,
        family="logreg",
        threshold=0.4,
        data_hash=dataset.data_hash,
        run_name="imported",
    )
    registry.set_alias(store.client, name, registry.CHAMPION, imported.version)
    holdout = store.challenger_test.iloc[:80]
    try:
        refused = registry.promote(
            store.client,
            store.settings.mlflow,
            store.settings.promote,
            holdout=holdout,
            challenger_version=store.challenger,
        )
        assert refused.rule == "holdout" and not refused.promoted
        assert f"champion v{imported.version} records no training data" in refused.reason
        assert "allow_unverified_holdout" in refused.reason
        assert registry.resolve_alias(store.client, name).version == imported.version
        allowed = store.settings.promote.model_copy(
            update={"allow_unverified_holdout": True, "min_improvement": 0.99}
        )
        with caplog.at_level(logging.WARNING, logger="creditops.registry.holdout"):
            gated = registry.promote(
                store.client,
                store.settings.mlflow,
                allowed,
                holdout=holdout,
                challenger_version=store.challenger,
            )
        assert gated.rule == "margin" and gated.champion_auc is not None
        assert "holdout NOT checked against champion" in caplog.text
    finally:
        registry.set_alias(store.client, name, registry.CHAMPION, store.champion)
