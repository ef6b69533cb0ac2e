"""An unset alias means "no champion"; a registry that fails never does.

The failing registry is real: MLflow's own REST server (its Flask app, on a
loopback port, over a SQLite store) behind a thin WSGI layer that answers 500
to the alias reads a test names; a loopback server answering 500 to
everything; and a closed port.
"""

from __future__ import annotations

import http.server
import os
import socketserver
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

from creditops import features, registry
from creditops.config import Settings
from creditops.data import load_dataset
from creditops.errors import NoChampionError, RegistryError, RegistryUnavailableError
from creditops.tracking import TrackingClient
from serving_fixtures import free_port
from support import make_settings

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@pytest.fixture(autouse=True)
def _fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """No retries and a short timeout: a failing registry answers at once."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class FaultyMlflow:
    """A real MLflow tracking server in this process; reads of ``failing`` aliases answer 500."""

    uri: str
    root: Path
    failing: set[str] = field(default_factory=set)

    def settings(self, model: str, root: Path | None = None, **sections: Any) -> Settings:
        """Settings whose registry is this server (files under ``root``, default its own)."""
        mlflow = {
            "tracking_uri": self.uri,
            "registered_model": model,
            "artifact_location": str(self.root / "artifacts"),
        }
        return make_settings(root or self.root, mlflow=mlflow, **sections)


def _with_faults(app: WsgiApp, server: FaultyMlflow) -> WsgiApp:
    def faulty(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        alias = parse_qs(environ.get("QUERY_STRING", "")).get("alias", [""])[0]
        if environ["PATH_INFO"].endswith("/registered-models/alias") and alias in server.failing:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"the registry database is unavailable"]
        return app(environ, start_response)

    return faulty


@pytest.fixture(scope="module")
def faulty_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyMlflow]:
    root = tmp_path_factory.mktemp("faulty-mlflow")
    database = f"sqlite:///{root / 'server.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("_MLFLOW_SERVER_FILE_STORE", database)
        patch.setenv("_MLFLOW_SERVER_REGISTRY_STORE", database)
        patch.setenv("_MLFLOW_SERVER_ARTIFACT_ROOT", str(root / "server-artifacts"))
        from mlflow.server import app, handlers
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        # the handlers keep their stores in module globals: start from ours
        patch.setattr(handlers, "_tracking_store", None)
        patch.setattr(handlers, "_model_registry_store", None)
        # Creating the stores points MLflow's process-wide URIs (globals and environment)
        # at the server's database, as the server's own handlers need while it runs: the
        # patch puts them back when the module is done, for the stores of later tests.
        patch.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
        patch.setattr(registry_utils, "_registry_uri", registry_utils._registry_uri)
        for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            absent = variable not in os.environ
            patch.setenv(variable, os.environ.get(variable, ""))  # restored (or unset) at exit
            if absent:
                patch.delenv(variable)
        # create the schema now, not inside a client's first (timed) request
        handlers._get_tracking_store()
        handlers._get_model_registry_store()
        server = FaultyMlflow("", root)
        wsgi = make_server(
            "127.0.0.1",
            0,
            _with_faults(app, server),
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
        server.uri = f"http://127.0.0.1:{wsgi.server_address[1]}"
        thread = threading.Thread(target=wsgi.serve_forever, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            wsgi.shutdown()
            wsgi.server_close()
            thread.join(10)


def _register(settings: Settings, family: str, params: dict[str, Any]) -> int:
    """A fitted pipeline registered as a new version of the settings' model."""
    dataset = load_dataset(settings.data)
    pipeline = features.build_pipeline(family, params, seed=0).fit(dataset.features, dataset.target)
    ref = registry.register_fitted(
        registry.connect(settings.mlflow),
        settings.mlflow.registered_model,
        pipeline,
        family=family,
        threshold=0.4,
        data_hash=dataset.data_hash,
        run_name=f"faults-{family}",
    )
    return ref.version


