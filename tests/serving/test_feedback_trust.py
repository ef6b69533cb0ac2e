"""``POST /feedback`` is a trust boundary: its own key, the key recorded, bogus ids cheap.

A real service (in this process, on a loopback port) over a real SQLite
inference log and a real MLflow registry.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from creditops import schema
from creditops.config import Settings
from creditops.serving.app import create_app
from creditops.serving.request_ids import new_request_ids
from creditops.serving.schemas import EXAMPLE_APPLICANT
from creditops.serving.store import InferenceStore
from serving_fixtures import (
    FEEDBACK_HEADERS,
    SERVE_SECTION,
    InProcessServer,
    ServingRegistry,
    copy_registry,
    wait_until,
)

pytestmark = pytest.mark.slow

FEEDBACK_KEY = SERVE_SECTION["feedback_api_key"]
ADMIN_KEY = SERVE_SECTION["admin_api_key"]


@pytest.fixture(scope="module")
def registry_copy(
    serving_registry: ServingRegistry, tmp_path_factory: pytest.TempPathFactory
) -> ServingRegistry:
    root = tmp_path_factory.mktemp("feedback")
    return copy_registry(
        serving_registry, root, poll_seconds=0, store_url=f"sqlite:///{root}/inferences.db"
    )


@pytest.fixture(scope="module")
def live(registry_copy: ServingRegistry) -> Iterator[InProcessServer]:
    settings = registry_copy.settings
    app = create_app(settings.serve, settings.mlflow)
    with InProcessServer(app) as server:
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            wait_until(lambda: http.get("/ready").status_code == 200)
        yield server


@pytest.fixture(scope="module")
def http(live: InProcessServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30.0) as client:
        yield client


def scored_id(http: httpx.Client) -> str:
    response = http.post("/predict", json=EXAMPLE_APPLICANT)
    assert response.status_code == 200, response.text
    return str(response.json()["predictions"][0]["request_id"])


def stored_source(settings: Settings, request_id: str) -> tuple[str | None, str | None] | None:
    """(outcome, outcome_source) of one row (None: not stored), read with the test's own SQL."""
    engine = sa.create_engine(settings.serve.store_url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sa.text("SELECT outcome, outcome_source FROM inferences WHERE request_id = :id"),
                {"id": request_id},
            ).first()
    finally:
        engine.dispose()
    return None if row is None else (row[0], row[1])


def test_feedback_without_its_key_is_refused_and_changes_nothing(
    http: httpx.Client, registry_copy: ServingRegistry
) -> None:
    request_id = scored_id(http)
    body = {"request_id": request_id, "outcome": "bad"}
    missing = http.post("/feedback", json=body)
    assert missing.status_code == 401
    assert "X-Feedback-Key" in missing.json()["detail"]
    wrong = http.post("/feedback", json=body, headers={"X-Feedback-Key": "guess"})
    assert wrong.status_code == 403
    assert "X-Feedback-Key" in wrong.json()["detail"]
    # the admin key is not the feedback key
    admin = http.post("/feedback", json=body, headers={"X-Feedback-Key": ADMIN_KEY})
    assert admin.status_code == 403
    bearer = http.post("/feedback", json=body, headers={"Authorization": "Bearer guess"})
    assert bearer.status_code == 403
    wait_until(lambda: stored_source(registry_copy.settings, request_id) is not None)
    assert stored_source(registry_copy.settings, request_id) == (None, None)


def test_feedback_with_the_key_records_which_key_posted_it(
    http: httpx.Client, registry_copy: ServingRegistry
) -> None:
    key_id = hashlib.sha256(FEEDBACK_KEY.encode()).hexdigest()[:8]
    first, second = scored_id(http), scored_id(http)
    by_header = http.post(
        "/feedback", json={"request_id": first, "outcome": "bad"}, headers=FEEDBACK_HEADERS
    )
    assert by_header.status_code == 200, by_header.text
    by_bearer = http.post(
        "/feedback",
        json={"request_id": second, "outcome": "good"},
        headers={"Authorization": f"Bearer {FEEDBACK_KEY}"},
    )
    assert by_bearer.status_code == 200, by_bearer.text
    assert stored_source(registry_copy.settings, first) == ("bad", key_id)
    assert stored_source(registry_copy.settings, second) == ("good", key_id)


def test_feedback_is_refused_while_no_key_is_configured(
    registry_copy: ServingRegistry, tmp_path: Path
) -> None:
    settings = registry_copy.settings
    serve = settings.serve.model_copy(
        update={"feedback_api_key": SecretStr(""), "store_url": f"sqlite:///{tmp_path}/i.db"}
    )
    app = create_app(serve, settings.mlflow)
    with InProcessServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        refused = client.post(
            "/feedback",
            json={"request_id": "a" * 32, "outcome": "good"},
            headers=FEEDBACK_HEADERS,
        )
    assert refused.status_code == 503
    assert "feedback_api_key" in refused.json()["detail"]


def test_a_row_another_worker_still_holds_is_awaited_not_refused(
    http: httpx.Client, registry_copy: ServingRegistry
) -> None:
    # an id issued just now that no process of this service has submitted: another
    # worker's writer holds it and stores it 0.4 s later
    (request_id,) = new_request_ids(1)
    row = {
        "request_id": request_id,
        "batch_id": "b" * 32,
        "created_at": datetime.now(UTC),
        "model_name": "elsewhere",
        "model_version": 1,
        "probability": 0.2,
        "decision": "approve",
        "threshold": 0.5,
        "latency_ms": 1.0,
    }
    store = InferenceStore(registry_copy.settings.serve.store_url)
    writer = threading.Timer(0.4, store.write_rows, args=([row],))
    writer.start()
    try:
        answer = http.post(
            "/feedback",
            json={"request_id": request_id, "outcome": "good"},
            headers=FEEDBACK_HEADERS,
        )
    finally:
        writer.join()
        store.close()
    assert answer.status_code == 200, answer.text


