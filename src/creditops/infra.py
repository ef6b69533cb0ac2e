"""Beyond one machine: database checks and the MLflow tracking server.

* :func:`check_database` opens a SQLAlchemy URL once and turns any failure into
  one line naming the URL (password hidden) and the cause: the service, the
  tracking server and the search workers call it before they start, so a
  PostgreSQL that is down is a one-line error, not a stack trace.
* :func:`mlflow_server_command` / :func:`run_mlflow_server` start ``mlflow server``
  with the ``[mlflow_server]`` section: a PostgreSQL (or SQLite) backend store and
  a proxied artifact root, on loopback by default. Clients then use
  ``[mlflow] tracking_uri = "http://HOST:PORT"`` and leave
  ``artifact_location`` empty so that the server stores the artifacts.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from creditops.config import MlflowServerConfig
from creditops.errors import CreditOpsError, StoreError, TrackingError

log = logging.getLogger(__name__)


def safe_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (for messages and logs)."""
    import sqlalchemy as sa

    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def _first_line(exc: BaseException) -> str:
    # psycopg puts the useful part ("connection refused", "database ... does not
    # exist") on the first line; SQLAlchemy appends a background link.
    cause: BaseException = exc
    original = getattr(exc, "orig", None)
    if isinstance(original, BaseException):
        cause = original
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return lines[0][:300] if lines else type(cause).__name__


def check_database(
    url: str,
    role: str,
    *,
    error: type[CreditOpsError] = StoreError,
    timeout_seconds: int = 5,
) -> None:
    """Connect to ``url`` once and run ``SELECT 1``.

    Args:
        url: a SQLAlchemy URL (``sqlite:///...``, ``postgresql+psycopg://...``).
        role: what the database is for, as the message names it ("inference log").
        error: the CreditOpsError subclass to raise.
        timeout_seconds: how long to wait for a PostgreSQL connection.

    Raises:
        ``error``: one line naming the role, the URL and the cause.
    """
    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise error(f"{role} URL {url!r} is malformed: {exc}") from exc
    connect_args = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = timeout_seconds
    elif parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(url, connect_args=connect_args, poolclass=sa.pool.NullPool)
    except (sa.exc.SQLAlchemyError, ImportError) as exc:
        raise error(f"{role} {safe_url(url)} cannot be opened: {_first_line(exc)}") from exc
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        raise error(f"{role} database {safe_url(url)} is unreachable: {_first_line(exc)}") from exc
    finally:
        engine.dispose()


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
