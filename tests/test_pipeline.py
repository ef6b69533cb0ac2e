"""The whole loop, as `make run` runs it, with tiny sizes: a real server and a real MLflow store."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from creditops import registry, schema
from creditops.cli.app import app
from creditops.config import load_config
from creditops.serving.store import InferenceStore

pytestmark = pytest.mark.slow


def row_keys(frame: pd.DataFrame) -> Counter[str]:
    """Each row's 13 features and its label as one text key, counted (NaN is "nan")."""
    features = schema.coerce_features(frame).astype(str)
    labels = frame[schema.TARGET].astype(str).to_numpy()
    return Counter(features.agg("|".join, axis=1) + "|" + labels)


def feature_keys(frame: pd.DataFrame) -> set[str]:
    return set(schema.coerce_features(frame).astype(str).agg("|".join, axis=1))


def test_pipeline_concept_drift_retrains_and_swaps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "creditops.toml"
    config.write_text(
        """
[train]
families = ["logreg", "lightgbm"]
trials_per_family = 2
cv_folds = 3
n_jobs = 1
[simulate]
samples = 600
[check]
min_f1 = 0.0
[promote]
# flipped labels cap any model's holdout ROC AUC near 0.65: the default floor 0.70 would
# refuse every challenger, and this test is about the swap
min_auc = 0.6
[serve]
port = 0
[pipeline]
scenario = "concept"
"""
    )
    result = CliRunner().invoke(app, ["--config", str(config), "pipeline"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "600 rows logged for 600 scored" in out
    # the decision record says what fired and what the gate decided
    record = tmp_path / "reports" / "decisions" / "decision-latest.json"
    decision = json.loads(record.read_text())
    assert decision["fired"] is True
    assert decision["action"] == "retrain"
    retrained = decision["retrain"]
    assert retrained["promoted"] is True, retrained["reason"]
    assert list((tmp_path / "reports").glob("drift-*.html"))

    # the swap happened: the registry and the service's own log say so
    settings = load_config(config)
    client = registry.connect(settings.mlflow)
    name = settings.mlflow.registered_model
    old = decision["champion_version"]
    new = retrained["challenger_version"]
    assert new != old
    assert registry.resolve_alias(client, name).version == new
    assert registry.resolve_alias(client, name, registry.PREVIOUS).version == old
    serve_log = (tmp_path / "runs" / "serve.log").read_text()
    assert f"now serving {name} version {new} (was {old})" in serve_log, serve_log[-3000:]
    table = re.sub(r"[\s│]", "", out)  # the closing table's text, however it wrapped
    assert f"championafterv{new}(servedv{new},expectedv{new}:OK)" in table, out

    # the challenger trained on the old champion's rows plus the older labelled production
    # rows, and was gated on the newest ones: read back from what the versions recorded
    store = InferenceStore(settings.serve.store_url)
    try:
        logged = store.read_frame(labelled_only=True).sort_values("created_at", kind="stable")
    finally:
        store.close()
    production = logged.assign(**{schema.TARGET: logged["outcome"]})
    assert retrained["production_rows"] == len(production) == 600
    holdout = production.iloc[len(production) - retrained["holdout_rows"] :]
    held = feature_keys(holdout)
    older = production.iloc[: len(production) - retrained["holdout_rows"]]
    older = older[~schema.coerce_features(older).astype(str).agg("|".join, axis=1).isin(held)]
    assert len(older) > 0
    reference, _ = registry.load_training_frames(client, registry.get_version(client, name, old))
    train, test = registry.load_training_frames(client, registry.get_version(client, name, new))
    assert row_keys(train) == row_keys(reference) + row_keys(older)
    assert row_keys(test) == row_keys(holdout)
    assert retrained["train_rows"] == len(train) == len(reference) + len(older)


def test_pipeline_refuses_an_unknown_scenario(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["pipeline", "--scenario", "tsunami"])
    assert result.exit_code == 2
    assert (
        "--scenario 'tsunami' is not one of none, covariate, concept, original, ordered-tail"
        in result.stderr
    )
