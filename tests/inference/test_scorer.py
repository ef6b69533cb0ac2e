"""The compiled inference path agrees with the registered pipeline; reasons are honest."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy.special import logit

from creditops import features, schema, validation
from creditops.data import Dataset
from creditops.inference import scorer
from creditops.inference.raw import frame_from_raw, probe_rows, raw_matrix, raw_matrix_from_frame
from creditops.registry import ModelRef

FAMILIES: dict[str, dict[str, Any]] = {
    "logreg": {"C": 0.5},
    "random_forest": {"n_estimators": 40, "max_depth": 8, "min_samples_leaf": 3},
    "xgboost": {"n_estimators": 60, "max_depth": 3},
    "lightgbm": {"n_estimators": 60, "num_leaves": 15},
}


def ref_for(family: str) -> ModelRef:
    return ModelRef("credit-risk", 1, "run", "source", family, 0.4, "hash", "run")


@pytest.fixture(scope="module", params=list(FAMILIES))
def fitted(request: pytest.FixtureRequest, credit_dataset: Dataset) -> tuple[str, Any]:
    family = str(request.param)
    pipeline = features.build_pipeline(family, FAMILIES[family], seed=0)
    pipeline.fit(credit_dataset.features, credit_dataset.target)
    return family, pipeline


def test_compiled_path_matches_the_pipeline_on_the_whole_dataset(
    fitted: tuple[str, Any], credit_dataset: Dataset
) -> None:
    family, pipeline = fitted
    model = scorer.prepare_model(ref_for(family), pipeline)
    assert model.fast_path, f"{family} has no compiled path"
    frame = credit_dataset.features
    expected = pipeline.predict_proba(frame)[:, 1]
    got = model.score(raw_matrix_from_frame(frame), reasons=False).probability
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_request_rows_and_frames_give_the_same_matrix(credit_dataset: Dataset) -> None:
    frame = credit_dataset.features
    records = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]
    np.testing.assert_array_equal(raw_matrix(records), raw_matrix_from_frame(frame))
    back = frame_from_raw(raw_matrix_from_frame(frame))
    assert back.equals(schema.coerce_features(frame).reset_index(drop=True))


def test_contributions_add_up_to_the_score(
    fitted: tuple[str, Any], credit_dataset: Dataset
) -> None:
    family, pipeline = fitted
    model = scorer.prepare_model(ref_for(family), pipeline)
    raw = raw_matrix_from_frame(credit_dataset.features.iloc[:300])
    scores = model.score(raw, reasons=True)
    assert scores.contributions is not None
    assert scores.contributions.shape == (300, len(model.sources))
    total = scores.contributions.sum(axis=1)
    # contributions + a constant (bias / expected value) = the score, in the model's unit
    target = (
        scores.probability
        if model.contribution_unit == "probability"
        else logit(scores.probability)
    )
    residual = target - total
    if family == "logreg":  # coefficient x value: the constant is the intercept
        np.testing.assert_allclose(residual, residual[0], atol=1e-9)
    else:
        np.testing.assert_allclose(residual, residual[0], atol=1e-4)


def test_unknown_step_falls_back_to_the_pipeline(credit_dataset: Dataset) -> None:
    from sklearn.preprocessing import QuantileTransformer

    pipeline = features.build_pipeline("random_forest", FAMILIES["random_forest"], seed=0)
    pre = pipeline.named_steps["preprocess"]
    name, _, columns = pre.transformers[0]
    pre.transformers[0] = (name, QuantileTransformer(n_quantiles=50), columns)
    frame = credit_dataset.features.iloc[:500]
    pipeline.fit(frame, credit_dataset.target[:500])
    model = scorer.prepare_model(ref_for("random_forest"), pipeline)
    assert not model.fast_path
    scores = model.score(raw_matrix_from_frame(frame), reasons=True)
    np.testing.assert_allclose(scores.probability, pipeline.predict_proba(frame)[:, 1], atol=1e-12)
    assert scores.contributions is not None  # reasons still come, from the pipeline's transform


def test_probe_rows_satisfy_the_contract() -> None:
    raw = probe_rows(500)
    frame = frame_from_raw(raw)
    assert validation.validate_rows(frame) == []
    assert frame["Income"].isna().any()


def test_a_prefetched_folder_that_is_not_an_sklearn_model_is_refused(tmp_path: Any) -> None:
    from creditops.serving.prefetch import PrefetchError, load_local_pipeline

    with pytest.raises(PrefetchError, match="not an MLflow sklearn model"):
        load_local_pipeline(tmp_path, model="m", expected_sha256="", require_digest=False)
    (tmp_path / "MLmodel").write_text(
        "flavors:\n  sklearn:\n    pickled_model: model.skops\n    serialization_format: skops\n"
    )
    with pytest.raises(PrefetchError, match="let MLflow load it"):
        load_local_pipeline(tmp_path, model="m", expected_sha256="", require_digest=False)