class _Answer500(http.server.BaseHTTPRequestHandler):
    def _fail(self) -> None:
        body = b"internal error"
        self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_DELETE = _fail  # noqa: N815 (http.server's names)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def answers_500() -> Iterator[str]:
    """A loopback HTTP server that answers 500 to every request; yields its URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer500)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_an_unset_alias_is_no_champion(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    client = registry.connect(settings.mlflow)
    name = settings.mlflow.registered_model
    # an unknown model, then a model whose aliases are not set
    assert registry.find_alias(client, name, registry.CHAMPION) is None
    client.create_registered_model(name)
    assert registry.find_alias(client, name, registry.CHAMPION) is None
    assert registry.find_alias(client, name, registry.PREVIOUS) is None
    with pytest.raises(NoChampionError, match="run `creditops promote` first"):
        registry.resolve_alias(client, name)
    with pytest.raises(RegistryError, match="has no version 9"):
        registry.get_version(client, name, 9)


@pytest.mark.parametrize("server", ["answers 500", "closed port"])
def test_a_failing_registry_is_not_an_unset_alias(server: str, answers_500: str) -> None:
    uri = answers_500 if server == "answers 500" else f"http://127.0.0.1:{free_port()}"
    client = TrackingClient(uri)
    for alias in (registry.CHAMPION, registry.CHALLENGER):
        with pytest.raises(RegistryUnavailableError, match=f"cannot read alias '{alias}'"):
            registry.find_alias(client, "credit-risk", alias)
    with pytest.raises(RegistryUnavailableError) as caught:
        registry.resolve_alias(client, "credit-risk")
    assert not isinstance(caught.value, NoChampionError)
    with pytest.raises(RegistryUnavailableError, match="cannot read version 1"):
        registry.get_version(client, "credit-risk", 1)


@pytest.mark.slow
def test_promote_stops_when_the_champion_cannot_be_read(faulty_mlflow: FaultyMlflow) -> None:
    settings = faulty_mlflow.settings("gate-faults")
    name = settings.mlflow.registered_model
    client = registry.connect(settings.mlflow)
    champion = _register(settings, "logreg", {"C": 0.05})
    challenger = _register(settings, "logreg", {"C": 1.0})
    registry.set_alias(client, name, registry.CHAMPION, champion)
    holdout = load_dataset(settings.data).frame.sample(300, random_state=3)
    faulty_mlflow.failing = {registry.CHAMPION}
    try:
        with pytest.raises(RegistryUnavailableError, match="cannot read alias 'champion'"):
            registry.promote(
                client,
                settings.mlflow,
                settings.promote.model_copy(update={"allow_unverified_holdout": True}),
                holdout=holdout,
                challenger_version=challenger,
            )
    finally:
        faulty_mlflow.failing = set()
    # nothing moved and no decision was made
    assert registry.resolve_alias(client, name).version == champion
    assert registry.find_alias(client, name, registry.PREVIOUS) is None
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    runs = client.search_runs([experiment.experiment_id], "tags.`creditops.stage` = 'promote'")
    assert runs == []


@pytest.mark.slow
def test_ready_names_an_unreachable_registry(
    faulty_mlflow: FaultyMlflow, start_server: Any, tmp_path: Path
) -> None:
    settings = faulty_mlflow.settings("ready-faults")
    client = registry.connect(settings.mlflow)
    version = _register(settings, "logreg", {"C": 0.5})
    registry.set_alias(client, settings.mlflow.registered_model, registry.CHAMPION, version)
    served = faulty_mlflow.settings("ready-faults", tmp_path, serve={"poll_seconds": 0.5})
    faulty_mlflow.failing = {registry.CHAMPION}
    try:
        server = start_server(served)
        server.wait_ready(need_model=False)
        detail = _ready_detail(server.url)
        assert detail.startswith("model registry unreachable: "), detail
        assert "cannot read alias 'champion'" in detail and "promote" not in detail
    finally:
        faulty_mlflow.failing = set()
    # the registry is back: the poller loads the champion
    server.wait_ready(timeout=30)
    assert httpx.get(f"{server.url}/ready").json()["model_version"] == version


def _ready_detail(url: str) -> str:
    """The not-ready reason, once the service has tried the registry."""
    for _ in range(200):
        response = httpx.get(f"{url}/ready", timeout=5)
        assert response.status_code == 503, response.text
        detail = str(response.json()["detail"])
        if not detail.startswith("starting"):
            return detail
        threading.Event().wait(0.1)
    raise AssertionError(f"the service never tried the registry: {detail}")
