"""An address a server cannot listen on is refused first, naming the setting, the value and why."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from creditops.cli.app import app
from creditops.errors import ConfigError
from creditops.listening import check_address


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process is listening on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_a_free_port_passes_and_stays_free() -> None:
    with socket.socket() as finder:
        finder.bind(("127.0.0.1", 0))
        port = finder.getsockname()[1]
    check_address("127.0.0.1", port, "[serve] host/port")
    with socket.socket() as again:  # the check let go of it
        again.bind(("127.0.0.1", port))


def test_a_port_in_use_is_named_with_the_host_and_the_reason(taken_port: int) -> None:
    with pytest.raises(ConfigError) as caught:
        check_address("127.0.0.1", taken_port, "[serve] host/port")
    assert str(caught.value) == (
        f"cannot listen on '127.0.0.1' port {taken_port} ([serve] host/port): "
        "Address already in use"
    )


def test_a_host_that_does_not_resolve_is_named() -> None:
    host = "bad host!"
    with pytest.raises(ConfigError, match=r"^cannot listen on .* the host does not resolve: "):
        check_address(host, 8000, "[dashboard] host/port")


def test_serve_on_a_taken_port_is_one_line_and_starts_nothing(
    tmp_path: Path, taken_port: int
) -> None:
    config = tmp_path / "creditops.toml"
    config.write_text(
        f'[serve]\nstore_url = "sqlite:///{tmp_path / "log.db"}"\n'
        f'[logging]\nruns_log = "{tmp_path / "runs.log"}"\n'
        f'[mlflow]\ntracking_uri = "sqlite:///{tmp_path / "mlflow.db"}"\n'
    )
    result = CliRunner().invoke(app, ["--config", str(config), "serve", "--port", str(taken_port)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"error: cannot listen on '127.0.0.1' port {taken_port} "
        "([serve] host/port or --host/--port): Address already in use"
    )
    assert not (tmp_path / "log.db").exists()
