"""The inference log on PostgreSQL, written by several service processes at once.

Real ``creditops serve`` processes on loopback ports, a real PostgreSQL started
by ``scripts/postgres.sh`` (``make test`` / ``.ci/run`` start it), the served
champion from the shared serving registry (SQLite MLflow store).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from creditops import schema
from creditops.config import Settings
from creditops.serving.store import InferenceStore
from postgres_fixtures import PrivateCluster
from serving_fixtures import FEEDBACK_HEADERS, Server, ServingRegistry, write_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

APPLICANT: dict[str, Any] = {**schema.EXAMPLE_APPLICANT, "Job": "fixed"}


def with_store(settings: Settings, url: str) -> Settings:
    return settings.model_copy(
        update={"serve": settings.serve.model_copy(update={"store_url": url})}
    )


def applicant(i: int) -> dict[str, Any]:
    return {**APPLICANT, "Age": 20 + i % 50, "Amount": 500 + i}


def post_many(urls: list[str], n: int, concurrency: int = 8) -> list[tuple[str, str]]:
    """``n`` one-applicant requests spread over ``urls``; (server url, request id) of each."""

    def one(i: int) -> tuple[str, str]:
        url = urls[i % len(urls)]
        response = client.post(f"{url}/predict", json=applicant(i), params={"reasons": "false"})
        assert response.status_code == 200, response.text
        return url, response.json()["predictions"][0]["request_id"]

    with httpx.Client(timeout=30.0) as client, ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(n)))


def wait_for_rows(store: InferenceStore, expected: int, timeout: float = 90.0) -> int:
    """Poll until the log holds ``expected`` rows (the writers flush in the background)."""
    deadline = time.monotonic() + timeout
    count = store.count()
    while count < expected and time.monotonic() < deadline:
        time.sleep(0.2)
        count = store.count()
    return count


def request_ids(store: InferenceStore) -> list[str]:
    from creditops.serving.store import inferences

    with store.engine.connect() as connection:
        return [row[0] for row in connection.execute(sa.select(inferences.c.request_id))]


def started(start_server: Callable[..., Server], settings: Settings, workers: int = 1) -> Server:
    server = start_server(settings, workers=workers)
    server.wait_ready()
    return server


def test_two_services_write_exactly_one_row_per_request(
    serving_registry: ServingRegistry,
    postgres_database: str,
    start_server: Callable[..., Server],
) -> None:
    settings = with_store(serving_registry.settings, postgres_database)
    # one service with two uvicorn workers and one with one: three processes, one table
    first = started(start_server, settings, workers=2)
    second = started(start_server, settings)
    n = 600
    sent = post_many([first.url, second.url], n, concurrency=12)
    store = InferenceStore(postgres_database)
    try:
        assert wait_for_rows(store, n) == n
        stored = request_ids(store)
        assert len(stored) == n
        assert len(set(stored)) == n
        assert set(stored) == {request_id for _, request_id in sent}
        # each outcome goes to the service that did NOT score the request
        other = {first.url: second.url, second.url: first.url}
        with httpx.Client(timeout=30.0) as client:
            for i, (url, request_id) in enumerate(sent):
                outcome = "bad" if i % 3 == 0 else "good"
                response = client.post(
                    f"{other[url]}/feedback",
                    json={"request_id": request_id, "outcome": outcome},
                    headers=FEEDBACK_HEADERS,
                )
                assert response.status_code == 200, response.text
        frame = store.read_frame()
        assert frame["outcome"].notna().sum() == n
        assert (frame["outcome"] == "bad").sum() == len(range(0, n, 3))
    finally:
        store.close()


def test_feedback_right_after_scoring_reaches_the_row_on_any_worker(
    serving_registry: ServingRegistry,
    postgres_database: str,
    start_server: Callable[..., Server],
) -> None:
    settings = with_store(serving_registry.settings, postgres_database)
    first = started(start_server, settings)
    second = started(start_server, settings)
    with httpx.Client(timeout=30.0) as client:
        for i in range(20):
            scored_by, asked = (first, second) if i % 2 else (second, first)
            response = client.post(f"{scored_by.url}/predict", json=applicant(i))
            request_id = response.json()["predictions"][0]["request_id"]
            feedback = client.post(
                f"{asked.url}/feedback",
                json={"request_id": request_id, "outcome": "good"},
                headers=FEEDBACK_HEADERS,
            )
            assert feedback.status_code == 200, feedback.text


def test_service_refuses_to_start_when_postgres_is_down(tmp_path: Path) -> None:
    url = "postgresql+psycopg://creditops@127.0.0.1:9/nowhere"
    from support import make_settings

    config = write_config(make_settings(tmp_path, serve={"store_url": url}), tmp_path / "c.toml")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "creditops"), "--config", str(config), "serve"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, done.stderr
    assert "postgresql+psycopg://creditops@127.0.0.1:9/nowhere" in lines[0]
    assert "unreachable" in lines[0]
    assert "Traceback" not in done.stderr


def metric(server: Server, name: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10.0).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_postgres_restart_loses_no_log_row(
    serving_registry: ServingRegistry,
    private_postgres: PrivateCluster,
    start_server: Callable[..., Server],
) -> None:
    settings = with_store(serving_registry.settings, private_postgres.url)
    server = started(start_server, settings)
    store = InferenceStore(private_postgres.url)
    try:
        before = post_many([server.url], 100)
        assert wait_for_rows(store, 100) == 100
        store.close()
        private_postgres.pause()
        # the database is down: requests are still answered, rows wait in the writer
        during = post_many([server.url], 150)
        deadline = time.monotonic() + 30
        while metric(server, "creditops_inference_log_write_failures_total") < 1:
            assert time.monotonic() < deadline, "the writer never noticed the database was down"
            time.sleep(0.2)
        private_postgres.resume()
        after = post_many([server.url], 50)
        total = len(before) + len(during) + len(after)
        assert wait_for_rows(store, total) == total
        stored = request_ids(store)
        assert len(stored) == total
        assert set(stored) == {request_id for _, request_id in [*before, *during, *after]}
    finally:
        store.close()
    assert server.terminate() in (0, -15)  # uvicorn re-raises SIGTERM after a clean stop
