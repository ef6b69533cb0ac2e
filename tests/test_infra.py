"""``creditops mlflow-server`` on PostgreSQL: the whole loop over HTTP, and the server dying mid-train.

Every command runs as a real subprocess against ``tracking_uri =
"http://127.0.0.1:PORT"``; the server's backend store is a fresh PostgreSQL
database and its artifact root a temporary folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from creditops.config import Settings, load_config
from creditops.data import load_dataset
from serving_fixtures import FEEDBACK_HEADERS, SERVE_SECTION, Server, free_port
from support import make_settings

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

CREDITOPS = str(Path(sys.executable).parent / "creditops")
TINY = {"families": ["logreg", "lightgbm"], "trials_per_family": 2, "cv_folds": 3, "n_jobs": 1}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_toml(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class TrackingServer:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            # mlflow server runs uvicorn as a child: stop the whole group we started
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def start_tracking_server(root: Path, backend_url: str) -> TrackingServer:
    port = free_port()
    config = write_toml(
        root / "server.toml",
        {
            "mlflow_server": {
                "backend_store_uri": backend_url,
                "artifacts_destination": str(root / "server-artifacts"),
                "port": port,
            },
            "logging": {"runs_log": str(root / "server-runs.log")},
        },
    )
    log_path = root / "mlflow-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [CREDITOPS, "--config", str(config), "mlflow-server"],
            cwd=root,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=_clean_env(),
        )
    server = TrackingServer(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mlflow server exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    server.stop()
    raise AssertionError(f"mlflow server not up after 180 s:\n{server.log()}")


def _clean_env() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if not k.upper().startswith(("CREDITOPS_", "MLFLOW_"))
    }


@pytest.fixture
def tracking_server(tmp_path: Path, postgres_database: str) -> Iterator[TrackingServer]:
    server = start_tracking_server(tmp_path, postgres_database)
    yield server
    server.stop()


def client_sections(root: Path, tracking_uri: str) -> dict[str, dict[str, Any]]:
    return {
        "mlflow": {"tracking_uri": tracking_uri, "artifact_location": ""},
        "train": TINY,
        "logging": {"runs_log": str(root / "runs.log")},
        "serve": {
            "store_url": f"sqlite:///{root / 'inferences.db'}",
            "flush_interval_seconds": 0.05,
            "poll_seconds": 0,
            "feedback_api_key": SERVE_SECTION["feedback_api_key"],
        },
    }


def creditops(config: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CREDITOPS, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env=_clean_env(),
        check=False,
    )


def test_mlflow_server_refuses_to_start_when_its_database_is_down(tmp_path: Path) -> None:
    config = write_toml(
        tmp_path / "server.toml",
        {
            "mlflow_server": {"backend_store_uri": "postgresql+psycopg://u@127.0.0.1:9/mlflow"},
            "logging": {"runs_log": str(tmp_path / "runs.log")},
        },
    )
    done = creditops(config, "mlflow-server", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.startswith("error: MLflow backend store database postgresql+psycopg://u@")
    assert "Traceback" not in done.stderr


def test_train_promote_serve_feedback_through_the_tracking_server(
    tmp_path: Path,
    tracking_server: TrackingServer,
    start_server: Callable[..., Server],
) -> None:
    config = write_toml(tmp_path / "client.toml", client_sections(tmp_path, tracking_server.url))
    trained = creditops(config, "train", "--promote", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "PROMOTED" in trained.stdout
    models = creditops(config, "models", "--json", cwd=tmp_path)
    assert models.returncode == 0, models.stderr
    # artifacts went through the server, to its folder, not to the client's
    assert any((tmp_path / "server-artifacts").rglob("MLmodel"))
    assert not (tmp_path / "mlartifacts").exists()

    settings: Settings = make_settings(tmp_path, **client_sections(tmp_path, tracking_server.url))
    service = start_server(settings)
    service.wait_ready(timeout=120)
    with httpx.Client(base_url=service.url, timeout=30) as http:
        rows = load_dataset(load_config(None).data).features.head(30)
        applicants = [
            {k: (None if v != v else v) for k, v in row.items()} for row in rows.to_dict("records")
        ]
        scored = http.post("/predict", json=applicants)
        assert scored.status_code == 200, scored.text
        # only a granted loan has an outcome: the first approved applicant's
        prediction = next(p for p in scored.json()["predictions"] if p["decision"] == "approve")
        champion = http.get("/model").json()
        assert prediction["model_version"] == champion["version"]
        feedback = http.post(
            "/feedback",
            json={"request_id": prediction["request_id"], "outcome": "bad"},
            headers=FEEDBACK_HEADERS,
        )
        assert feedback.status_code == 200, feedback.text


class KillSwitchProxy:
    """An HTTP proxy to the tracking server that kills it at the first artifact upload."""

    def __init__(self, upstream: TrackingServer) -> None:
        self.upstream = upstream
        self.killed = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.command == "PUT" and "mlflow-artifacts" in self.path:
                    proxy.upstream.stop()
                    proxy.killed.set()
                try:
                    response = httpx.request(
                        self.command,
                        proxy.upstream.url + self.path,
                        content=body,
                        headers={
                            k: v
                            for k, v in self.headers.items()
                            if k.lower() not in {"host", "content-length"}
                        },
                        timeout=30,
                    )
                except httpx.TransportError:
                    self.send_response(502)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                self.send_response(response.status_code)
                for key, value in response.headers.items():
                    if key.lower() not in {"content-length", "transfer-encoding", "connection"}:
                        self.send_header(key, value)
                self.send_header("content-length", str(len(response.content)))
                self.end_headers()
                self.wfile.write(response.content)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_tracking_server_dying_mid_train_fails_cleanly_and_registers_nothing(
    tmp_path: Path, tracking_server: TrackingServer, postgres_database: str
) -> None:
    proxy = KillSwitchProxy(tracking_server)
    try:
        config = write_toml(tmp_path / "client.toml", client_sections(tmp_path, proxy.url))
        done = creditops(config, "train", cwd=tmp_path)
    finally:
        proxy.close()
    assert proxy.killed.is_set(), "the server was never killed: no artifact was uploaded"
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert proxy.url in errors[0]
    assert "Traceback" not in done.stderr
    engine = sa.create_engine(postgres_database)
    try:
        with engine.connect() as connection:
            versions = connection.execute(sa.text("SELECT count(*) FROM model_versions")).scalar()
            aliases = connection.execute(
                sa.text("SELECT count(*) FROM registered_model_aliases")
            ).scalar()
    finally:
        engine.dispose()
    assert versions == 0
    assert aliases == 0
