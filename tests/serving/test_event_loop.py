"""The service's event loop only reads requests and sends answers.

Scoring, contributions (SHAP), the answer's reasons, log-row building and the
garbage collection after a model swap all run in worker threads: a watchdog
records the thread each of them runs in and compares it with the thread of
the real server's event loop (uvicorn in this process, on a loopback port).
"""

from __future__ import annotations

import gc
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from creditops import registry
from creditops.inference.scorer import LoadedModel
from creditops.serving.app import create_app
from creditops.serving.routes import scoring
from creditops.serving.schemas import EXAMPLE_APPLICANT
from serving_fixtures import (
    SERVE_SECTION,
    InProcessServer,
    ServingRegistry,
    copy_registry,
    wait_until,
)

pytestmark = pytest.mark.slow


class Watchdog:
    """Records the threads that ran each watched function."""

    def __init__(self) -> None:
        self.threads: dict[str, list[int]] = defaultdict(list)
        self._lock = threading.Lock()

    def watch(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` as is, noting the calling thread first."""

        def watched(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.threads[name].append(threading.get_ident())
            return function(*args, **kwargs)

        return watched


@pytest.fixture
def watchdog(monkeypatch: pytest.MonkeyPatch) -> Watchdog:
    dog = Watchdog()
    monkeypatch.setattr(LoadedModel, "score", dog.watch("score", LoadedModel.score))
    monkeypatch.setattr(
        LoadedModel, "_contributions", dog.watch("contributions", LoadedModel._contributions)
    )
    monkeypatch.setattr(scoring, "_reasons", dog.watch("reasons", scoring._reasons))
    monkeypatch.setattr(scoring.Scored, "log_rows", dog.watch("log_rows", scoring.Scored.log_rows))
    monkeypatch.setattr(gc, "collect", dog.watch("gc.collect", gc.collect))
    return dog


def test_scoring_shap_log_rows_and_gc_never_run_on_the_event_loop(
    serving_registry: ServingRegistry, tmp_path: Path, watchdog: Watchdog
) -> None:
    copy = copy_registry(
        serving_registry,
        tmp_path / "registry",
        poll_seconds=0,
        store_url=f"sqlite:///{tmp_path}/inferences.db",
    )
    settings = copy.settings
    app = create_app(settings.serve, settings.mlflow)
    service = app.state.service
    with InProcessServer(app) as server, httpx.Client(base_url=server.url, timeout=60) as http:
        wait_until(lambda: http.get("/ready").status_code == 200)
        # small requests (once scored inline), a big one, both routes, with reasons
        for body in (EXAMPLE_APPLICANT, [EXAMPLE_APPLICANT] * 3, [EXAMPLE_APPLICANT] * 600):
            assert http.post("/predict", json=body).status_code == 200
        mlflow_body = {"dataframe_records": [EXAMPLE_APPLICANT]}
        assert http.post("/invocations", json=mlflow_body).status_code == 200
        wait_until(lambda: len(watchdog.threads["log_rows"]) >= 4)
        # a model swap: the heap is collected and frozen for the new champion
        client = registry.connect(settings.mlflow)
        registry.set_alias(client, settings.mlflow.registered_model, registry.CHAMPION, 2)
        headers = {"X-API-Key": SERVE_SECTION["admin_api_key"]}
        reloaded = http.post("/admin/reload", headers=headers)
        assert reloaded.status_code == 200 and reloaded.json()["changed"] is True, reloaded.text
        assert http.post("/predict", json=EXAMPLE_APPLICANT).status_code == 200
        wait_until(lambda: len(watchdog.threads["log_rows"]) >= 5)
        loop_thread = server.loop_thread.ident
    assert service.model is not None and service.model.ref.version == 2
    for name in ("score", "contributions", "reasons", "log_rows", "gc.collect"):
        assert watchdog.threads[name], f"{name} never ran: the watchdog watches nothing"
        on_loop = watchdog.threads[name].count(loop_thread or -1)
        assert on_loop == 0, f"{name} ran {on_loop} time(s) on the event loop's thread"
