"""Train, serve, score and monitor with a known key and password, then search every file for them.

The tracking URI carries a password (``http://creditops:PASSWORD@127.0.0.1:PORT``)
to a real ``creditops mlflow-server`` on loopback (which ignores it: no auth app
there), the config file holds the admin key, and one command fails on a
PostgreSQL URL with the same password. Afterwards neither secret may appear in
any byte of the tracking server's store and artifacts, the run logs, the
reports, the scores or any command's output.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from creditops.config import load_config
from creditops.data import load_dataset
from serving_fixtures import Server
from support import make_settings
from test_infra import TrackingServer, creditops, start_tracking_server, write_toml

pytestmark = pytest.mark.slow

# unique per run: a hit can only come from this test
ADMIN_KEY = f"K3y-{uuid.uuid4().hex}"
PASSWORD = f"Pw-{uuid.uuid4().hex[:16]}"
FEEDBACK_KEY = f"Fk-{uuid.uuid4().hex}"


@pytest.fixture
def tracking_server(tmp_path: Path) -> Iterator[TrackingServer]:
    server = start_tracking_server(tmp_path, f"sqlite:///{tmp_path / 'server-mlflow.db'}")
    yield server
    server.stop()


def client_sections(root: Path, server_url: str) -> dict[str, dict[str, Any]]:
    tracking_uri = server_url.replace("http://", f"http://creditops:{PASSWORD}@")
    return {
        "mlflow": {"tracking_uri": tracking_uri, "artifact_location": ""},
        "data": {"cache_dir": str(root / "cache")},
        "train": {"families": ["logreg"], "trials_per_family": 2, "cv_folds": 3, "n_jobs": 1},
        "logging": {"runs_log": str(root / "runs.log")},
        "serve": {
            "admin_api_key": ADMIN_KEY,
            "feedback_api_key": FEEDBACK_KEY,
            "store_url": f"sqlite:///{root / 'inferences.db'}",
            "flush_interval_seconds": 0.05,
            "poll_seconds": 0,
        },
        "monitor": {"reports_dir": str(root / "reports"), "min_rows": 10, "window_rows": 500},
        "check": {"decisions_dir": str(root / "reports" / "decisions")},
    }


CONFIG_FILES = {"client.toml", "down.toml", "creditops.toml", "server.toml"}  # hold them on purpose


def search(root: Path, secrets: list[bytes]) -> tuple[int, list[str]]:
    """How many files under ``root`` were read (config files aside), and ``file: secret`` hits."""
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and p.name not in CONFIG_FILES]
    hits = [
        f"{path.relative_to(root)}: {secret.decode()}"
        for path in files
        for secret in secrets
        if secret in path.read_bytes()
    ]
    return len(files), hits


def _serve(server: Server) -> None:
    server.wait_ready(timeout=120)
    rows = load_dataset(load_config(None).data).features.head(60)
    applicants = [
        {k: (None if v != v else v) for k, v in row.items()} for row in rows.to_dict("records")
    ]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        scored = http.post("/predict", json=applicants)
        assert scored.status_code == 200
        # only a granted loan has an outcome: post one for the first approved applicant
        granted = [p for p in scored.json()["predictions"] if p["decision"] == "approve"]
        outcome = {"request_id": granted[0]["request_id"], "outcome": "bad"}
        posted = http.post("/feedback", json=outcome, headers={"X-Feedback-Key": FEEDBACK_KEY})
        assert posted.status_code == 200, posted.text
        wrong = http.post("/admin/reload", headers={"X-API-Key": "wrong"})
        assert wrong.status_code == 401
        reload = http.post("/admin/reload", headers={"X-API-Key": ADMIN_KEY})
        assert reload.status_code == 200, reload.text
    assert server.terminate() == 0  # drains the inference log


def test_no_key_or_password_is_stored_logged_or_printed(
    tmp_path: Path,
    tracking_server: TrackingServer,
    start_server: Callable[..., Server],
    capsys: pytest.CaptureFixture[str],
) -> None:
    sections = client_sections(tmp_path, tracking_server.url)
    config = write_toml(tmp_path / "client.toml", sections)
    outputs = []
    trained = creditops(config, "train", "--promote", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    outputs.append(trained)

    _serve(start_server(make_settings(tmp_path, **sections)))
    rows = load_dataset(load_config(None).data).features.head(50)
    rows.to_csv(tmp_path / "applicants.csv", index=False)
    scores = tmp_path / "scores" / "scores.csv"
    scored = creditops(
        config, "score", str(tmp_path / "applicants.csv"), "-o", str(scores), cwd=tmp_path
    )
    assert scored.returncode == 0, scored.stderr
    monitored = creditops(config, "monitor", cwd=tmp_path)
    assert monitored.returncode == 0, monitored.stderr
    outputs += [scored, monitored, creditops(config, "models", "--json", cwd=tmp_path)]
    # an error naming a database URL with the password: one line, password hidden
    down = {
        **sections["serve"],
        "store_url": f"postgresql+psycopg://creditops:{PASSWORD}@127.0.0.1:9/x",
    }
    failing = write_toml(tmp_path / "down.toml", {**sections, "serve": down})
    failed = creditops(failing, "monitor", cwd=tmp_path)
    assert failed.returncode != 0 and "creditops:***@127.0.0.1:9" in failed.stderr, failed.stderr
    outputs.append(failed)

    # the server read its backend store from the environment, not a default
    assert (tmp_path / "server-mlflow.db").is_file() and not (tmp_path / "mlflow.db").exists()
    logged = [p.read_text() for p in (tmp_path / "server-artifacts").rglob("config.json")]
    assert logged and '"**********"' in logged[0] and "creditops:***@127.0.0.1" in logged[0]

    # the MLflow store (database and artifacts), the run logs, the reports, the scores,
    # the inference log, the service's output: every file the commands left
    searched, hits = search(tmp_path, [s.encode() for s in (ADMIN_KEY, FEEDBACK_KEY, PASSWORD)])
    for done in outputs:
        text = done.stdout + done.stderr
        hits += [
            f"output of {done.args[3:]}: {line}"
            for line in text.splitlines()
            if any(s in line for s in (ADMIN_KEY, FEEDBACK_KEY, PASSWORD))
        ]
    with capsys.disabled():
        print(
            f"\nsecrets search: {searched} files and {len(outputs)} command outputs, {len(hits)} hits"
        )
    assert searched > 20
    assert hits == []