def test_an_old_table_gains_the_outcome_source_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    engine = sa.create_engine(url)
    with engine.begin() as connection:  # the table as created before outcome_source existed
        connection.execute(
            sa.text(
                "CREATE TABLE inferences (request_id VARCHAR(32) PRIMARY KEY, "
                "batch_id VARCHAR(32) NOT NULL, created_at DATETIME NOT NULL, "
                "model_name VARCHAR(200) NOT NULL, model_version INTEGER NOT NULL, "
                + ", ".join(
                    f"{name} {'VARCHAR(32)' if name in schema.CATEGORICAL else 'FLOAT'}"
                    for name in schema.FEATURES
                )
                + ", probability FLOAT NOT NULL, decision VARCHAR(16) NOT NULL, "
                "threshold FLOAT NOT NULL, latency_ms FLOAT NOT NULL, outcome VARCHAR(8), "
                "outcome_at DATETIME)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO inferences (request_id, batch_id, created_at, model_name, "
                "model_version, probability, decision, threshold, latency_ms) VALUES "
                "(:id, 'b', '2024-01-01 00:00:00', 'm', 1, 0.3, 'approve', 0.5, 1.0)"
            ),
            {"id": "c" * 32},
        )
    engine.dispose()
    store = InferenceStore(url)
    try:
        store.create()
        store.create()  # a second worker starting on the same file
        assert store.record_outcome("c" * 32, "bad", source="1234abcd").value == "recorded"
    finally:
        store.close()
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        row = connection.execute(sa.text("SELECT outcome, outcome_source FROM inferences")).one()
    engine.dispose()
    assert tuple(row) == ("bad", "1234abcd")


async def _peak_borrowed(service: Any, stop: threading.Event, peaks: dict[str, int]) -> None:
    """On the server's loop: the most tokens each thread limiter lent at once."""
    limiters = {
        "default": anyio.to_thread.current_default_thread_limiter(),
        "scoring": service.scoring_limiter,
        "feedback": service.feedback_limiter,
    }
    peaks.update({name: 0 for name in limiters})
    peaks.update({f"{name}_total": int(lim.total_tokens) for name, lim in limiters.items()})
    while not stop.is_set():
        for name, limiter in limiters.items():
            peaks[name] = max(peaks[name], int(limiter.borrowed_tokens))
        await asyncio.sleep(0.001)


def _predict_p50(http: httpx.Client, n: int) -> float:
    latencies = []
    for _ in range(n):
        started = time.perf_counter()
        assert http.post("/predict", json=EXAMPLE_APPLICANT).status_code == 200
        latencies.append(time.perf_counter() - started)
    return statistics.median(latencies) * 1000.0


async def _bogus_feedback(url: str, ids: list[str]) -> list[tuple[int, float]]:
    """Post every id at once; (status, seconds to answer) of each."""
    limits = httpx.Limits(max_connections=len(ids) + 10)
    async with httpx.AsyncClient(base_url=url, timeout=60.0, limits=limits) as client:

        async def one(request_id: str) -> tuple[int, float]:
            started = time.perf_counter()
            response = await client.post(
                "/feedback",
                json={"request_id": request_id, "outcome": "bad"},
                headers=FEEDBACK_HEADERS,
            )
            return response.status_code, time.perf_counter() - started

        return await asyncio.gather(*(one(i) for i in ids))


def test_bogus_ids_are_cheap_and_never_exhaust_the_threads_scoring_uses(
    live: InProcessServer, http: httpx.Client
) -> None:
    service = live.app.state.service
    quiet_p50 = _predict_p50(http, 100)
    random_ids = [os.urandom(16).hex() for _ in range(200)]
    # ids claiming to be issued just now: they are looked for a little longer, on the loop
    recent_ids = new_request_ids(40)
    stop, peaks = threading.Event(), dict[str, int]()
    sampler = live.run(_peak_borrowed(service, stop, peaks))
    answers: list[tuple[int, float]] = []
    storm = threading.Thread(
        target=lambda: answers.extend(
            asyncio.run(_bogus_feedback(live.url, random_ids + recent_ids))
        )
    )
    storm.start()
    loaded_p50 = _predict_p50(http, 100)
    storm.join(120)
    stop.set()
    sampler.result(10)
    print(f"/predict p50: {quiet_p50:.2f} ms quiet, {loaded_p50:.2f} ms under 240 bogus feedbacks")
    print(f"thread limiters, most tokens lent at once: {peaks}")
    assert len(answers) == 240
    assert {status for status, _ in answers} == {404}
    random_seconds = [seconds for _, seconds in answers[:200]]
    recent_seconds = [seconds for _, seconds in answers[200:]]
    print(
        f"404 in: random ids median {statistics.median(random_seconds):.2f} s, "
        f"max {max(random_seconds):.2f} s; recent-looking ids max {max(recent_seconds):.2f} s"
    )
    # generous bounds (a loaded machine): a random id is one lookup, while a pool thread
    # sleeping ~1.25 s per id answered the last of 200 after 6 s or more
    assert max(random_seconds) < 5.0, sorted(random_seconds)[-5:]
    assert max(recent_seconds) < 6.0, sorted(recent_seconds)[-5:]
    assert peaks["default"] < peaks["default_total"]
    assert peaks["scoring"] < peaks["scoring_total"]
    assert peaks["feedback"] <= peaks["feedback_total"]
