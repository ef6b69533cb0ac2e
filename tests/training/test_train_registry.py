"""Integration: a tiny real search in a real MLflow SQLite store, the registry and the gate."""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pytest

from creditops import calibration, registry
from creditops.config import PromoteConfig, Settings
from creditops.data import Dataset
from creditops.errors import NoChampionError, RegistryError, TrackingError, TrainingError
from creditops.training.run import run_training
from creditops.training.sections import TrainingSections
from support import TINY_TRAIN, make_settings

pytestmark = pytest.mark.slow


def test_every_trial_is_a_nested_run(trained_store: tuple[Settings, Any]) -> None:
    settings, report = trained_store
    client = registry.connect(settings.mlflow)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    children = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{report.run_id}'", max_results=100
    )
    stages = sorted(r.data.tags["creditops.stage"] for r in children)
    assert stages.count("trial") == 2 * len(TINY_TRAIN["families"])
    assert stages.count("finalist") == len(TINY_TRAIN["families"])
    trial = next(r for r in children if r.data.tags["creditops.stage"] == "trial")
    assert 0.5 < trial.data.metrics["cv_roc_auc"] <= 1.0
    parent = client.get_run(report.run_id)
    assert parent.data.tags["data_hash"] == report.data_hash


def test_finalists_carry_metrics_figures_card_and_fairness(
    trained_store: tuple[Settings, Any],
) -> None:
    settings, report = trained_store
    client = registry.connect(settings.mlflow)
    for finalist in report.finalists:
        run = client.get_run(finalist.run_id)
        for key in (
            "test_roc_auc",
            "test_gini",
            "test_ks",
            "test_pr_auc",
            "test_brier",
            "test_log_loss",
            "test_accuracy",
            "test_f1_bad",
            "test_f1_good",
            "test_precision_bad",
            "test_recall_good",
            "fair_age_approval_ratio",
            "fair_marital_approval_ratio",
        ):
            assert key in run.data.metrics, key
        artifacts = {a.path for a in client.list_artifacts(finalist.run_id, "figures")}
        assert artifacts == {
            "figures/roc_curve.png",
            "figures/ks_curve.png",
            "figures/calibration.png",
            "figures/reliability_curve.png",
            "figures/confusion_matrix.png",
            "figures/feature_importance.png",
        }
        with client.fluent():
            card = mlflow.artifacts.load_text(f"runs:/{finalist.run_id}/model_card.md")
        assert finalist.family in card and "threshold" in card


def test_versions_are_tagged_and_challenger_is_best_by_cv(
    trained_store: tuple[Settings, Any],
) -> None:
    settings, report = trained_store
    client = registry.connect(settings.mlflow)
    versions = registry.list_versions(client, settings.mlflow.registered_model)
    assert {v.version for v in versions} >= {f.version for f in report.finalists}
    best = max(report.finalists, key=lambda f: f.cv_auc)
    challenger = registry.resolve_alias(
        client, settings.mlflow.registered_model, registry.CHALLENGER
    )
    assert challenger.version == best.version == report.challenger_version
    assert challenger.data_hash == report.data_hash
    assert challenger.train_run_id == report.run_id
    assert 0 < challenger.threshold < 1
    assert challenger.metrics["test_roc_auc"] == pytest.approx(
        best.test_metrics["roc_auc"], abs=1e-6
    )


