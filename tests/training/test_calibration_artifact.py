"""The calibrator inside the one logged artifact: registry, HTTP service and batch give the same PD.

A real MLflow store in a temporary folder: a logistic regression finalist is
logged and registered with an isotonic calibrator (version 1), and an
uncalibrated plain pipeline, as versions logged before calibration existed,
is registered beside it (version 2). Expected values come from the in-memory
model of the same, seeded, fit and from the model loaded back by URI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from creditops import calibration, evaluate, registry
from creditops.config import Settings, TrainConfig
from creditops.data import Dataset, Split, frame_hash, split_dataset
from creditops.features import build_pipeline
from creditops.training.evidence import FinalistFit, fit_finalist
from creditops.training.search import TrialResult, cross_validate
from creditops.training.tracking import log_finalist
from serving_fixtures import settings_for

pytestmark = pytest.mark.slow

CONFIG = TrainConfig(families=["logreg"], cv_folds=3, n_jobs=1, calibration="isotonic")


@dataclass(frozen=True)
class CalibratedStore:
    """The store, the split, the trial and its in-memory fit, and the two versions."""

    settings: Settings
    split: Split
    best: TrialResult
    fit: FinalistFit
    calibrated_version: int
    plain_version: int
    plain: Any


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, credit_dataset: Dataset) -> CalibratedStore:
    settings = settings_for(tmp_path_factory.mktemp("calibrated-store"))
    split = split_dataset(credit_dataset, 0.2, 0)
    params: dict[str, Any] = {"C": 1.0}
    mean, sd, oof = cross_validate("logreg", params, split.X_train, split.y_train, 3, 0)
    best = TrialResult("logreg", 0, params, mean, sd, oof)
    client = registry.connect(settings.mlflow)
    name = settings.mlflow.registered_model
    data_hash = frame_hash(split.train)
    with client.run("train") as parent_id:
        finalist = log_finalist(client, name, best, split, CONFIG, data_hash, parent_id, 1)
    plain = build_pipeline("logreg", params, seed=0).fit(split.X_train, split.y_train)
    old = registry.register_fitted(
        client,
        name,
        plain,
        family="logreg",
        threshold=0.3,
        data_hash=data_hash,
        run_name="before-calibration",
    )
    fit = fit_finalist(best, split, CONFIG)  # the same seeded fit, kept in memory
    return CalibratedStore(settings, split, best, fit, finalist.version, old.version, plain)


def _loaded(store: CalibratedStore, version: int) -> Any:
    client = registry.connect(store.settings.mlflow)
    return client.load_sklearn_model(f"models:/{store.settings.mlflow.registered_model}/{version}")


def test_the_logged_model_carries_its_calibrator(store: CalibratedStore) -> None:
    loaded = _loaded(store, store.calibrated_version)
    assert isinstance(loaded, calibration.CalibratedModel) and loaded.method == "isotonic"
    X = store.split.X_test
    assert isinstance(store.fit.model, calibration.CalibratedModel)
    np.testing.assert_allclose(
        loaded.predict_proba(X), store.fit.model.predict_proba(X), rtol=0, atol=1e-12
    )
    # the calibrated PD, not the raw score, and the raw score is the pipeline's
    raw = store.fit.pipeline.predict_proba(X)[:, 1]
    np.testing.assert_allclose(loaded.raw_proba(X), raw, rtol=0, atol=1e-12)
    assert np.max(np.abs(loaded.predict_proba(X)[:, 1] - raw)) > 0.01
    # the digest-checked load of every stage gives the same model
    client = registry.connect(store.settings.mlflow)
    ref = registry.get_version(
        client, store.settings.mlflow.registered_model, store.calibrated_version
    )
    checked = registry.load_pipeline(client, ref)
    np.testing.assert_allclose(
        checked.predict_proba(X), loaded.predict_proba(X), rtol=0, atol=1e-15
    )


def test_the_threshold_is_on_the_calibrated_scale(store: CalibratedStore) -> None:
    client = registry.connect(store.settings.mlflow)
    name = store.settings.mlflow.registered_model
    tags = client.get_model_version(name, str(store.calibrated_version)).tags
    calibrator = calibration.fit_calibrator("isotonic", store.best.oof, store.split.y_train)
    calibrated_oof = calibration.calibrator_map("isotonic", calibrator)(store.best.oof)
    expected = evaluate.choose_threshold(store.split.y_train, calibrated_oof, CONFIG.threshold)
    raw_threshold = evaluate.choose_threshold(store.split.y_train, store.best.oof, CONFIG.threshold)
    assert float(tags["threshold"]) == pytest.approx(expected, abs=1e-12)
    assert abs(expected - raw_threshold) > 1e-6
    assert tags["calibration"] == "isotonic"
    y = store.split.y_test
    ece = calibration.expected_calibration_error(y, store.fit.proba)
    assert float(tags["test_ece_calibrated"]) == pytest.approx(ece, abs=1e-6)


def test_the_finalist_run_logs_figures_before_and_after(store: CalibratedStore) -> None:
    client = registry.connect(store.settings.mlflow)
    ref = registry.get_version(
        client, store.settings.mlflow.registered_model, store.calibrated_version
    )
    run = client.get_run(ref.run_id)
    for key in (
        "ece_uncalibrated",
        "ece_calibrated",
        "ece_noise_floor",
        "ece_noise_share",
        "brier_uncalibrated",
        "brier_calibrated",
    ):
        assert math.isfinite(run.data.metrics[f"test_{key}"]), key
    assert 0.0 <= run.data.metrics["test_ece_noise_share"] <= 1.0
    y, raw = store.split.y_test, store.fit.pipeline.predict_proba(store.split.X_test)[:, 1]
    assert run.data.metrics["test_brier_uncalibrated"] == pytest.approx(
        float(np.mean((raw - y) ** 2)), abs=1e-9
    )
    figures = {a.path for a in client.list_artifacts(ref.run_id, "figures")}
    assert "figures/reliability_curve.png" in figures


def test_the_compiled_scorer_applies_the_calibration(store: CalibratedStore) -> None:
    from creditops.inference.raw import raw_matrix_from_frame
    from creditops.inference.scorer import prepare_model

    client = registry.connect(store.settings.mlflow)
    name = store.settings.mlflow.registered_model
    X = store.split.X_test
    for version, calibrated in ((store.calibrated_version, True), (store.plain_version, False)):
        ref = registry.get_version(client, name, version)
        registered = registry.load_pipeline(client, ref)
        loaded = prepare_model(ref, registered)
        assert loaded.fast_path and loaded.calibrated is calibrated
        scores = loaded.score(raw_matrix_from_frame(X), reasons=True)
        np.testing.assert_allclose(
            scores.probability, registered.predict_proba(X)[:, 1], rtol=0, atol=1e-9
        )
        assert scores.contributions is not None  # reasons on the raw margin, either way


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict("records")
    ]


def _served(store: CalibratedStore, version: int, start_server: Any) -> tuple[np.ndarray, dict]:
    client = registry.connect(store.settings.mlflow)
    name = store.settings.mlflow.registered_model
    registry.set_alias(client, name, registry.CHAMPION, version)
    server = start_server(store.settings)
    server.wait_ready()
    rows = _rows(store.split.X_test.head(40))
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        ready = http.get("/ready").json()
        body = http.post("/predict", json=rows).json()
    server.terminate()
    return np.array([p["probability"] for p in body["predictions"]]), ready


def test_the_service_serves_the_calibrated_pd(store: CalibratedStore, start_server: Any) -> None:
    served, ready = _served(store, store.calibrated_version, start_server)
    expected = _loaded(store, store.calibrated_version).predict_proba(store.split.X_test.head(40))[
        :, 1
    ]
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-9)
    assert ready["model_version"] == store.calibrated_version
    assert ready["calibration"] == "isotonic"


def test_a_version_without_calibrator_is_served_as_before(
    store: CalibratedStore, start_server: Any
) -> None:
    served, ready = _served(store, store.plain_version, start_server)
    expected = store.plain.predict_proba(store.split.X_test.head(40))[:, 1]
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-9)
    assert ready["model_version"] == store.plain_version and ready["calibration"] == "none"


def test_batch_scores_the_calibrated_pd(store: CalibratedStore, tmp_path: Path) -> None:
    from creditops.batch.run import score_file

    frame = store.split.X_test.head(60).reset_index(drop=True)
    frame.insert(0, "applicant_id", [f"A{i:05d}" for i in range(len(frame))])
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    score_file(
        store.settings.batch,
        store.settings.mlflow,
        tmp_path / "in.parquet",
        tmp_path / "out.parquet",
        model_version=store.calibrated_version,
        show_progress=False,
    )
    out = pd.read_parquet(tmp_path / "out.parquet")
    expected = _loaded(store, store.calibrated_version).predict_proba(
        frame.drop(columns="applicant_id")
    )
    np.testing.assert_allclose(out["probability"], expected[:, 1], rtol=0, atol=1e-9)


def test_calibration_none_keeps_the_plain_pipeline(store: CalibratedStore) -> None:
    config = CONFIG.model_copy(update={"calibration": "none"})
    fit = fit_finalist(store.best, store.split, config)
    assert fit.logged_model is fit.pipeline and fit.calibration_method == "none"
    raw = fit.pipeline.predict_proba(store.split.X_test)[:, 1]
    assert np.array_equal(fit.proba, raw)
    expected = evaluate.choose_threshold(store.split.y_train, store.best.oof, config.threshold)
    assert fit.threshold == expected


def test_an_unknown_calibration_is_refused_naming_the_key() -> None:
    from creditops.config import load_config
    from creditops.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train\.calibration = 'beta'.*'isotonic'"):
        load_config(None, train={"calibration": "beta"})
