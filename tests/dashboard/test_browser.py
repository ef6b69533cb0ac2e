"""The dashboard in a real headless Chromium: every panel drawn, with the table's data.

Chromium comes from ``scripts/chromium.sh`` (`make test` installs Debian's package
when absent and names it in CREDITOPS_TEST_CHROMIUM).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pandas as pd
import pytest
import uvicorn

from creditops.config import DashboardConfig
from creditops.dashboard.live import check_exposure, dashboard_app
from creditops.dashboard.page import write_dashboard
from creditops.errors import ConfigError
from creditops.monitoring.table import read_table


@pytest.fixture(scope="module")
def chromium() -> str:
    path = os.environ.get("CREDITOPS_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.skip("no Chromium: `make test` installs it (scripts/chromium.sh)")
    return path


class _Sections(HTMLParser):
    """The data-* attributes of <body> and of every <section class="panel">."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.panels: dict[str, dict[str, str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "body":
            self.body = values
        elif tag == "section" and "panel" in values.get("class", ""):
            self.panels[values["data-panel"]] = values


def rendered(chromium: str, url: str) -> _Sections:
    """Load ``url`` headless, let its scripts run, and read the resulting DOM."""
    result = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    parser = _Sections()
    parser.feed(result.stdout)
    return parser


def expected_points(table: pd.DataFrame) -> dict[str, int]:
    """What each panel must hold, counted from the table itself (not from the page)."""
    present = table[table["value"].notna()]

    def rows(*metrics: str) -> int:
        return int(present["metric"].isin(metrics).sum())

    def cells(prefix: str, exclude: tuple[str, ...] = ()) -> int:
        chosen = present[
            present["metric"].str.startswith(prefix) & ~present["metric"].isin(exclude)
        ]
        return len(chosen.groupby(["metric", "month"]))

    estimate = table[table["metric"] == "est_roc_auc"]
    return {
        "volume": rows("volume", "approval_rate"),
        "drift": cells("psi:"),
        "auc": rows("est_roc_auc", "roc_auc")
        + int(estimate["lower"].notna().sum() + estimate["upper"].notna().sum()),
        "vintage": int((present["kind"] == "vintage").sum()),
        "backtest": cells("backtest:", ("backtest:hosmer_lemeshow_p",)),
        "fairness": int(present["metric"].str.startswith("fairness:approval_ratio:").sum()),
        "shadow": rows("shadow:agreement", "shadow:swap_in", "shadow:swap_out"),
    }


def test_every_panel_renders_its_data_in_chromium(
    chromium: str, table: pd.DataFrame, tmp_path: Path
) -> None:
    page = tmp_path / "dashboard.html"
    write_dashboard(table, page, source="sqlite:///inferences.db")
    dom = rendered(chromium, page.as_uri())
    assert dom.body.get("data-panels-rendered") == "7", dom.body
    expected = expected_points(table)
    assert set(dom.panels) == set(expected)
    for key, attributes in dom.panels.items():
        assert attributes.get("data-rendered") == "true", key
        assert int(attributes["data-points"]) == expected[key], key


def test_the_empty_page_renders_its_hint(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "empty.html"
    write_dashboard(pd.DataFrame(columns=["month", "model_version"]), page, source="sqlite://")
    dom = rendered(chromium, page.as_uri())
    assert dom.body.get("data-empty") == "true" and dom.panels == {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def live(store_url: str) -> Iterator[str]:
    """The live dashboard on loopback, with a viewer key, reading the store on every load."""
    config = DashboardConfig(viewer_key="viewer-secret", refresh_seconds=30)
    app = dashboard_app(lambda: read_table(store_url), source=store_url, config=config)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_live_page_needs_the_viewer_key_and_renders(chromium: str, live: str) -> None:
    assert httpx.get(f"{live}/").status_code == 401
    assert httpx.get(f"{live}/", headers={"X-Viewer-Key": "wrong"}).status_code == 401
    answer = httpx.get(f"{live}/", headers={"X-Viewer-Key": "viewer-secret"})
    assert answer.status_code == 200 and 'http-equiv="refresh" content="30"' in answer.text
    dom = rendered(chromium, f"{live}/?key=viewer-secret")
    assert dom.body.get("data-panels-rendered") == "7"


def test_exposed_without_a_viewer_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="viewer_key"):
        check_exposure(DashboardConfig(), "0.0.0.0")
    check_exposure(DashboardConfig(), "127.0.0.1")
    check_exposure(DashboardConfig(viewer_key="k"), "0.0.0.0")
