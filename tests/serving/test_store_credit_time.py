"""The inference log's credit-time columns: migration of an older table, the outcome rules."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from creditops import schema
from creditops.serving.store import InferenceStore, OutcomeResult

APPLIED = datetime(2024, 3, 1, 9, tzinfo=UTC)


def row(**changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "request_id": uuid.uuid4().hex,
        "batch_id": uuid.uuid4().hex,
        "created_at": datetime.now(UTC),
        "model_name": "credit-risk",
        "model_version": 1,
        "probability": 0.2,
        "decision": "approve",
        "threshold": 0.4,
        "latency_ms": 1.0,
        "application_at": APPLIED,
        **{name: None for name in schema.FEATURES},
    }
    out.update(changes)
    return out


def test_an_older_table_gains_the_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    engine = sa.create_engine(url)
    features = ", ".join(
        f'"{name}" {"VARCHAR(32)" if name in schema.CATEGORICAL else "FLOAT"}'
        for name in schema.FEATURES
    )
    with engine.begin() as connection:  # the table as the first release created it
        connection.execute(
            sa.text(
                "CREATE TABLE inferences (request_id VARCHAR(32) PRIMARY KEY, batch_id "
                "VARCHAR(32) NOT NULL, created_at DATETIME NOT NULL, model_name VARCHAR(200) "
                f"NOT NULL, model_version INTEGER NOT NULL, {features}, probability FLOAT NOT "
                "NULL, decision VARCHAR(16) NOT NULL, threshold FLOAT NOT NULL, latency_ms FLOAT "
                "NOT NULL, outcome VARCHAR(8), outcome_at DATETIME)"
            )
        )
        connection.execute(
            sa.text(
                "INSERT INTO inferences (request_id, batch_id, created_at, model_name, "
                "model_version, probability, decision, threshold, latency_ms) VALUES "
                "('a', 'b', '2024-05-06 07:08:09.000000', 'credit-risk', 1, 0.1, 'approve', "
                "0.4, 1.0)"
            )
        )
    engine.dispose()
    store = InferenceStore(url)
    store.create()
    store.create()  # a second open finds every column there
    try:
        frame = store.read_frame()
        assert frame.loc[0, "application_at"] == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
        assert not frame.loc[0, "explored"] and frame["observed_at"].isna().all()
        assert frame.loc[0, "threshold"] == 0.4
        assert store.record_outcome("a", "good") is OutcomeResult.RECORDED
    finally:
        store.close()


def test_only_a_granted_loan_gets_an_outcome_and_not_before_its_application(
    tmp_path: Path,
) -> None:
    check_outcome_rules(InferenceStore(f"sqlite:///{tmp_path}/log.db"))


@pytest.mark.postgres
def test_the_outcome_rules_on_postgresql(postgres_database: str) -> None:
    check_outcome_rules(InferenceStore(postgres_database))


def check_outcome_rules(store: InferenceStore) -> None:
    """Declined: no outcome; not before the application; explored ones are granted."""
    store.create()
    granted, declined, explored = row(), row(decision="decline"), row(explored=True)
    store.write_rows([granted, declined, explored])
    try:
        early = APPLIED - timedelta(seconds=1)
        later = APPLIED + timedelta(days=90)
        assert store.record_outcome(declined["request_id"], "bad") is OutcomeResult.DECLINED
        result = store.record_outcome(granted["request_id"], "bad", observed_at=early)
        assert result is OutcomeResult.BEFORE_APPLICATION
        assert store.record_outcome(granted["request_id"], "bad", observed_at=later) is (
            OutcomeResult.RECORDED
        )
        assert store.record_outcome(explored["request_id"], "good") is OutcomeResult.RECORDED
        assert store.application_time(granted["request_id"]) == APPLIED
        frame = store.read_frame().set_index("request_id")
        assert frame.loc[granted["request_id"], "observed_at"] == later
        assert frame["outcome"].isna().tolist() == [False, True, False]
        assert bool(frame.loc[explored["request_id"], "explored"])
    finally:
        store.close()
