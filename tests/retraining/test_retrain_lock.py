"""One retraining at a time: the lock row in the inference store's database.

Two checks at once (threads, each with its own connections, as two processes
have), a check while another host holds the lock, and stale locks (a dead
owner on this host, an old one elsewhere) broken with a log line. SQLite
here; the same code on PostgreSQL is marked ``postgres``.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from creditops import registry
from creditops.config import CheckConfig, Settings
from creditops.monitoring.result import MonitorResult
from creditops.retraining import run as retrain
from creditops.retraining.lock import IN_PROGRESS, RETRAIN_LOCK, retrain_exclusively
from creditops.retraining.policy import TriggerDecision
from creditops.serving.locks import StoreLock, locks_table
from creditops.training.run import TrainingReport
from creditops.training.sections import TrainingSections
from support import make_settings

NOW = datetime.now(UTC)
OWNER = re.compile(r"a retraining is in progress since \S+ \(owner [^:]+:\d+:[0-9a-f]{8}\)")


def _decision() -> TriggerDecision:
    return TriggerDecision(
        created_at=NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        champion_version=1,
        fired=True,
        action="retrain",
        reasons=["drift"],
        rules=[],
        figures={},
        cooldown_minutes_left=0.0,
    )


def _two_checks_at_once(url: str, config: CheckConfig) -> tuple[list[str], dict[str, str]]:
    """Two threads enter the locked section together; returns who retrained and each action."""
    ran: list[str] = []
    actions: dict[str, str] = {}
    messages: dict[str, str] = {}
    start = threading.Barrier(2)
    loser_done = threading.Event()

    def check(name: str) -> None:
        decision = _decision()

        def retraining() -> Exception | None:
            ran.append(name)
            loser_done.wait(30)  # hold the lock until the other check has given up
            return None

        start.wait(10)
        retrain_exclusively(decision, retraining, store_url=url, config=config, now=NOW)
        actions[name] = decision.action
        messages[name] = " ".join(decision.messages)
        if decision.action != "retrain":
            loser_done.set()

    threads = [threading.Thread(target=check, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return ran, actions | {f"{k}-messages": v for k, v in messages.items()}


def test_two_checks_at_once_one_retrains(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inferences.db'}"
    config = CheckConfig(decisions_dir=tmp_path / "decisions")
    ran, actions = _two_checks_at_once(url, config)
    assert len(ran) == 1, ran
    winner = ran[0]
    loser = "b" if winner == "a" else "a"
    assert actions[winner] == "retrain" and actions[loser] == IN_PROGRESS
    assert OWNER.search(actions[f"{loser}-messages"]), actions
    # released: the next check takes the lock and retrains
    decision = _decision()
    retrain_exclusively(decision, lambda: None, store_url=url, config=config, now=NOW)
    assert decision.action == "retrain"
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(locks_table)).scalar() == 0
    engine.dispose()


def _hold(url: str, owner: str, age: timedelta = timedelta(0)) -> None:
    """Write the lock row of ``owner``, taken ``age`` ago (another process's lock)."""
    assert StoreLock(url, RETRAIN_LOCK, stale_after_seconds=3600, owner=owner).acquire() is None
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            locks_table.update()
            .where(locks_table.c.name == RETRAIN_LOCK)
            .values(acquired_at=datetime.now(UTC) - age)
        )
    engine.dispose()


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.mark.parametrize("stale", ["dead owner on this host", "old owner elsewhere"])
def test_a_stale_lock_is_broken_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, stale: str
) -> None:
    if stale == "dead owner on this host":
        owner, age, why = (
            f"{socket.gethostname()}:{_dead_pid()}:deadbeef",
            timedelta(0),
            "its process is gone",
        )
    else:
        owner, age, why = "elsewhere:4242:0ddba11a", timedelta(hours=2), "120.0 min old"
    url = f"sqlite:///{tmp_path / 'inferences.db'}"
    _hold(url, owner, age)
    lock = StoreLock(url, RETRAIN_LOCK, stale_after_seconds=3600)
    with caplog.at_level(logging.WARNING, logger="creditops.serving.locks"):
        assert lock.acquire() is None
    assert "breaking stale lock retraining held since" in caplog.text
    assert f"(owner {owner}): {why}" in caplog.text
    lock.release()


def test_a_live_lock_elsewhere_is_not_broken(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'inferences.db'}"
    _hold(url, "elsewhere:4242:0ddba11a", timedelta(minutes=30))
    holder = StoreLock(url, RETRAIN_LOCK, stale_after_seconds=3600).acquire()
    assert holder is not None and holder.owner == "elsewhere:4242:0ddba11a"


def test_a_check_during_a_retraining_elsewhere_records_it(
    trained_store: tuple[Settings, TrainingReport], tmp_path: Path
) -> None:
    shared, _ = trained_store
    settings = make_settings(
        tmp_path,
        mlflow={
            "tracking_uri": shared.mlflow.tracking_uri,
            "artifact_location": shared.mlflow.artifact_location,
        },
    )
    client = registry.connect(settings.mlflow)
    champion = registry.resolve_alias(client, settings.mlflow.registered_model)
    _hold(settings.serve.store_url, "elsewhere:4242:0ddba11a", timedelta(minutes=5))
    drifted = MonitorResult(
        created_at=NOW.strftime("%Y-%m-%dT%H:%M:%SZ"),
        model_name=champion.name,
        champion_version=champion.version,
        data_hash=champion.data_hash,
        threshold=champion.threshold,
        window="last 400 rows of the inference log",
        rows=400,
        labelled_rows=0,
        reference_rows=1_000,
        drift_share=1.0,
        feature_psi={"Income": 0.01},
    )
    decision = retrain.run_check(
        settings.check,
        settings.promote,
        TrainingSections.from_settings(settings),
        retrain=True,
        store_url=settings.serve.store_url,
        window_rows=settings.monitor.window_rows,
        reports_dir=settings.monitor.reports_dir,
        monitor_result=drifted,
        now=NOW,
    )
    assert decision.fired and decision.action == IN_PROGRESS
    assert decision.retrain is None and decision.retrain_error == ""
    record = json.loads((settings.check.decisions_dir / retrain.DECISION_LATEST).read_text())
    assert record["action"] == IN_PROGRESS
    assert any(
        "a retraining is in progress since" in m and "(owner elsewhere:4242:0ddba11a)" in m
        for m in record["messages"]
    )
    assert retrain.read_last_retrain(settings.check.decisions_dir) is None


@pytest.mark.postgres
def test_two_checks_at_once_on_postgresql(postgres_database: str, tmp_path: Path) -> None:
    config = CheckConfig(decisions_dir=tmp_path / "decisions")
    ran, actions = _two_checks_at_once(postgres_database, config)
    assert len(ran) == 1 and sorted(actions[k] for k in ("a", "b")) == [IN_PROGRESS, "retrain"]
