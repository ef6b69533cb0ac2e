"""One method everywhere: the service, batch scoring and the Dask path give the same reasons."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from creditops.batch.run import score_file
from creditops.data import Dataset
from creditops.reason_codes import DEFAULT_PROTECTED, REASON_CODES
from serving_fixtures import Server, ServingRegistry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(
    serving_registry: ServingRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    running = Server(serving_registry.settings, tmp_path_factory.mktemp("serve"))
    running.wait_ready()
    yield running
    running.terminate()


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def test_the_service_and_batch_scoring_give_the_same_reasons(
    server: Server, serving_registry: ServingRegistry, credit_dataset: Dataset, tmp_path: Path
) -> None:
    frame = credit_dataset.features.sample(800, random_state=11).reset_index(drop=True)
    # one request per applicant, as the service is mostly used, then the same applicants
    # in one list: the rows scored together must not change anyone's reasons
    with httpx.Client(base_url=server.url, timeout=60) as http:
        one_by_one = [
            http.post("/predict", json=r).json()["predictions"][0] for r in records(frame[:80])
        ]
        together = http.post("/predict", json=records(frame)).json()["predictions"]
    assert [p["reasons"] for p in one_by_one] == [p["reasons"] for p in together[:80]]
    source = tmp_path / "book.parquet"
    frame.to_parquet(source, index=False)
    settings = serving_registry.settings
    outputs = {}
    for engine, address in (("local", ""), ("dask", "local:1")):
        output = tmp_path / f"{engine}.csv"
        score_file(
            settings.batch,
            settings.mlflow,
            source,
            output,
            show_progress=False,
            dask_scheduler=address,
        )
        outputs[engine] = pd.read_csv(output, keep_default_na=False)
    declined = [p["decision"] == "decline" for p in together]
    assert 20 < sum(declined) < len(frame)
    for engine, scored in outputs.items():
        assert list(scored["decision"]) == [p["decision"] for p in together], engine
        batch = [json.loads(text) if text else [] for text in scored["reasons"]]
        assert batch == [p["reasons"] for p in together], engine


def test_a_10000_applicant_request_gives_reasons_for_every_decline(
    server: Server, credit_dataset: Dataset
) -> None:
    frame = credit_dataset.features.sample(10_000, replace=True, random_state=2)
    with httpx.Client(base_url=server.url, timeout=120) as http:
        answer = http.post("/predict", json=records(frame))
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert len(predictions) == 10_000
    declines = [p for p in predictions if p["decision"] == "decline"]
    assert len(declines) > 1000
    for p in predictions:
        if p["decision"] == "approve":
            assert p["reasons"] == []
            continue
        assert 1 <= len(p["reasons"]) <= 4
        for r in p["reasons"]:
            assert r == REASON_CODES[r["feature"]].as_reason(r["value"])
            assert r["feature"] not in DEFAULT_PROTECTED
