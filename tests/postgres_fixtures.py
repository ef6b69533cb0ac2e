"""PostgreSQL fixtures: the server ``scripts/postgres.sh`` starts, fresh databases in it.

``CREDITOPS_TEST_POSTGRES_URL`` names the server (``make test`` and ``.ci/run``
start one through ``scripts/with-postgres.sh``). Without it, tests marked
``postgres`` skip on a developer's machine and FAIL in CI (``CI=true``): there a
skip would hide that the PostgreSQL path was never exercised.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

URL_ENV = "CREDITOPS_TEST_POSTGRES_URL"
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "postgres.sh"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_postgres(reason: str) -> None:
    """Skip locally, fail in CI."""
    if in_ci():
        pytest.fail(f"{reason}, and CI must run the postgres tests (see scripts/with-postgres.sh)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The test server's URL (``postgresql+psycopg://...``)."""
    url = os.environ.get(URL_ENV, "")
    if not url:
        require_postgres(f"{URL_ENV} is not set")
    return url


def create_database(server_url: str, prefix: str = "test") -> str:
    """A new, empty database on the server of ``server_url``; returns its URL."""
    import sqlalchemy as sa

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, database_url: str) -> None:
    import sqlalchemy as sa

    name = sa.engine.make_url(database_url).database
    engine = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        engine.dispose()


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A fresh database for one test, dropped afterwards."""
    url = create_database(postgres_url)
    yield url
    drop_database(postgres_url, url)


@dataclass
class PrivateCluster:
    """A cluster of its own (for tests that stop and restart the server)."""

    folder: Path
    url: str

    def run(self, action: str) -> str:
        done = subprocess.run(
            ["bash", str(SCRIPT), action, str(self.folder)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"postgres.sh {action} failed: {done.stderr}")
        return done.stdout.strip()

    def pause(self) -> None:
        self.run("pause")

    def resume(self) -> None:
        self.run("resume")


@pytest.fixture
def private_postgres(postgres_url: str) -> Iterator[PrivateCluster]:
    """A throwaway cluster started by ``scripts/postgres.sh`` for this test only."""
    if shutil.which("runuser") is None and os.geteuid() == 0:
        require_postgres("runuser is missing: cannot run PostgreSQL as a non-root user")
    # not under pytest's tmp_path: that is private to root, and the server runs as `postgres`
    folder = Path(tempfile.mkdtemp(prefix="creditops-pg-test.", dir="/tmp"))
    cluster = PrivateCluster(folder, "")
    cluster.url = cluster.run("start")
    try:
        yield cluster
    finally:
        cluster.run("stop")
