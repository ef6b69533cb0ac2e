"""Shadow scoring: the challenger scores every applicant, off the request path, never
changing a champion answer; its alias is followed; a broken challenger is counted.

Real ``creditops serve`` processes on loopback over a copy of the test registry;
expected scores come from each version's pipeline loaded and scored in the test.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from creditops import registry
from creditops.data import load_dataset
from creditops.inference.scorer import prepare_model
from creditops.serving.metrics import ServiceMetrics
from creditops.serving.shadow import ShadowScorer
from creditops.serving.shadow_log import read_shadow
from creditops.serving.store import InferenceStore
from independent_scores import expected_scores
from serving_fixtures import Server, ServingRegistry, copy_registry, register_model


def _applicants(n: int, seed: int = 3) -> list[dict[str, Any]]:
    from creditops.config import load_config

    frame = load_dataset(load_config(None).data).features.sample(n, random_state=seed)
    rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _shadow_status(server: Server) -> str:
    return str(httpx.get(f"{server.url}/ready", timeout=5).json().get("shadow", ""))


@pytest.fixture
def shadowed(serving_registry: ServingRegistry, tmp_path: Path) -> ServingRegistry:
    """A private registry whose version 2 holds the challenger alias; shadow on."""
    copy = copy_registry(serving_registry, tmp_path / "registry", shadow=True, poll_seconds=0.3)
    client = registry.connect(copy.settings.mlflow)
    registry.set_alias(client, copy.settings.mlflow.registered_model, registry.CHALLENGER, 2)
    return copy


def test_every_answer_is_the_champions_and_every_applicant_is_shadowed(
    shadowed: ServingRegistry, start_server: Any
) -> None:
    server: Server = start_server(shadowed.settings)
    server.wait_ready()
    _wait(lambda: "version 2" in _shadow_status(server))
    applicants = _applicants(40)
    answer = httpx.post(f"{server.url}/predict", json=applicants, timeout=30).json()
    predictions = answer["predictions"]
    champion = expected_scores(shadowed.settings.mlflow, 1, applicants)
    challenger = expected_scores(shadowed.settings.mlflow, 2, applicants)
    assert [p["model_version"] for p in predictions] == [1] * 40
    np.testing.assert_allclose(
        [p["probability"] for p in predictions], champion.probability, atol=1e-9
    )

    url = shadowed.settings.serve.store_url
    _wait(lambda: len(read_shadow(url)) == 40)
    shadow = read_shadow(url).set_index("request_id")
    ids = [p["request_id"] for p in predictions]
    assert set(shadow.index) == set(ids)  # linked to the champion's rows by request id
    np.testing.assert_allclose(shadow.loc[ids, "probability"], challenger.probability, atol=1e-9)
    assert list(shadow.loc[ids, "decision"]) == challenger.decisions
    assert set(shadow["model_version"]) == {2}
    store = InferenceStore(url)
    try:
        _wait(lambda: len(store.read_frame()) == 40)
        logged = store.read_frame()
    finally:
        store.close()
    assert set(logged["request_id"]) == set(ids) and set(logged["model_version"]) == {1}

    metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
    agreement = np.mean(np.array(champion.decisions) == np.array(challenger.decisions))
    assert _metric(metrics, "creditops_shadow_rows_total") == 40
    assert _metric(metrics, "creditops_shadow_agreement") == pytest.approx(agreement)
    assert _metric(metrics, "creditops_shadow_version") == 2


def test_shadow_follows_the_alias_when_it_moves_and_when_it_is_deleted(
    shadowed: ServingRegistry, start_server: Any
) -> None:
    third = register_model(shadowed.settings, "logreg", {"C": 0.05})
    server: Server = start_server(shadowed.settings)
    server.wait_ready()
    _wait(lambda: "version 2" in _shadow_status(server))
    client = registry.connect(shadowed.settings.mlflow)
    name = shadowed.settings.mlflow.registered_model
    registry.set_alias(client, name, registry.CHALLENGER, third)
    _wait(lambda: f"version {third}" in _shadow_status(server))
    applicants = _applicants(5, seed=11)
    httpx.post(f"{server.url}/predict", json=applicants, timeout=30).raise_for_status()
    url = shadowed.settings.serve.store_url
    _wait(lambda: len(read_shadow(url)) == 5)
    assert set(read_shadow(url)["model_version"]) == {third}

    client.delete_registered_model_alias(name, registry.CHALLENGER)
    _wait(lambda: "no challenger" in _shadow_status(server))
    httpx.post(f"{server.url}/predict", json=_applicants(5, seed=12), timeout=30).raise_for_status()
    time.sleep(1.0)  # the writer flushes every 0.1 s: nothing may have been shadowed since
    assert len(read_shadow(url)) == 5
    metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
    assert _metric(metrics, "creditops_shadow_version") == 0


def test_a_challenger_that_cannot_be_loaded_changes_no_answer(
    shadowed: ServingRegistry, start_server: Any
) -> None:
    client = registry.connect(shadowed.settings.mlflow)
    name = shadowed.settings.mlflow.registered_model
    # a digest that does not match the files: the service must refuse to unpickle it
    client.set_model_version_tag(name, "2", "model_sha256", "0" * 64)
    server: Server = start_server(shadowed.settings)
    server.wait_ready()
    _wait(lambda: "cannot be loaded" in _shadow_status(server))
    applicants = _applicants(10, seed=5)
    answer = httpx.post(f"{server.url}/predict", json=applicants, timeout=30)
    assert answer.status_code == 200
    champion = expected_scores(shadowed.settings.mlflow, 1, applicants)
    probabilities = [p["probability"] for p in answer.json()["predictions"]]
    np.testing.assert_allclose(probabilities, champion.probability, atol=1e-9)
    metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
    assert _metric(metrics, 'creditops_shadow_errors_total{stage="load"}') >= 1
    assert "cannot be loaded" in server.log()  # logged loudly
    assert read_shadow(shadowed.settings.serve.store_url).empty


def _version_two(serving_registry: ServingRegistry) -> tuple[Any, Any]:
    """The test registry's version 2: its reference and the model its artifact holds."""
    settings = serving_registry.settings
    client = registry.connect(settings.mlflow)
    ref = registry.get_version(client, settings.mlflow.registered_model, 2)
    return ref, registry.load_pipeline(client, ref)


