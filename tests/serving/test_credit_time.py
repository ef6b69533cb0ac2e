"""Credit time through the real service: application and outcome dates, declines without outcomes.

A real service (in this process, on a loopback port) over a real SQLite
inference log and a real MLflow registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from creditops.serving.app import create_app
from creditops.serving.schemas import EXAMPLE_APPLICANT
from creditops.serving.store import InferenceStore
from serving_fixtures import (
    FEEDBACK_HEADERS,
    InProcessServer,
    ServingRegistry,
    copy_registry,
    wait_until,
)

pytestmark = pytest.mark.slow

RISKY = {**EXAMPLE_APPLICANT, "Records": "yes", "Income": None, "Home": None, "Debt": None}


@pytest.fixture(scope="module")
def registry_copy(
    serving_registry: ServingRegistry, tmp_path_factory: pytest.TempPathFactory
) -> ServingRegistry:
    root = tmp_path_factory.mktemp("credit-time")
    return copy_registry(
        serving_registry,
        root,
        poll_seconds=0,
        store_url=f"sqlite:///{root}/inferences.db",
        earliest_application_date="2020-01-01",
    )


@pytest.fixture(scope="module")
def http(registry_copy: ServingRegistry) -> Iterator[httpx.Client]:
    settings = registry_copy.settings
    app = create_app(settings.serve, settings.mlflow)
    with InProcessServer(app) as server, httpx.Client(base_url=server.url, timeout=30.0) as client:
        wait_until(lambda: client.get("/ready").status_code == 200)
        yield client


def stored(registry: ServingRegistry, request_id: str) -> dict[str, Any]:
    """One row's dates and outcome, read with the test's own SQL."""
    engine = sa.create_engine(registry.settings.serve.store_url)
    try:
        with engine.connect() as connection:
            row = (
                connection.execute(
                    sa.text(
                        "SELECT application_at, created_at, decision, explored, outcome, observed_at "
                        "FROM inferences WHERE request_id = :id"
                    ),
                    {"id": request_id},
                )
                .mappings()
                .first()
            )
    finally:
        engine.dispose()
    assert row is not None
    return dict(row)


def score(http: httpx.Client, *rows: dict[str, Any]) -> list[dict[str, Any]]:
    response = http.post("/predict", json=list(rows))
    assert response.status_code == 200, response.text
    predictions: list[dict[str, Any]] = response.json()["predictions"]
    return predictions


def feedback(http: httpx.Client, request_id: str, **extra: Any) -> httpx.Response:
    body = {"request_id": request_id, "outcome": "bad", **extra}
    return http.post("/feedback", json=body, headers=FEEDBACK_HEADERS)


def test_the_application_date_is_stored_next_to_the_scoring_time(
    http: httpx.Client, registry_copy: ServingRegistry
) -> None:
    dated, undated = score(
        http,
        {**EXAMPLE_APPLICANT, "application_at": "2024-03-15T10:30:00+02:00"},
        EXAMPLE_APPLICANT,
    )
    assert feedback(http, dated["request_id"], observed_at="2024-09-01").status_code == 200
    row = stored(registry_copy, dated["request_id"])
    assert str(row["application_at"]).startswith("2024-03-15 08:30:00")  # stored in UTC
    assert str(row["observed_at"]).startswith("2024-09-01 00:00:00")
    other = stored(registry_copy, undated["request_id"])
    assert other["application_at"] == other["created_at"]  # absent = when it was scored
    store = InferenceStore(registry_copy.settings.serve.store_url)
    try:
        frame = store.read_frame()
    finally:
        store.close()
    mine = frame.set_index("request_id").loc[dated["request_id"]]
    assert mine["application_at"] == datetime(2024, 3, 15, 8, 30, tzinfo=UTC)
    assert {"application_at", "explored", "observed_at", "threshold"} <= set(frame.columns)


FUTURE = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
BAD_DATES = [
    ("future", FUTURE, "is in the future"),
    ("before earliest", "2019-12-31", "is before the earliest application date 2020-01-01"),
    ("unparsable", "15/03/2024", "is not an ISO-8601 date or datetime"),
    ("a number", 1710000000, "is not an ISO-8601 date or datetime"),
]


@pytest.mark.parametrize(("case", "value", "rule"), BAD_DATES, ids=[c[0] for c in BAD_DATES])
def test_bad_application_dates_are_refused_naming_field_value_and_rule(
    http: httpx.Client, case: str, value: Any, rule: str
) -> None:
    rows = [EXAMPLE_APPLICANT, {**EXAMPLE_APPLICANT, "application_at": value}]
    response = http.post("/predict", json=rows)
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert (error["row"], error["field"]) == (2, "application_at")
    assert rule in error["rule"]
    assert str(value)[:10] in str(error["value"])
    assert "application_at" in response.json()["detail"]


def test_invocations_take_the_date_as_a_column_and_refuse_a_bad_one(
    http: httpx.Client, registry_copy: ServingRegistry
) -> None:
    columns = [*EXAMPLE_APPLICANT, "application_at"]
    good = {
        "dataframe_split": {
            "columns": columns,
            "data": [[*EXAMPLE_APPLICANT.values(), "2024-05-02"]],
        }
    }
    response = http.post("/invocations", json=good)
    assert response.status_code == 200, response.text
    bad = {"dataframe_split": {"columns": columns, "data": [[*EXAMPLE_APPLICANT.values(), FUTURE]]}}
    refused = http.post("/invocations", json=bad)
    assert refused.status_code == 400
    assert "application_at" in refused.json()["message"]
    assert "is in the future" in refused.json()["message"]


def test_an_outcome_dated_before_its_application_or_in_the_future_is_refused(
    http: httpx.Client, registry_copy: ServingRegistry
) -> None:
    (row,) = score(http, {**EXAMPLE_APPLICANT, "application_at": "2024-06-10"})
    early = feedback(http, row["request_id"], observed_at="2024-06-09T23:59:59Z")
    assert early.status_code == 422, early.text
    error = early.json()["errors"][0]
    assert error["field"] == "observed_at" and "is before the application" in error["rule"]
    assert "2024-06-10" in error["rule"]
    later = feedback(http, row["request_id"], observed_at=FUTURE)
    assert later.status_code == 422 and "is in the future" in later.json()["detail"]
    garbled = feedback(http, row["request_id"], observed_at="soon")
    assert garbled.status_code == 422 and "observed_at" in garbled.json()["detail"]
    assert stored(registry_copy, row["request_id"])["outcome"] is None  # nothing half-written


def test_an_outcome_for_a_declined_applicant_is_409(
    http: httpx.Client, registry_copy: ServingRegistry
) -> None:
    (row,) = score(http, RISKY)
    assert row["decision"] == "decline" and row["explored"] is False
    response = feedback(http, row["request_id"])
    assert response.status_code == 409, response.text
    assert "declined" in response.json()["detail"] and "no loan" in response.json()["detail"]
    assert stored(registry_copy, row["request_id"])["outcome"] is None


def test_every_decline_is_explored_at_share_one(
    serving_registry: ServingRegistry, tmp_path: Path
) -> None:
    copy = copy_registry(
        serving_registry,
        tmp_path,
        poll_seconds=0,
        store_url=f"sqlite:///{tmp_path}/i.db",
        explore_share=1.0,
    )
    app = create_app(copy.settings.serve, copy.settings.mlflow)
    with InProcessServer(app) as server, httpx.Client(base_url=server.url, timeout=30.0) as client:
        wait_until(lambda: client.get("/ready").status_code == 200)
        (row,) = score(client, RISKY)
        assert (row["decision"], row["explored"]) == ("approve", True)
        assert feedback(client, row["request_id"]).status_code == 200
    logged = stored(copy, row["request_id"])
    assert (logged["decision"], bool(logged["explored"]), logged["outcome"]) == (
        "approve",
        True,
        "bad",
    )
