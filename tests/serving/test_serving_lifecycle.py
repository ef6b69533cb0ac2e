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
import numpy as np
import pytest
import uvicorn
from sqlalchemy.exc import OperationalError

from creditops import registry
from creditops.config import Settings
from creditops.serving.app import create_app
from creditops.serving.schemas import EXAMPLE_APPLICANT
from creditops.serving.store import InferenceStore
from independent_scores import expected_scores
from serving_fixtures import Server, ServingRegistry, copy_registry, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _gc_as_it_was() -> Iterator[None]:
    """In-process services freeze the heap (and may turn the GC off): undo it for the next test."""
    was_enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if was_enabled:
        gc.enable()


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
    rows = [
        EXAMPLE_APPLICANT,
        {**EXAMPLE_APPLICANT, "Records": "yes", "Income": None, "Debt": None},
        {**EXAMPLE_APPLICANT, "Age": 58, "Amount": 1500, "Price": 1600},
    ]
    # each version's own answer, scored here from its registered pipeline
    expected = {v: expected_scores(copy.settings.mlflow, v, rows) for v in (1, 2)}
    assert np.abs(expected[1].probability - expected[2].probability).max() > 1e-3
    server: Server = start_server(copy.settings)
    server.wait_ready()
    failures: list[str] = []
    seen: list[list[int]] = [[] for _ in range(4)]  # each thread's answers' versions, in order
    stop = threading.Event()

    def check(predictions: list[dict[str, Any]]) -> int | str:
        """The one version that answered, or what is wrong with the answer."""
        versions = {p["model_version"] for p in predictions}
        if len(versions) != 1 or not versions <= set(expected):
            return f"one answer, versions {sorted(versions)}"
        version = versions.pop()
        got = np.array([p["probability"] for p in predictions])
        want = expected[version]
        if not np.allclose(got, want.probability, rtol=0, atol=1e-6):
            return f"v{version} answered {got.tolist()}, its pipeline {want.probability.tolist()}"
        decisions = [p["decision"] for p in predictions]
        if decisions != want.decisions:
            return f"v{version} decided {decisions}, not {want.decisions}"
        return int(version)

    def load(mine: list[int]) -> None:
        with httpx.Client(base_url=server.url, timeout=30.0) as http:
            while not stop.is_set():
                try:
                    answer = http.post("/predict", json=rows)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                    continue
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
                    continue
                verdict = check(answer.json()["predictions"])
                if isinstance(verdict, str):
                    failures.append(verdict)
                else:
                    mine.append(verdict)

    def answered(version: int) -> int:
        return sum(mine.count(version) for mine in seen)

    threads = [threading.Thread(target=load, args=(mine,)) for mine in seen]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: bool(failures) or answered(1) > 50)
        set_champion(copy.settings, 2)  # the poller notices within poll_seconds
        wait_for(
            lambda: (
                bool(failures)
                or (all(mine and mine[-1] == 2 for mine in seen) and answered(2) > 50)
            )
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert failures == []
    assert answered(1) > 50 and answered(2) > 50
    for mine in seen:  # a client that got version 2 never gets version 1 again
        assert mine == sorted(mine), mine
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
    gc.unfreeze()  # a heap an earlier test froze would make the freeze count below prove nothing
    gc.disable()  # as `creditops serve` does before it builds the app
    try:
        app = create_app(copy.settings.serve, copy.settings.mlflow, gc_paused=True)
        assert not gc.isenabled() and gc.get_freeze_count() == 0
        with in_process_server(app) as url, httpx.Client(base_url=url, timeout=30.0) as http:
            assert gc.isenabled(), "the started service left the cyclic GC off"
            assert gc.get_freeze_count() > 0, "the start did not freeze what it built"
            answer = http.post("/predict", json=EXAMPLE_APPLICANT)
            assert answer.status_code == 200
            assert answer.json()["predictions"][0]["model_version"] == 1
    finally:
        gc.unfreeze()  # the rest of the session must collect as usual
        gc.enable()
    assert gc.isenabled() and gc.get_freeze_count() == 0


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
