"""Batch reasons: the decision-path and SHAP contributions, which rows get them, in what form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import logit

from creditops import features, registry, schema
from creditops.batch.run import score_file
from creditops.config import BatchConfig, Settings
from creditops.data import Dataset
from creditops.inference.raw import raw_matrix_from_frame
from creditops.inference.scorer import LoadedModel, prepare_model
from creditops.reason_codes import REASON_CODES
from creditops.registry import ModelRef
from serving_fixtures import ServingRegistry

FAMILIES: dict[str, dict[str, Any]] = {
    "xgboost": {"n_estimators": 40, "max_depth": 3, "learning_rate": 0.1},
    "lightgbm": {"n_estimators": 40, "num_leaves": 7, "learning_rate": 0.1},
    "logreg": {"C": 1.0},
    "random_forest": {"n_estimators": 15, "max_depth": 5},
}


def loaded(family: str, dataset: Dataset) -> LoadedModel:
    pipeline = features.build_pipeline(family, FAMILIES[family], seed=0)
    pipeline.fit(dataset.features, dataset.target)
    ref = ModelRef("m", 1, "run", "source", family, 0.4, "hash", "run")
    model = prepare_model(ref, pipeline)
    assert model.fast_path
    return model


def raw_rows(dataset: Dataset, n: int = 400) -> np.ndarray:
    return raw_matrix_from_frame(schema.coerce_features(dataset.features.head(n)))


@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("method", ["path", "shap"])
def test_contributions_add_up_to_the_score(
    credit_dataset: Dataset, family: str, method: str
) -> None:
    model = loaded(family, credit_dataset)
    raw = raw_rows(credit_dataset)
    probability = model.score(raw, reasons=False).probability
    contributions = model.contributions(raw, method)
    assert contributions is not None and contributions.shape == (len(raw), len(model.sources))
    # bias + contributions = the model's output (log-odds, or P(bad) for the forest)
    output = probability if family == "random_forest" else logit(probability)
    bias = output - contributions.sum(axis=1)
    # XGBoost (and LightGBM trees on its predictor) sum in float32
    assert np.ptp(bias) < (1e-4 if family in ("xgboost", "lightgbm") else 1e-9)


@pytest.mark.parametrize("family", ["logreg", "random_forest"])
def test_path_and_shap_agree_where_both_are_one_method(
    credit_dataset: Dataset, family: str
) -> None:
    model = loaded(family, credit_dataset)
    raw = raw_rows(credit_dataset)
    np.testing.assert_array_equal(
        model.contributions(raw, "path"), model.contributions(raw, "shap")
    )


def _saabas_by_hand(tree: dict[str, Any], x: np.ndarray, width: int) -> np.ndarray:
    """One row through one dumped LightGBM tree: each split's change credited to its feature."""
    out = np.zeros(width)
    node = tree
    while "split_index" in node:
        assert node["decision_type"] == "<="
        value = x[node["split_feature"]]
        kind = node["missing_type"]
        if kind != "NaN" and np.isnan(value):
            value = 0.0  # LightGBM's rule: NaN is zero unless NaN is the missing marker
        missing = (kind == "NaN" and np.isnan(value)) or (kind == "Zero" and abs(value) <= 1e-35)
        left = node["default_left"] if missing else value <= node["threshold"]
        child = node["left_child"] if left else node["right_child"]
        change = child["leaf_value"] if "leaf_index" in child else child["internal_value"]
        out[node["split_feature"]] += change - node["internal_value"]
        node = child
    return out


def test_lightgbm_path_contributions_match_a_walk_of_each_tree(credit_dataset: Dataset) -> None:
    model = loaded("lightgbm", credit_dataset)
    assert model.model is not None and model.model.contribute_path is not None and model.transform
    booster = model.pipeline.named_steps["model"].booster_
    dump = booster.dump_model()
    width = dump["max_feature_idx"] + 1
    x = model.transform(raw_rows(credit_dataset, 60))
    assert np.isnan(x).any()  # LightGBM takes missing values as they are
    got = model.model.contribute_path(x)
    expected = np.array(
        [
            sum(_saabas_by_hand(t["tree_structure"], row, width) for t in dump["tree_info"])
            for row in x
        ]
    )
    # XGBoost's vector-leaf trees hold the credits in float32 (path_trees)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def with_reasons(settings: Settings, **batch: Any) -> BatchConfig:
    return settings.batch.model_copy(update=batch)