def test_champion_loaded_by_alias_uri_predicts_as_before_logging(
    trained_store: tuple[Settings, Any], credit_dataset: Dataset
) -> None:
    settings, report = trained_store
    client = registry.connect(settings.mlflow)
    champion = registry.resolve_alias(client, settings.mlflow.registered_model)
    by_alias = client.load_sklearn_model(f"models:/{settings.mlflow.registered_model}@champion")
    train, test = registry.load_training_frames(client, champion)
    from creditops.features import build_pipeline

    finalist = next(f for f in report.finalists if f.version == champion.version)
    refit = build_pipeline(finalist.family, finalist.params, settings.train.seed).fit(
        train.drop(columns="Status"), (train["Status"] == "bad").astype(int).to_numpy()
    )
    X = credit_dataset.features
    # the registered model is the refit pipeline with its calibrator: the served PD is
    # the calibration of the pipeline's raw score
    assert isinstance(by_alias, calibration.CalibratedModel)
    np.testing.assert_allclose(by_alias.raw_proba(X), refit.predict_proba(X)[:, 1], atol=1e-9)
    expected = by_alias.calibrate(refit.predict_proba(X)[:, 1])
    np.testing.assert_allclose(by_alias.predict_proba(X)[:, 1], expected, rtol=0, atol=1e-9)
    with client.fluent():
        pyfunc = mlflow.pyfunc.load_model(f"models:/{settings.mlflow.registered_model}@champion")
    np.testing.assert_allclose(
        np.asarray(pyfunc.predict(X.head(50)))[:, 1], expected[:50], atol=1e-9
    )
    assert len(test) == report.test_rows


def test_reference_data_is_recovered_by_hash(trained_store: tuple[Settings, Any]) -> None:
    from creditops.data import frame_hash

    settings, report = trained_store
    client = registry.connect(settings.mlflow)
    champion = registry.resolve_alias(client, settings.mlflow.registered_model)
    train, _ = registry.load_training_frames(client, champion)
    assert frame_hash(train) == champion.data_hash == report.data_hash


@pytest.mark.parametrize(
    ("challenger", "champion", "promoted", "why"),
    [
        (0.65, None, False, "below the minimum"),
        (0.80, None, True, "no champion yet"),
        (0.805, 0.80, False, "does not beat champion"),
        (0.79, 0.80, False, "does not beat champion"),
        (0.811, 0.80, True, "beats champion"),
        (float("nan"), 0.8, False, "undefined"),
    ],
)
def test_gate_decision_table(
    challenger: float, champion: float | None, promoted: bool, why: str
) -> None:
    verdict, reason = registry.decide_promotion(
        challenger, champion, PromoteConfig(min_auc=0.7, min_improvement=0.01)
    )
    assert verdict is promoted
    assert why in reason


def test_gate_moves_aliases_and_rollback(tmp_path: Path, credit_dataset: Dataset) -> None:
    settings = make_settings(
        tmp_path, train={**TINY_TRAIN, "families": ["logreg"], "trials_per_family": 1}
    )
    client = registry.connect(settings.mlflow)
    name = settings.mlflow.registered_model
    with pytest.raises(NoChampionError, match="run `creditops promote` first"):
        registry.resolve_alias(client, name)
    first = run_training(TrainingSections.from_settings(settings), show_progress=False)
    decision = registry.promote(client, settings.mlflow, settings.promote)
    assert decision.promoted and decision.champion_version is None
    assert registry.resolve_alias(client, name).version == first.challenger_version
    # a second run of the same config ties the champion: the margin keeps it
    second = run_training(TrainingSections.from_settings(settings), show_progress=False)
    decision = registry.promote(client, settings.mlflow, settings.promote)
    assert not decision.promoted
    assert decision.challenger_auc == pytest.approx(decision.champion_auc or 0, abs=1e-9)
    assert registry.resolve_alias(client, name).version == first.challenger_version
    # a zero margin lets the (equal) challenger through; previous keeps the old one
    decision = registry.promote(
        client, settings.mlflow, PromoteConfig(min_auc=0.7, min_improvement=0.0)
    )
    assert decision.promoted
    assert registry.resolve_alias(client, name).version == second.challenger_version
    assert (
        registry.resolve_alias(client, name, registry.PREVIOUS).version == first.challenger_version
    )
    old, new = registry.rollback(client, name)
    assert (old, new) == (second.challenger_version, first.challenger_version)
    assert registry.resolve_alias(client, name).version == first.challenger_version
    # every decision was logged as an MLflow run with both numbers
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    runs = client.search_runs([experiment.experiment_id], "tags.`creditops.stage` = 'promote'")
    assert len(runs) == 3
    assert all("challenger_auc" in r.data.metrics for r in runs)
    assert sum("champion_auc" in r.data.metrics for r in runs) == 2


