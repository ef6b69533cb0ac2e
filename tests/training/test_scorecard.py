"""The scorecard family: its points, its reasons, its MLflow round trip and a real training run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from creditops import features, registry, scorecard
from creditops.data import Dataset, split_dataset
from creditops.inference.raw import raw_matrix_from_frame
from creditops.inference.reasons import top_contributions
from creditops.inference.scorer import prepare_model
from creditops.registry import ModelRef
from creditops.training.run import run_training
from creditops.training.sections import TrainingSections
from support import make_settings

PROTECTED = ("Age", "Marital")


@pytest.fixture(scope="module")
def fitted(credit_dataset: Dataset) -> tuple[Any, pd.DataFrame]:
    split = split_dataset(credit_dataset, 0.2, 42)
    pipeline = features.build_pipeline("scorecard", {"C": 1.0, "max_n_bins": 6}, seed=0)
    return pipeline.fit(split.X_train, split.y_train), split.X_test


def _card(pipeline: Any) -> scorecard.ScorecardClassifier:
    card = scorecard.find_scorecard(pipeline)
    assert card is not None
    return card


def test_the_pd_is_the_points_on_the_pdo_scale(fitted: tuple[Any, pd.DataFrame]) -> None:
    pipeline, X = fitted
    card = _card(pipeline)
    odd = X.head(3).copy()  # missing values, and a category unseen in training
    odd.loc[odd.index[0], ["Income", "Assets", "Debt"]] = np.nan
    odd.loc[odd.index[1], ["Home", "Job"]] = np.nan
    odd.loc[odd.index[2], "Home"] = "houseboat"
    X = pd.concat([X, odd])
    points = scorecard.applicant_points(pipeline, X)
    assert points is not None
    # PDO scaling by hand: 600 points at 50:1 good:bad, 20 points double the odds
    factor = 20 / np.log(2)
    offset = 600 - factor * np.log(50)
    np.testing.assert_allclose(
        pipeline.predict_proba(X)[:, 1], expit((offset - points) / factor), atol=1e-12
    )
    # the per-characteristic points add up to optbinning's own total score (but for the
    # unseen category, to which its total gives the missing bin's points, not the PD's)
    transformed = pipeline[:-1].transform(X).rename(columns=lambda c: c.split("__", 1)[1])
    own = card.scorecard_.score(transformed[list(card.characteristics_)])
    np.testing.assert_allclose(points[:-1], own[:-1], atol=1e-9)


def test_protected_attributes_are_not_characteristics(fitted: tuple[Any, pd.DataFrame]) -> None:
    card = _card(fitted[0])
    assert not set(PROTECTED) & set(card.inputs_)
    assert not set(PROTECTED) & set(card.points_table_["characteristic"])


def test_every_kept_coefficient_agrees_with_its_bins(fitted: tuple[Any, pd.DataFrame]) -> None:
    card = _card(fitted[0])
    coef = card.scorecard_.estimator_.coef_.ravel()
    assert np.all(coef <= 0)  # a higher weight of evidence (fewer bads) never costs points
    assert set(card.characteristics_) | set(card.dropped_) == set(card.inputs_)


def test_round_trip_through_a_real_mlflow_store(
    fitted: tuple[Any, pd.DataFrame], tmp_path: Path
) -> None:
    pipeline, X = fitted
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    experiment = mlflow.create_experiment("sc", artifact_location=str(tmp_path / "artifacts"))
    try:
        with mlflow.start_run(experiment_id=experiment):
            mlflow.sklearn.log_model(
                pipeline,
                name="model",
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                registered_model_name="scorecard",
            )
        loaded = mlflow.sklearn.load_model("models:/scorecard/1")
    finally:
        mlflow.set_tracking_uri(None)
    before, after = pipeline.predict_proba(X)[:, 1], loaded.predict_proba(X)[:, 1]
    np.testing.assert_array_equal(after, before)
    np.testing.assert_array_equal(
        scorecard.applicant_points(loaded, X), scorecard.applicant_points(pipeline, X)
    )


def test_reasons_are_the_points_lost_ranked_never_protected(
    fitted: tuple[Any, pd.DataFrame],
) -> None:
    pipeline, X = fitted
    card = _card(pipeline)
    loaded = prepare_model(ModelRef("m", 1, "r", "s", "scorecard", 0.3, "h", "t"), pipeline)
    assert not loaded.fast_path  # no compiled form: the pipeline scores
    assert loaded.contribution_unit == "points"
    scores = loaded.score(raw_matrix_from_frame(X), reasons=True)
    np.testing.assert_allclose(scores.probability, pipeline.predict_proba(X)[:, 1], atol=1e-12)
    assert scores.contributions is not None
    lost = scores.contributions
    assert not set(PROTECTED) & set(loaded.sources)
    # points lost: each characteristic's best bin in the table minus the applicant's points
    best = card.points_table_.groupby("characteristic")["points"].max()
    maxima = np.asarray([best.get(s, 0.0) for s in loaded.sources])
    points = scorecard.applicant_points(pipeline, X)
    np.testing.assert_allclose(maxima.sum() - lost.sum(axis=1), points, atol=1e-9)
    assert np.all(lost >= -1e-12)
    order, values = top_contributions(lost, 4)
    for row in range(len(X)):
        ranked = sorted(range(lost.shape[1]), key=lambda j: -lost[row, j])[:4]
        np.testing.assert_allclose(values[row], lost[row, ranked])
        assert all(loaded.sources[j] not in PROTECTED for j in order[row])


@pytest.mark.slow
def test_a_real_training_run_searches_registers_and_promotes_a_scorecard(
    tmp_path: Path, credit_dataset: Dataset
) -> None:
    train = {"families": ["scorecard"], "trials_per_family": 2, "cv_folds": 3, "n_jobs": 1}
    # the fairness floor judges a scorecard as any family; here it only reports
    settings = make_settings(tmp_path, train=train, fairness={"enforce": False})
    report = run_training(TrainingSections.from_settings(settings), show_progress=False)
    (finalist,) = report.finalists
    assert finalist.family == "scorecard" and 0.8 < finalist.cv_auc < 1.0
    client = registry.connect(settings.mlflow)
    files = {a.path for a in client.list_artifacts(finalist.run_id, "scorecard")}
    assert files == {"scorecard/points_table.csv", "scorecard/points_table.png"}
    card_text = Path(
        client.download_artifacts(finalist.run_id, "model_card.md", str(tmp_path))
    ).read_text()
    assert "## Scorecard" in card_text
    table = pd.read_csv(client.download_artifacts(finalist.run_id, "scorecard/points_table.csv"))
    assert list(table.columns) == list(scorecard.TABLE_COLUMNS)
    decision = registry.promote(client, settings.mlflow, settings.promote)
    assert decision.promoted, decision.reason
    ref = registry.resolve_alias(client, settings.mlflow.registered_model)
    model = registry.load_pipeline(client, ref)
    loaded = prepare_model(ref, model)
    X = credit_dataset.features.head(50)
    scores = loaded.score(raw_matrix_from_frame(X), reasons=True)
    np.testing.assert_allclose(scores.probability, model.predict_proba(X)[:, 1], atol=1e-12)
    assert scores.contributions is not None
    assert scores.contributions.shape == (50, len(loaded.sources)) and "Age" not in loaded.sources
