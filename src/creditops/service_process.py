"""``creditops serve`` as a child process on loopback, as the pipeline runs it.

The pipeline starts the same command a user runs, waits for ``/ready``, asks
``/model`` which version it serves, and stops it with SIGTERM so that it
drains its inference log.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from creditops.config import ServeConfig
from creditops.errors import CreditOpsError

log = logging.getLogger(__name__)


class PipelineError(CreditOpsError):
    """A stage of the pipeline failed in a way no other error covers (the server died)."""


def free_port(host: str) -> int:
    """A TCP port nothing listens on at ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """Whether ``port`` at ``host`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class ServiceProcess:
    """``creditops serve`` as a child process, with its log in a file."""

    def __init__(
        self, config_path: Path | None, serve: ServeConfig, log_path: Path, poll_seconds: float
    ) -> None:
        host = serve.host
        port = serve.port
        if port == 0 or not port_is_free(host, port):
            port = free_port(host)
        self.url = f"http://{host}:{port}"
        self.api_key = serve.admin_api_key.get_secret_value() or secrets.token_hex(16)
        # the simulated traffic posts its outcomes with it (pipeline._pointed_at)
        self.feedback_key = serve.feedback_api_key.get_secret_value() or secrets.token_hex(16)
        self.log_path = log_path
        env = dict(os.environ)
        env.update(
            {
                "CREDITOPS_SERVE__PORT": str(port),
                "CREDITOPS_SERVE__ADMIN_API_KEY": self.api_key,
                "CREDITOPS_SERVE__FEEDBACK_API_KEY": self.feedback_key,
                "CREDITOPS_SERVE__POLL_SECONDS": str(poll_seconds),
                "CREDITOPS_SERVE__WORKERS": "1",
            }
        )
        command = [sys.executable, "-m", "creditops"]
        if config_path is not None:
            command += ["--config", str(config_path)]
        command.append("serve")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        log.info(
            "scoring service starting at %s (pid %d, log %s)", self.url, self.process.pid, log_path
        )

    def wait_ready(self, timeout: float) -> None:
        """Block until ``/ready`` answers 200, or fail with the server's last words."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise PipelineError(
                    f"the scoring service exited with code {self.process.returncode}: {self.tail()}"
                )
            try:
                response = httpx.get(f"{self.url}/ready", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text[:200]
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.25)
        raise PipelineError(
            f"the scoring service at {self.url} was not ready within {timeout:.0f} s: {last}"
        )

    def served_version(self) -> int:
        """The model version ``/model`` reports."""
        response = httpx.get(f"{self.url}/model", timeout=5)
        response.raise_for_status()
        return int(response.json()["version"])

    def reload(self) -> None:
        """Ask the service to load the champion now (``/admin/reload``)."""
        response = httpx.post(
            f"{self.url}/admin/reload", headers={"X-API-Key": self.api_key}, timeout=60
        )
        response.raise_for_status()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the drain; SIGKILL only if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.error("scoring service did not stop within %.0f s: killed", timeout)
                self.process.kill()
                self.process.wait()
        self._log.close()
        return int(self.process.returncode)

    def tail(self, lines: int = 5) -> str:
        """The last ``lines`` lines of the service's log, on one line."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])
