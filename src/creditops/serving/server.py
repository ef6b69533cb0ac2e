"""``creditops serve``: run the scoring app under uvicorn.

Kept free of heavy imports: the champion's prefetch helper starts first, then
the web stack and the model libraries are imported while it works.
"""

from __future__ import annotations

import gc
import logging
import os
from pathlib import Path
from typing import Any

from creditops.config import Settings

log = logging.getLogger(__name__)


def serve(
    settings: Settings,
    *,
    config_path: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> None:
    """Run the scoring service until SIGINT/SIGTERM (then drain the log and stop).

    One worker serves the app built here; several workers each build their own
    from the config file (named to them by ``CREDITOPS_CONFIG``) through
    ``app.app_from_env``, as uvicorn needs an import string to spawn them.

    Raises:
        StoreError: the inference log's database is unreachable (checked first).
    """
    host = host or settings.serve.host
    port = settings.serve.port if port is None else port
    workers = workers or settings.serve.workers
    if workers > 1:
        _run_workers(settings, config_path, host, port, workers)
        return
    # Start-up allocates ~200,000 long-lived objects (libraries, the model); with the
    # cyclic GC on, each full collection on the way scans all of them again (~0.3 s
    # in all). The service freezes that heap and turns the GC back on once started.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        _serve_one(settings, host, port, pause_gc=gc_was_enabled)
    finally:
        if gc_was_enabled:
            gc.enable()


def _serve_one(settings: Settings, host: str, port: int, *, pause_gc: bool) -> None:
    from creditops.serving.prefetch import start_prefetch

    prefetch = start_prefetch(settings.mlflow)
    try:
        _prepare_store(settings)
    except BaseException:
        prefetch.cleanup()
        raise

    import uvicorn

    from creditops.serving.app import create_app

    log.info("serving on http://%s:%s with %d worker(s)", host, port, 1)
    uvicorn.run(create_app(settings, prefetch=prefetch, gc_paused=pause_gc), **_options(host, port))


def _run_workers(
    settings: Settings, config_path: Path | None, host: str, port: int, workers: int
) -> None:
    _prepare_store(settings)

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
    return {
        "host": host,
        "port": port,
        "access_log": False,
        "log_level": "warning",
        "timeout_graceful_shutdown": 30,
        # no WebSocket routes: do not import a WebSocket implementation at start-up
        "ws": "none",
    }


def _prepare_store(settings: Settings) -> None:
    """Check the inference log's database and create its table, before any worker starts.

    A database that is down is one line naming its URL; the table exists before
    the workers start, as they would race to create it.
    """
    from creditops.infra import check_database
    from creditops.serving.store import InferenceStore

    check_database(settings.serve.store_url, "inference log")
    store = InferenceStore(settings.serve.store_url)
    try:
        store.create()
    finally:
        store.close()
