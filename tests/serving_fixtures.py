"""Fixtures and helpers for the scoring-service tests.

A real MLflow registry (SQLite, in a temporary folder) with two versions of
the model: version 1 (XGBoost) is champion, version 2 (logistic regression)
waits to be promoted by the hot-swap tests, which work on a copy of the
registry database. Servers are real ``creditops serve`` processes on a free
loopback port.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from creditops.config import Settings
from support import make_settings

SERVE_SECTION: dict[str, Any] = {
    "poll_seconds": 0.5,
    "admin_api_key": "test-key",
    "feedback_api_key": "feedback-test-key",
    "flush_interval_seconds": 0.05,
    "max_batch_rows": 10_000,
}


@dataclass(frozen=True)
class ServingRegistry:
    """A registry root, the settings that point at it, and its versions' families."""

    root: Path
    settings: Settings
    families: dict[int, str]


def register_model(settings: Settings, family: str, params: dict[str, Any]) -> int:
    """Fit ``family`` on the whole dataset, log it and register it; returns the version."""
    from creditops import features, registry
    from creditops.data import load_dataset

    dataset = load_dataset(settings.data)
    pipeline = features.build_pipeline(family, params, seed=0).fit(dataset.features, dataset.target)
    client = registry.connect(settings.mlflow)
    ref = registry.register_fitted(
        client,
        settings.mlflow.registered_model,
        pipeline,
        family=family,
        threshold=0.35,
        data_hash=dataset.data_hash,
        run_name=f"serving-test-{family}",
        extra_tags={"test_roc_auc": "0.8"},
    )
    return ref.version


def settings_for(root: Path, **serve: Any) -> Settings:
    return make_settings(root, serve={**SERVE_SECTION, **serve})


@pytest.fixture(scope="session")
def serving_registry(tmp_path_factory: pytest.TempPathFactory) -> ServingRegistry:
    """Two registered versions; version 1 (xgboost) is champion. Do not move its aliases."""
    from creditops import registry

    root = tmp_path_factory.mktemp("serving-registry")
    settings = settings_for(root)
    first = register_model(settings, "xgboost", {"n_estimators": 60, "max_depth": 3})
    second = register_model(settings, "logreg", {"C": 0.5})
    client = registry.connect(settings.mlflow)
    registry.set_alias(client, settings.mlflow.registered_model, registry.CHAMPION, first)
    return ServingRegistry(root, settings, {first: "xgboost", second: "logreg"})


def copy_registry(source: ServingRegistry, target: Path, **serve: Any) -> ServingRegistry:
    """A private copy of the registry database (artifacts are shared, read-only)."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(source.root / "mlflow.db", target / "mlflow.db")
    settings = make_settings(
        target,
        mlflow={"artifact_location": str(source.root / "artifacts")},
        serve={**SERVE_SECTION, **serve},
    )
    return ServingRegistry(target, settings, source.families)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(settings: Settings, path: Path) -> Path:
    """The settings as a TOML file (the sections the service reads)."""
    lines = []
    for section in ("mlflow", "serve", "logging"):
        lines.append(f"[{section}]")
        model = getattr(settings, section)
        values = model.model_dump(mode="json")
        for name in values:  # a secret's real value, not its "**********" dump
            if isinstance(getattr(model, name), SecretStr):
                values[name] = getattr(model, name).get_secret_value()
        for key, value in values.items():
            lines.append(f"{key} = {json.dumps(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path


class Server:
    """A ``creditops serve`` subprocess on a free loopback port."""

    def __init__(self, settings: Settings, workdir: Path, *, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = write_config(settings, workdir / "creditops.toml")
        self.log_path = workdir / f"server-{self.port}.log"
        command = [
            str(Path(sys.executable).parent / "creditops"),
            "--config",
            str(config),
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
        ]
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CREDITOPS_")}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_ready(self, timeout: float = 60.0, *, need_model: bool = True) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited early:\n{self.log()}")
            try:
                response = httpx.get(f"{self.url}/ready", timeout=2.0)
                if response.status_code == 200 or not need_model:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {timeout} s:\n{self.log()}")

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for a clean exit; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"server ignored SIGTERM:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    """Start servers for one test; each is stopped (SIGTERM) at the end."""
    servers: list[Server] = []

    def start(settings: Settings, **kwargs: Any) -> Server:
        server = Server(settings, tmp_path, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.terminate()


FEEDBACK_HEADERS = {"X-Feedback-Key": SERVE_SECTION["feedback_api_key"]}


class InProcessServer:
    """A real uvicorn server on a loopback port, its event loop in a thread of this process.

    ``loop`` and ``loop_thread`` are the server's: tests run coroutines on that
    loop (``run``) and tell its thread from the worker threads.
    """

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", ws="none", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread = threading.Thread(target=self._run, name="test-server-loop", daemon=True)

    def _run(self) -> None:
        async def serve() -> None:
            self.loop = asyncio.get_running_loop()
            await self.server.serve()

        asyncio.run(serve())

    def __enter__(self) -> InProcessServer:
        self.loop_thread.start()
        wait_until(lambda: self.server.started or not self.loop_thread.is_alive())
        assert self.server.started, "the in-process server did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.loop_thread.join(60)

    def run(self, coroutine: Any) -> Any:
        """Schedule ``coroutine`` on the server's loop; returns its concurrent future."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class ExplodingClassifier:
    """A fitted binary classifier whose every prediction raises (a broken challenger)."""

    classes_ = np.array([0, 1])

    def fit(self, *_args: Any) -> ExplodingClassifier:
        return self

    def predict_proba(self, _x: Any) -> np.ndarray:
        raise RuntimeError("challenger exploded")
