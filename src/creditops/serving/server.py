"""``creditops serve``: run the scoring app under uvicorn.

Kept free of heavy imports: the champion's prefetch helper starts first, then
the web stack and the model libraries are imported while it works.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from creditops.config import MlflowConfig, ServeConfig
from creditops.listening import check_address
from creditops.reason_codes import DEFAULT_PROTECTED

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger(__name__)


def serve(
    config: ServeConfig,
    mlflow: MlflowConfig,
    *,
    config_path: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    protected: tuple[str, ...] = DEFAULT_PROTECTED,
) -> None:
    """Run the scoring service until SIGINT/SIGTERM (then drain the log and stop).

    One worker serves the app built here; several workers each build their own
    from the config file (named to them by ``CREDITOPS_CONFIG``) through
    ``app.app_from_env``, as uvicorn needs an import string to spawn them.

    Args:
        config: the ``[serve]`` section; ``host``, ``port`` and ``workers`` override it.
        mlflow: the ``[mlflow]`` section: where the champion is registered.
        config_path: the config file the workers read (several workers only).
        host: the bind address.
        port: the port.
        workers: how many worker processes.
        protected: ``[fairness] protected``, never given as a reason (several
            workers read it from the config file).

    Raises:
        StoreError: the inference log's database is unreachable (checked first).
    """
    host = host or config.host
    port = config.port if port is None else port
    workers = workers or config.workers
    check_address(host, port, "[serve] host/port or --host/--port")
    if workers > 1:
        _run_workers(config.store_url, config_path, host, port, workers)
        return
    # Start-up allocates ~200,000 long-lived objects (libraries, the model); with the
    # cyclic GC on, each full collection on the way scans all of them again (~0.3 s
    # in all). The service freezes that heap and turns the GC back on once started.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _serve_one(config, mlflow, host, port, pause_gc=gc_was_enabled, protected=protected)
    finally:
        if gc_was_enabled:
            gc.enable()


def _serve_one(
    config: ServeConfig,
    mlflow: MlflowConfig,
    host: str,
    port: int,
    *,
    pause_gc: bool,
    protected: tuple[str, ...],
) -> None:
    from creditops.serving.prefetch import start_prefetch

    prefetch = start_prefetch(mlflow)
    try:
        _prepare_store(config.store_url)
    except BaseException:
        prefetch.cleanup()
        raise

    import uvicorn

    from creditops.serving.app import create_app

    log.info("serving on http://%s:%s with %d worker(s)", host, port, 1)
    app = create_app(config, mlflow, prefetch=prefetch, gc_paused=pause_gc, protected=protected)
    # uvicorn.run, less its re-raising of SIGTERM after a clean stop (exit 143)
    server = uvicorn.Server(uvicorn.Config(app, **_options(host, port)))
    with _clean_exit_on_sigterm(server):
        server.run()
    if not server.started:
        from uvicorn.config import STARTUP_FAILURE

        raise SystemExit(STARTUP_FAILURE)


@contextlib.contextmanager
def _clean_exit_on_sigterm(server: uvicorn.Server) -> Iterator[None]:
    """A SIGTERM that uvicorn re-raises after it drained and stopped ends the process with 0.

    uvicorn handles SIGTERM itself while it serves (it stops, and the service
    drains the inference log), then restores the handler it found and raises
    the signal again: that default handler would end the process with 143,
    which a supervisor reads as a crash. The handler installed here lets the
    re-raised signal go once the server has started; before, it kills as the
    default does (nothing was served, nothing drained).
    """

    def handle(signum: int, frame: object) -> None:
        if server.started:
            log.info("stopped on SIGTERM after a clean drain")
            return
        signal.signal(signal.SIGTERM, previous)
        signal.raise_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, handle) or signal.SIG_DFL
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_workers(
    store_url: str, config_path: Path | None, host: str, port: int, workers: int
) -> None:
    _prepare_store(store_url)

    import uvicorn

    from creditops.serving.app import CONFIG_ENV

    log.info("serving on http://%s:%s with %d worker(s)", host, port, workers)
    if config_path is not None:
        os.environ[CONFIG_ENV] = str(Path(config_path).resolve())
    uvicorn.run(
        "creditops.serving.app:app_from_env",
        factory=True,
        workers=workers,
        **_options(host, port),
    )


def _options(host: str, port: int) -> dict[str, Any]:
    from creditops.serving.http_protocol import protocol_class

    return {
        "host": host,
        "port": port,
        # an answer's headers and body in one write (see http_protocol)
        "http": protocol_class(),
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 30,
        # no WebSocket routes: do not import a WebSocket implementation at start-up
        "ws": "none",
    }


def _prepare_store(store_url: str) -> None:
    """Check the inference log's database and create its table, before any worker starts.

    A database that is down is one line naming its URL; the table exists before
    the workers start, as they would race to create it.
    """
    from creditops.databases import check_database
    from creditops.serving.store import InferenceStore

    check_database(store_url, "inference log")
    store = InferenceStore(store_url)
    try:
        store.create()
    finally:
        store.close()