def test_only_declined_rows_get_reasons_by_default_and_all_on_request(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    source = tmp_path / "in.parquet"
    credit_dataset.features.head(600).to_parquet(source, index=False)
    settings = serving_registry.settings
    assert (settings.batch.reasons_for, settings.batch.reasons_top_k) == ("declined", 4)
    score_file(
        settings.batch, settings.mlflow, source, tmp_path / "declined.parquet", show_progress=False
    )
    scored = pd.read_parquet(tmp_path / "declined.parquet")
    declined = scored["decision"] == "decline"
    assert declined.any() and (~declined).any()
    assert scored.loc[declined, "reasons"].str.len().gt(0).all()
    assert (scored.loc[~declined, "reasons"] == "").all()

    score_file(
        with_reasons(settings, reasons_for="all"),
        settings.mlflow,
        source,
        tmp_path / "all.parquet",
        show_progress=False,
    )
    everyone = pd.read_parquet(tmp_path / "all.parquet")
    # the same reasons for the declined rows; approved rows with a positive contribution get some
    assert everyone.loc[declined, "reasons"].tolist() == scored.loc[declined, "reasons"].tolist()
    assert everyone.loc[~declined, "reasons"].str.len().gt(0).any()


def test_each_declined_row_gets_the_codes_of_its_largest_contributions(
    serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    credit_dataset.features.head(300).to_csv(source, index=False)
    mlflow = serving_registry.settings.mlflow
    score_file(
        serving_registry.settings.batch, mlflow, source, tmp_path / "out.csv", show_progress=False
    )
    scored = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    client = registry.connect(mlflow)
    ref = registry.resolve_alias(client, mlflow.registered_model)
    model = prepare_model(ref, registry.load_pipeline(client, ref))
    contributions = model.contributions(raw_rows(credit_dataset, 300), "path")
    assert contributions is not None
    declined = (scored["decision"] == "decline").to_numpy()
    assert declined.sum() > 10
    frame = credit_dataset.features.head(300)
    for i in np.flatnonzero(declined):
        reasons = json.loads(scored["reasons"][i])
        # by hand: the non-protected sources by contribution, largest first, positive only
        ranked = sorted(
            (j for j, name in enumerate(model.sources) if name not in ("Age", "Marital")),
            key=lambda j: -contributions[i, j],
        )
        expected = [model.sources[j] for j in ranked[:4] if contributions[i, j] > 0]
        assert [r["feature"] for r in reasons] == (expected or [model.sources[ranked[0]]])
        for r in reasons:
            assert r["code"] == REASON_CODES[r["feature"]].code
            assert r["sentence"] == REASON_CODES[r["feature"]].sentence
            if r["feature"] in schema.FIELDS:
                value = frame[r["feature"]].iloc[i]
                assert r["value"] == (None if pd.isna(value) else value)
    assert (scored.loc[~declined, "reasons"] == "").all()


@pytest.mark.parametrize(
    ("family", "update", "expected"),
    [
        ("xgboost", {}, "top 4 reason codes for declined rows, decision-path contributions"),
        (
            "lightgbm",
            {"reasons_for": "all", "reasons_top_k": 2},
            "top 2 reason codes for every row, decision-path contributions",
        ),
        ("logreg", {}, "top 4 reason codes for declined rows, logreg contributions"),
        ("random_forest", {}, "top 4 reason codes for declined rows, random_forest contributions"),
        ("xgboost", {"reasons_top_k": 0}, "none"),
    ],
)
def test_the_summary_says_what_the_reasons_are(
    credit_dataset: Dataset, family: str, update: dict[str, Any], expected: str
) -> None:
    from creditops.batch.chunks import ReasonPolicy

    policy = ReasonPolicy.from_config(BatchConfig().model_copy(update=update))
    assert policy.describe(loaded(family, credit_dataset)) == expected


def test_a_large_forest_is_scored_in_slices_that_bound_its_memory(
    credit_dataset: Dataset,
) -> None:
    import tracemalloc

    from creditops.batch.chunks import NumberedChunk, ReasonPolicy, score_chunk

    trees, depth, rows = 200, 10, 40_000
    pipeline = features.build_pipeline(
        "random_forest", {"n_estimators": trees, "max_depth": depth}, seed=0
    )
    pipeline.fit(credit_dataset.features, credit_dataset.target)
    model = prepare_model(
        ModelRef("m", 1, "run", "source", "random_forest", 0.4, "h", "r"), pipeline
    )
    frame = credit_dataset.features.sample(rows, replace=True, random_state=0)
    chunk = NumberedChunk(1, frame.reset_index(drop=True), ())
    tracemalloc.start()
    try:
        result = score_chunk(model, chunk, reasons=ReasonPolicy(4, "all"), threads=1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.scored is not None
    np.testing.assert_allclose(
        result.scored["probability"], pipeline.predict_proba(frame)[:, 1], rtol=0, atol=1e-9
    )
    # one walk of every row would hold (depth + 1) rows x trees int64 node arrays
    whole_walk = (depth + 1) * rows * trees * 8
    assert peak < whole_walk / 4, f"peak {peak / 2**20:.0f} MiB"