def test_a_challenger_that_raises_while_scoring_is_counted_and_skipped(
    serving_registry: ServingRegistry, tmp_path: Path
) -> None:
    from sklearn.pipeline import Pipeline

    from creditops.inference.raw import raw_matrix
    from serving_fixtures import ExplodingClassifier

    ref, pipeline = _version_two(serving_registry)
    pipeline = pipeline.pipeline if hasattr(pipeline, "pipeline") else pipeline
    # the same preprocessing before a classifier that raises: it loads, then fails to score,
    # in the shadow process (where the model is pickled to, like any challenger)
    broken = Pipeline([*pipeline.steps[:-1], ("model", ExplodingClassifier())])
    loaded = prepare_model(ref, broken)
    metrics = ServiceMetrics()
    scorer = ShadowScorer(f"sqlite:///{tmp_path / 'log.db'}", metrics)
    scorer.refresh(lambda _current: (2, loaded))
    applicants = _applicants(3)
    scorer.submit(raw_matrix(applicants), ["a" * 32, "b" * 32, "c" * 32], np.ones(3, dtype=bool))
    scorer.close()
    errors = metrics.registry.get_sample_value("creditops_shadow_errors_total", {"stage": "score"})
    assert errors == 1
    assert read_shadow(f"sqlite:///{tmp_path / 'log.db'}").empty


def test_a_shadow_process_that_dies_is_counted_and_started_again(
    serving_registry: ServingRegistry, tmp_path: Path
) -> None:
    from creditops.inference.raw import raw_matrix

    ref, registered = _version_two(serving_registry)
    loaded = prepare_model(ref, registered)
    metrics = ServiceMetrics()
    url = f"sqlite:///{tmp_path / 'log.db'}"
    scorer = ShadowScorer(url, metrics)
    scorer.refresh(lambda _current: (2, loaded))
    scorer._process.kill()  # out of memory, a crash in native code: the service goes on
    scorer._process.join(10)
    scorer.refresh(lambda current: (2, None if current == 2 else loaded))
    applicants = _applicants(4)
    ids = [f"{k}" * 32 for k in range(4)]
    scorer.submit(raw_matrix(applicants), ids, np.ones(4, dtype=bool))
    scorer.close()
    died = metrics.registry.get_sample_value("creditops_shadow_errors_total", {"stage": "process"})
    assert died == 1
    assert sorted(read_shadow(url)["request_id"]) == sorted(ids)
