"""``creditops mlflow-server`` off loopback runs MLflow's authentication app.

Pure command-line checks: this machine may only bind loopback, so a real
server on a public address is not started here (tests/test_infra.py starts
real ones on 127.0.0.1).
"""

from __future__ import annotations

import pytest

from creditops.config import MlflowServerConfig
from creditops.errors import TrackingError
from creditops.infra import is_loopback, mlflow_server_command, run_mlflow_server


def app_name(command: list[str]) -> str | None:
    """The value of ``--app-name`` on a command line, None when absent."""
    if "--app-name" not in command:
        return None
    return command[command.index("--app-name") + 1]


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "192.168.0.7", "mlflow.internal"])
def test_a_server_reachable_from_elsewhere_requires_authentication(host: str) -> None:
    command = mlflow_server_command(MlflowServerConfig(host=host))
    assert app_name(command) == "basic-auth"
    assert command[command.index("--host") + 1] == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost"])
def test_a_loopback_server_runs_without_the_auth_app(host: str) -> None:
    assert app_name(mlflow_server_command(MlflowServerConfig(host=host))) is None
    assert is_loopback(host)


def test_the_auth_app_without_its_secret_key_is_refused_before_starting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MLFLOW_FLASK_SERVER_SECRET_KEY", raising=False)
    with pytest.raises(TrackingError, match="MLFLOW_FLASK_SERVER_SECRET_KEY"):
        run_mlflow_server(MlflowServerConfig(host="0.0.0.0"))


def test_the_auth_app_is_installed() -> None:
    import mlflow.server.auth  # noqa: F401  (needs Flask-WTF: the mlflow[auth] extra)
