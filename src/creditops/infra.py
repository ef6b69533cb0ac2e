"""The MLflow tracking server a team shares: ``creditops mlflow-server``.

:func:`mlflow_server_command` / :func:`run_mlflow_server` start ``mlflow server``
with the ``[mlflow_server]`` section: a PostgreSQL (or SQLite) backend store and
a proxied artifact root, on loopback by default. Clients then use
``[mlflow] tracking_uri = "http://HOST:PORT"`` and leave ``artifact_location``
empty so that the server stores the artifacts. The backend database is checked
first (:func:`creditops.databases.check_database`).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from creditops.config import MlflowServerConfig
from creditops.databases import check_database, safe_url
from creditops.errors import TrackingError

log = logging.getLogger(__name__)


# --- the MLflow tracking server ---------------------------------------------------


def mlflow_server_command(config: MlflowServerConfig) -> list[str]:
    """The ``mlflow server`` command line for ``config``."""
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    destination = config.artifacts_destination
    if "://" not in destination:
        destination = str(Path(destination).resolve())
    return [
        mlflow,
        "server",
        "--backend-store-uri",
        config.backend_store_uri,
        "--serve-artifacts",
        "--artifacts-destination",
        destination,
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--workers",
        str(config.workers),
    ]


def run_mlflow_server(config: MlflowServerConfig) -> None:
    """Check the backend store, then become ``mlflow server`` (the process is replaced).

    Signals reach the server directly, so a supervisor can stop it with SIGTERM.

    Raises:
        TrackingError: the backend store is unreachable or malformed.
    """
    check_database(config.backend_store_uri, "MLflow backend store", error=TrackingError)
    destination = config.artifacts_destination
    if "://" not in destination:
        Path(destination).mkdir(parents=True, exist_ok=True)
    command = mlflow_server_command(config)
    log.info(
        "starting the MLflow tracking server on http://%s:%d: backend %s, artifacts %s",
        config.host,
        config.port,
        safe_url(config.backend_store_uri),
        destination,
    )
    for handler in logging.getLogger("creditops").handlers:
        handler.flush()
    os.execv(command[0], command)
