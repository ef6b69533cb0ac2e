"""The service over its life: no champion, hot swap under load, shutdown, database failure."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy.exc import OperationalError

from creditops import registry
from creditops.config import Settings
from creditops.serving.app import create_app
from creditops.serving.schemas import EXAMPLE_APPLICANT
from creditops.serving.store import InferenceStore
from serving_fixtures import Server, ServingRegistry, copy_registry, free_port

pytestmark = pytest.mark.slow


def set_champion(settings: Settings, version: int) -> None:
    client = registry.connect(settings.mlflow)
    registry.set_alias(client, settings.mlflow.registered_model, registry.CHAMPION, version)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_no_champion_at_start_then_reload(
    serving_registry: ServingRegistry, tmp_path: Path, start_server: Any
) -> None:
    copy = copy_registry(serving_registry, tmp_path / "registry", poll_seconds=0)
    client = registry.connect(copy.settings.mlflow)
    client.delete_registered_model_alias(copy.settings.mlflow.registered_model, "champion")
    server: Server = start_server(copy.settings)
    server.wait_ready(need_model=False)
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        ready = http.get("/ready")
        assert ready.status_code == 503 and "creditops promote" in ready.json()["detail"]
        refused = http.post("/predict", json=EXAMPLE_APPLICANT)
        assert refused.status_code == 503
        assert refused.json()["detail"].startswith("no champion: run `creditops promote`")
        assert http.get("/model").status_code == 503
        assert http.get("/health").status_code == 200
        assert http.get("/ping").status_code == 404  # as MLflow's scoring server without a model
        invoked = http.post("/invocations", json={"dataframe_records": [EXAMPLE_APPLICANT]})
        assert invoked.status_code == 503
        assert invoked.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
        set_champion(copy.settings, 2)
        reloaded = http.post("/admin/reload", headers={"X-API-Key": "test-key"})
        assert reloaded.json()["changed"] is True and reloaded.json()["model_version"] == 2
        assert http.get("/ping").status_code == 200
        scored = http.post("/predict", json=EXAMPLE_APPLICANT).json()
        assert scored["predictions"][0]["model_version"] == 2


def test_hot_swap_under_load_fails_no_request(
    serving_registry: ServingRegistry, tmp_path: Path, start_server: Any
) -> None:
    copy = copy_registry(serving_registry, tmp_path / "registry", poll_seconds=0.3)
    server: Server = start_server(copy.settings)
    server.wait_ready()
    failures: list[str] = []
    versions: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            while not stop.is_set():
                try:
                    answer = http.post("/predict", json=[EXAMPLE_APPLICANT] * 3)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
                    continue
                versions.extend(p["model_version"] for p in answer.json()["predictions"])

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(versions) > 50)
        set_champion(copy.settings, 2)  # the poller notices within poll_seconds
        wait_for(lambda: versions[-1] == 2 and versions.count(2) > 50)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert set(versions) == {1, 2}
    assert versions[: versions.index(2)] == [1] * versions.index(2)
    with httpx.Client(base_url=server.url) as http:
        model = http.get("/model").json()
    assert (model["version"], model["family"]) == (2, "logreg")


def test_graceful_shutdown_keeps_every_row(
    serving_registry: ServingRegistry, tmp_path: Path, start_server: Any
) -> None:
    store_url = f"sqlite:///{tmp_path}/durable.db"
    copy = copy_registry(
        serving_registry,
        tmp_path / "registry",
        store_url=store_url,
        flush_interval_seconds=30.0,  # nothing is written before the shutdown drains the queue
        flush_max_rows=10_000,
    )
    server: Server = start_server(copy.settings)
    server.wait_ready()
    sent = 0
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        for i in range(120):
            rows = [EXAMPLE_APPLICANT] * (1 + i % 4)
            route = "/predict" if i % 2 else "/invocations"
            body: Any = rows if route == "/predict" else {"dataframe_records": rows}
            answer = http.post(route, json=body)
            assert answer.status_code == 200, (answer.text, server.log())
            sent += len(rows)
    code = server.terminate()
    assert code == 0, (code, server.log())  # a supervisor reads 143 (killed by SIGTERM) as a crash
    store = InferenceStore(store_url)
    try:
        assert store.count() == sent, server.log()
    finally:
        store.close()
    assert "inference log drained" in server.log(), server.log()


class SwitchableStore(InferenceStore):
    """A real store whose writes fail, as a dropped connection would, while ``broken``."""

    broken = False

    def write_rows(self, rows: Any) -> None:
        if self.broken:
            raise OperationalError("INSERT INTO inferences", {}, Exception("connection lost"))
        super().write_rows(rows)


@contextmanager
def in_process_server(app: Any) -> Iterator[str]:
    """A real uvicorn server on a loopback port, in a thread of this process."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


def test_database_failure_keeps_answering_and_retries(
    serving_registry: ServingRegistry, tmp_path: Path
) -> None:
    store_url = f"sqlite:///{tmp_path}/flaky.db"
    copy = copy_registry(serving_registry, tmp_path / "registry", store_url=store_url)
    store = SwitchableStore(store_url)
    app = create_app(copy.settings.serve, copy.settings.mlflow, store=store)
    service = app.state.service
    with in_process_server(app) as url, httpx.Client(base_url=url, timeout=30.0) as http:
        wait_for(lambda: http.get("/ready").status_code == 200)
        store.broken = True
        for _ in range(30):
            assert http.post("/predict", json=EXAMPLE_APPLICANT).status_code == 200
        wait_for(lambda: service.writer.failed_writes >= 2)
        assert store.count() == 0
        metrics = http.get("/metrics").text
        assert "creditops_inference_log_write_failures_total" in metrics
        store.broken = False
        wait_for(lambda: store.count() == 30)
    assert service.writer.pending == 0


def test_a_start_with_the_gc_paused_turns_it_back_on(
    serving_registry: ServingRegistry, tmp_path: Path
) -> None:
    copy = copy_registry(serving_registry, tmp_path / "registry", poll_seconds=0)
    app = create_app(copy.settings.serve, copy.settings.mlflow, gc_paused=True)
    gc.disable()
    try:
        with in_process_server(app) as url, httpx.Client(base_url=url, timeout=30.0) as http:
            assert gc.isenabled()
            assert gc.get_freeze_count() > 0
            assert http.post("/predict", json=EXAMPLE_APPLICANT).status_code == 200
    finally:
        gc.enable()


def test_serve_gives_the_gc_back_when_the_store_is_unusable(tmp_path: Path) -> None:
    from creditops.errors import StoreError
    from creditops.serving.server import serve
    from support import make_settings

    url = "postgresql+psycopg://creditops@127.0.0.1:9/nowhere"
    settings = make_settings(tmp_path, serve={"store_url": url})
    assert gc.isenabled()
    with pytest.raises(StoreError):
        serve(settings.serve, settings.mlflow)
    assert gc.isenabled()