def test_rollback_without_previous(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, train={**TINY_TRAIN, "families": ["logreg"], "trials_per_family": 1}
    )
    client = registry.connect(settings.mlflow)
    run_training(TrainingSections.from_settings(settings), show_progress=False)
    registry.promote(client, settings.mlflow, settings.promote)
    with pytest.raises(RegistryError, match="no 'previous' version"):
        registry.rollback(client, settings.mlflow.registered_model)


def test_a_full_disk_is_one_error_line_and_registers_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from creditops.cli.app import app

    settings = make_settings(
        tmp_path, train={**TINY_TRAIN, "families": ["logreg"], "trials_per_family": 1}
    )
    model_file = Path(settings.mlflow.artifact_location) / "model.pkl"

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(model_file))

    # the edge nothing real can fake on demand: the artifact disk filling up mid-run
    monkeypatch.setattr(mlflow.sklearn, "log_model", full_disk)
    with pytest.raises(TrackingError) as caught:
        run_training(TrainingSections.from_settings(settings), show_progress=False)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert os.strerror(errno.ENOSPC) in message and str(model_file) in message
    assert "free disk space" in message
    # what the user sees: one error line, last on stderr (after the log), exit code 1
    config = tmp_path / "creditops.toml"
    config.write_text(
        f"""
[mlflow]
tracking_uri = "{settings.mlflow.tracking_uri}"
artifact_location = "{settings.mlflow.artifact_location}"
[logging]
runs_log = "{settings.logging.runs_log}"
[data]
cache_dir = "{settings.data.cache_dir}"
[train]
families = ["logreg"]
trials_per_family = 1
cv_folds = 3
n_jobs = 1
"""
    )
    result = CliRunner().invoke(app, ["--config", str(config), "train"])
    assert result.exit_code == 1, result.output
    (line,) = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert line == result.stderr.strip().splitlines()[-1] and line.startswith("error: `train`")
    assert os.strerror(errno.ENOSPC) in line and str(model_file) in line, line
    assert "Traceback" not in result.output
    client = registry.connect(settings.mlflow)
    assert registry.list_versions(client, settings.mlflow.registered_model) == []
    assert (
        registry.find_alias(client, settings.mlflow.registered_model, registry.CHALLENGER) is None
    )


def test_grid_search_runs_the_whole_grid(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        train={
            "families": ["logreg"],
            "search": "grid",
            "cv_folds": 2,
            "n_jobs": 1,
            "grid": {"logreg": {"C": [0.1, 1.0, 3.0]}},
        },
    )
    report = run_training(TrainingSections.from_settings(settings), show_progress=False)
    assert report.finalists[0].trials == 3


def test_malformed_and_unreachable_tracking_uris(tmp_path: Path) -> None:
    with pytest.raises(TrackingError, match="malformed"):
        malformed = make_settings(tmp_path, mlflow={"tracking_uri": "sqlit:/x"})
        run_training(TrainingSections.from_settings(malformed), show_progress=False)
    unreachable = make_settings(
        tmp_path, mlflow={"tracking_uri": "http://127.0.0.1:9", "request_timeout_seconds": 2}
    )
    with pytest.raises(TrackingError, match=re.escape("http://127.0.0.1:9")):
        run_training(TrainingSections.from_settings(unreachable), show_progress=False)


def test_empty_grid_is_refused(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, train={"families": ["logreg"], "search": "grid", "grid": {"logreg": {"C": []}}}
    )
    with pytest.raises(TrainingError, match="empty"):
        run_training(TrainingSections.from_settings(settings), show_progress=False)
