"""The MLflow tracking server a team shares: ``creditops mlflow-server``.

:func:`mlflow_server_command` / :func:`run_mlflow_server` start ``mlflow server``
with the ``[mlflow_server]`` section: a PostgreSQL (or SQLite) backend store and
a proxied artifact root, on loopback by default. Clients then use
``[mlflow] tracking_uri = "http://HOST:PORT"`` and leave ``artifact_location``
empty so that the server stores the artifacts. The backend database is checked
first (:func:`creditops.databases.check_database`).

Bound to anything but loopback, the server runs MLflow's own authentication
app (``--app-name basic-auth``): whoever can reach it could otherwise register
a version and move ``champion``, and a model is a pickle that every replica
unpickles. That app needs ``MLFLOW_FLASK_SERVER_SECRET_KEY`` (and, on its first
start, ``MLFLOW_AUTH_ADMIN_PASSWORD``) in the server's environment; clients
pass their credentials as ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` in theirs, never in the config file.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import sys
from pathlib import Path

from creditops.config import MlflowServerConfig
from creditops.databases import check_database, safe_url
from creditops.errors import TrackingError
from creditops.listening import check_address

log = logging.getLogger(__name__)

AUTH_APP = "basic-auth"
# without it MLflow's auth app refuses to start (CSRF protection)
AUTH_SECRET_VARIABLE = "MLFLOW_FLASK_SERVER_SECRET_KEY"


# --- the MLflow tracking server ---------------------------------------------------


def mlflow_server_command(config: MlflowServerConfig) -> list[str]:
    """The ``mlflow server`` command line for ``config``.

    The backend store's URI is not on it (any user of the machine reads a command
    line, password included): :func:`mlflow_server_environment` carries it.
    """
    mlflow = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or "mlflow"
    destination = config.artifacts_destination
    if "://" not in destination:
        destination = str(Path(destination).resolve())
    return [
        mlflow,
        "server",
        "--serve-artifacts",
        "--artifacts-destination",
        destination,
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--workers",
        str(config.workers),
        *([] if is_loopback(config.host) else ["--app-name", AUTH_APP]),
    ]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``.

    Any other name counts as reachable from elsewhere (``0.0.0.0``, a LAN
    address, a host name): such a server requires authentication.
    """
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def mlflow_server_environment(config: MlflowServerConfig) -> dict[str, str]:
    """This process's environment plus the backend store's URI, which ``mlflow server`` reads."""
    return {**os.environ, "MLFLOW_BACKEND_STORE_URI": config.backend_store_uri}


def run_mlflow_server(config: MlflowServerConfig) -> None:
    """Check the backend store, then become ``mlflow server`` (the process is replaced).

    Signals reach the server directly, so a supervisor can stop it with SIGTERM.

    Raises:
        TrackingError: the backend store is unreachable or malformed, or the
            server would require authentication without its secret key.
    """
    authenticated = not is_loopback(config.host)
    if authenticated and not os.environ.get(AUTH_SECRET_VARIABLE):
        raise TrackingError(
            f"[mlflow_server] host {config.host!r} is not loopback, so the server requires "
            f"authentication (MLflow's {AUTH_APP} app), which needs {AUTH_SECRET_VARIABLE} set "
            "in its environment (and MLFLOW_AUTH_ADMIN_PASSWORD on its first start): "
            "see docs/deploy.md"
        )
    check_database(config.backend_store_uri, "MLflow backend store", error=TrackingError)
    check_address(config.host, config.port, "[mlflow_server] host/port or --port")
    destination = config.artifacts_destination
    if "://" not in destination:
        Path(destination).mkdir(parents=True, exist_ok=True)
    command = mlflow_server_command(config)
    log.info(
        "starting the MLflow tracking server on http://%s:%d: backend %s, artifacts %s, %s",
        config.host,
        config.port,
        safe_url(config.backend_store_uri),
        destination,
        f"authentication by MLflow's {AUTH_APP} app" if authenticated else "loopback only",
    )
    for handler in logging.getLogger("creditops").handlers:
        handler.flush()
    os.execve(command[0], command, mlflow_server_environment(config))
