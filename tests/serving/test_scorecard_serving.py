"""A scorecard champion served over real HTTP: the pipeline's PD, reasons as points lost."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from creditops import registry, scorecard
from creditops.batch.run import score_file
from creditops.data import Dataset
from creditops.serving.app import create_app
from serving_fixtures import InProcessServer, register_model, settings_for, wait_until

pytestmark = pytest.mark.slow

WEAK = {
    "Seniority": 0,
    "Home": "rent",
    "Time": 60,
    "Age": 22,
    "Marital": "single",
    "Records": "yes",
    "Job": "partime",
    "Expenses": 90,
    "Income": 60.0,
    "Assets": 0.0,
    "Debt": 2000.0,
    "Amount": 2000,
    "Price": 2100,
}


def test_a_scorecard_champion_is_served_and_batch_scored_with_its_points_lost(
    tmp_path: Path, credit_dataset: Dataset
) -> None:
    settings = settings_for(tmp_path, store_url=f"sqlite:///{tmp_path}/inferences.db")
    version = register_model(settings, "scorecard", {"max_n_bins": 6})
    client = registry.connect(settings.mlflow)
    name = settings.mlflow.registered_model
    registry.set_alias(client, name, registry.CHAMPION, version)
    model = registry.load_pipeline(client, registry.resolve_alias(client, name))
    frame = pd.DataFrame([WEAK])
    expected = float(model.predict_proba(frame)[0, 1])
    points = scorecard.applicant_points(model, frame)
    card = scorecard.find_scorecard(model)
    assert points is not None and card is not None
    app = create_app(settings.serve, settings.mlflow)
    with InProcessServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        wait_until(lambda: http.get("/ready").status_code == 200)
        answer = http.post("/predict", json=WEAK)
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["predictions"]
    assert prediction["model_version"] == version
    assert prediction["probability"] == pytest.approx(expected, abs=1e-12)
    assert prediction["decision"] == "decline" and prediction["reasons"]
    # the reasons are the characteristics furthest below their best bin
    lost = card.points_lost(model[:-1].transform(frame))[0]
    by_input = dict(zip(card.inputs_, lost, strict=True))
    ranked = sorted((v, k) for k, v in by_input.items() if v > 0)[::-1]
    served = [r["feature"] for r in prediction["reasons"]]
    assert served[0] == ranked[0][1]
    assert all(by_input[f] > 0 for f in served)
    assert not {"Age", "Marital"} & set(served)
    assert np.isfinite(points).all()
    # batch scoring: the same PD, reasons for the declines
    source = tmp_path / "in.csv"
    batch = pd.concat([frame, credit_dataset.features.head(300)], ignore_index=True)
    batch.to_csv(source, index=False)
    score_file(settings.batch, settings.mlflow, source, tmp_path / "out.csv", show_progress=False)
    scored = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    np.testing.assert_allclose(
        scored["probability"], model.predict_proba(batch)[:, 1], rtol=0, atol=1e-9
    )
    declined = scored["decision"] == "decline"
    assert declined.any() and scored.loc[declined, "reasons"].str.len().gt(0).all()
