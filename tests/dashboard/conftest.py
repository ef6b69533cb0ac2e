"""Fixtures of the dashboard tests: a store whose monitoring table holds every kind of row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from creditops.monitoring.table import read_table, write_rows
from monitoring_rows import table_rows


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A SQLite store whose monitoring table holds :func:`table_rows`."""
    url = f"sqlite:///{tmp_path / 'inferences.db'}"
    write_rows(url, table_rows())
    return url


@pytest.fixture
def table(store_url: str) -> pd.DataFrame:
    """The table as ``read_table`` returns it."""
    return read_table(store_url)
