"""Clients of ``mlflow models serve`` against a real ``creditops serve`` on a loopback port.

MLflow's own ``ScoringServerClient`` (``/ping``, ``/version``, ``/invocations``),
MLflow's 400 ``BAD_REQUEST`` refusals on ``/invocations``, and the original
pipeline's simulator: its liveness check and its integer category codes
(behind ``[serve] original_codes``).
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from creditops.serving.original_codes import SWITCH_HINT
from creditops.serving.schemas import EXAMPLE_APPLICANT
from creditops.serving.store import InferenceStore
from serving_fixtures import FEEDBACK_HEADERS, Server, ServingRegistry, settings_for

pytestmark = pytest.mark.slow

# The original simulator's row: categories as its model's codes, money with cents.
ORIGINAL_ROW: dict[str, Any] = {
    **EXAMPLE_APPLICANT,
    "Home": 1,  # owner
    "Marital": 2,  # single
    "Records": 1,  # yes
    "Job": 3,  # others
    "Income": 129.5,
    "Expenses": 73.25,
    "Amount": 1004.6,
    "Price": 1210.35,
}
AS_LABELS: dict[str, Any] = {
    **ORIGINAL_ROW,
    "Home": "owner",
    "Marital": "single",
    "Records": "yes",
    "Job": "others",
}


def start(registry: ServingRegistry, workdir: Path, **serve: Any) -> Server:
    store_url = f"sqlite:///{workdir / 'inferences.db'}"
    running = Server(settings_for(registry.root, store_url=store_url, **serve), workdir)
    running.wait_ready()
    return running


@pytest.fixture(scope="module")
def server(
    serving_registry: ServingRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The default service: ``[serve] original_codes`` off."""
    running = start(serving_registry, tmp_path_factory.mktemp("mlflow-compat"))
    yield running
    running.terminate()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


def test_mlflow_scoring_server_client_waits_and_scores(
    server: Server, client: httpx.Client
) -> None:
    import pandas as pd
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    rows = [EXAMPLE_APPLICANT, {**EXAMPLE_APPLICANT, "Records": "yes", "Home": None}]
    mlflow_client = ScoringServerClient("127.0.0.1", server.port)
    mlflow_client.wait_server_ready(timeout=10, scoring_server_proc=server.process)
    assert mlflow_client.get_version() == importlib.metadata.version("mlflow")
    predictions = mlflow_client.invoke(pd.DataFrame(rows)).get_predictions("ndarray")
    scored = client.post("/predict", json=rows).json()["predictions"]
    assert predictions.tolist() == [1 if p["decision"] == "decline" else 0 for p in scored]


def test_ping_and_version_answer_as_mlflow_does(client: httpx.Client) -> None:
    ping = client.get("/ping")
    assert (ping.status_code, ping.text) == (200, "\n")
    assert ping.headers["content-type"] == "application/json"
    version = client.get("/version")
    assert (version.status_code, version.text) == (200, importlib.metadata.version("mlflow"))
    assert client.get("/health").json() == {"status": "ok"}  # creditops' own, unchanged


@pytest.mark.parametrize(
    ("body", "in_message"),
    [
        (b'{"dataframe_records": [{}]}', "row 1, Seniority: missing is required"),
        (b'{"dataframe_records": [{"Age": 12}]}', "row 1, Seniority"),
        (b'{"dataframe_records": ', "not valid JSON"),
        (b'{"records": []}', "expected exactly one of dataframe_records"),
        (b"[1, 2]", "expected an object with dataframe_records"),
        (b'{"dataframe_records": 5}', "dataframe_records: 5 is not a list"),
        (b'{"dataframe_split": {"data": [[1]]}}', "dataframe_split needs 'columns'"),
        (b'{"dataframe_records": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "not valid JSON"),
    ],
    ids=[
        "empty row",
        "bad row",
        "malformed",
        "no mlflow key",
        "a list",
        "not rows",
        "split",
        "deep",
    ],
)
def test_a_bad_invocation_is_mlflows_400(
    client: httpx.Client, body: bytes, in_message: str
) -> None:
    answer = client.post("/invocations", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    payload = answer.json()
    assert payload["error_code"] == "BAD_REQUEST" and in_message in payload["message"]
    assert "\n" not in payload["message"] and "detail" not in payload


def test_the_400_keeps_every_violation(client: httpx.Client) -> None:
    rows = [EXAMPLE_APPLICANT, {**EXAMPLE_APPLICANT, "Age": 12, "Records": "maybe"}]
    payload = client.post("/invocations", json={"dataframe_records": rows}).json()
    assert [(e["row"], e["field"], e["value"]) for e in payload["errors"]] == [
        (2, "Age", 12),
        (2, "Records", "maybe"),
    ]
    assert payload["message"].startswith("2 contract violation(s) in 1 row(s); first: row 2, Age")


def test_other_refusals_keep_their_status_in_mlflows_shape(client: httpx.Client) -> None:
    text = client.post("/invocations", content=b"{}", headers={"content-type": "text/csv"})
    assert text.status_code == 415 and text.json()["error_code"] == "BAD_REQUEST"
    assert "application/json" in text.json()["message"]


def test_predict_keeps_its_own_422(client: httpx.Client) -> None:
    answer = client.post("/predict", json=[{}])
    assert answer.status_code == 422
    assert set(answer.json()) == {"detail", "errors"}


def test_integer_codes_are_refused_naming_the_switch(client: httpx.Client) -> None:
    rows = [{**EXAMPLE_APPLICANT, "Age": 12}, ORIGINAL_ROW]
    answer = client.post("/invocations", json={"dataframe_records": rows})
    assert answer.status_code == 400
    message = answer.json()["message"]
    assert message.endswith(f"row 2, Home: 1 is an integer code: {SWITCH_HINT}"), message
    codes = [e for e in answer.json()["errors"] if e["row"] == 2]
    assert [e["field"] for e in codes] == ["Home", "Marital", "Records", "Job"]


@pytest.fixture(scope="module")
def original_server(
    serving_registry: ServingRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The service with ``[serve] original_codes = true``."""
    running = start(serving_registry, tmp_path_factory.mktemp("original"), original_codes=True)
    yield running
    running.terminate()


def test_the_original_simulator_runs_unchanged(original_server: Server) -> None:
    with httpx.Client(base_url=original_server.url, timeout=30.0) as http:
        # its liveness check: it accepts only 200 or 400
        assert http.post("/invocations", json={"dataframe_records": [{}]}).status_code == 400
        answer = http.post("/invocations", json={"dataframe_records": [ORIGINAL_ROW]})
        assert answer.status_code == 200, answer.text
        labelled = http.post("/invocations", json={"dataframe_records": [AS_LABELS]}).json()
        assert answer.json() == labelled
        scored = http.post("/predict", json=AS_LABELS).json()["predictions"][0]
        # feedback waits until the row is written
        body = {"request_id": scored["request_id"], "outcome": "good"}
        http.post("/feedback", json=body, headers=FEEDBACK_HEADERS)
    store = InferenceStore(f"sqlite:///{original_server.log_path.parent / 'inferences.db'}")
    try:
        frame = store.read_frame()
    finally:
        store.close()
    assert {"owner"} == set(frame["Home"]) and {"others"} == set(frame["Job"])
    assert set(frame["Income"]) == {129.5} and set(frame["Amount"]) == {1004.6}


def test_an_unknown_original_code_is_refused_with_the_table(original_server: Server) -> None:
    row = {**ORIGINAL_ROW, "Home": 9}
    with httpx.Client(base_url=original_server.url, timeout=30.0) as http:
        answer = http.post("/invocations", json={"dataframe_records": [row]})
    assert answer.status_code == 400
    assert (
        "row 1, Home: 9 is not one of the original pipeline's codes (0=rent"
        in (answer.json()["message"])
    )
