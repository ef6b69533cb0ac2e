"""The scoring service end to end: a real `creditops serve` on a loopback port, over HTTP."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from creditops import schema
from creditops.reason_codes import REASON_CODES
from creditops.serving.schemas import EXAMPLE_APPLICANT
from creditops.serving.store import InferenceStore
from independent_scores import expected_scores
from serving_fixtures import FEEDBACK_HEADERS, Server, ServingRegistry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(
    serving_registry: ServingRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server for the module, serving the champion (version 1, xgboost)."""
    workdir = tmp_path_factory.mktemp("serve")
    running = Server(serving_registry.settings, workdir)
    running.wait_ready()
    yield running
    running.terminate()


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as http:
        yield http


def applicant(**changes: Any) -> dict[str, Any]:
    return {**EXAMPLE_APPLICANT, **changes}


def test_health_ready_and_model(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200 and ready.json()["model_version"] == 1
    model = client.get("/model").json()
    assert model["version"] == 1 and model["alias"] == "champion"
    assert model["family"] == "xgboost" and model["threshold"] == 0.35
    assert model["metrics"] == {"test_roc_auc": 0.8} and len(model["data_hash"]) == 64
    assert model["inference_path"] == "compiled" and model["contribution_unit"] == "log-odds"
    assert model["contract"] == json.loads(json.dumps(schema.describe_contract()))


def test_predict_one_applicant(client: httpx.Client, serving_registry: ServingRegistry) -> None:
    body = client.post("/predict", json=applicant()).json()
    assert len(body["batch_id"]) == 32
    (prediction,) = body["predictions"]
    assert len(prediction["request_id"]) == 32
    assert (prediction["model_name"], prediction["model_version"]) == ("credit-risk", 1)
    # what version 1's registered pipeline says, scored here at its tagged threshold
    expected = expected_scores(serving_registry.settings.mlflow, 1, [applicant()])
    assert prediction["probability"] == pytest.approx(expected.probability[0], abs=1e-6)
    assert prediction["decision"] == expected.decisions[0]


def test_predict_a_list_with_reasons_toward_decline(
    client: httpx.Client, serving_registry: ServingRegistry
) -> None:
    risky = applicant(Records="yes", Income=None, Home=None, Debt=None)
    body = client.post("/predict", json=[applicant(), risky]).json()
    safe, bad = body["predictions"]
    expected = expected_scores(serving_registry.settings.mlflow, 1, [applicant(), risky])
    assert expected.decisions == ["approve", "decline"]  # the rows tell the two decisions apart
    assert [safe["decision"], bad["decision"]] == expected.decisions
    np.testing.assert_allclose(
        [safe["probability"], bad["probability"]], expected.probability, rtol=0, atol=1e-6
    )
    reasons = bad["reasons"]
    assert 1 <= len(reasons) <= 4 and safe["reasons"] == []  # reasons for a decline only
    assert all(r == REASON_CODES[r["feature"]].as_reason(r["value"]) for r in reasons)
    assert REASON_CODES["Records"].as_reason("yes") in reasons
    assert len({p["request_id"] for p in body["predictions"]}) == 2


def test_predict_without_reasons(client: httpx.Client) -> None:
    body = client.post("/predict?reasons=false", json=applicant()).json()
    assert body["predictions"][0]["reasons"] == []


def test_a_bad_reasons_flag_is_refused(client: httpx.Client) -> None:
    answer = client.post("/predict?reasons=maybe", json=applicant())
    assert answer.status_code == 422 and "reasons" in answer.json()["detail"]
    assert client.get("/predict").status_code == 405


def test_original_client_payload_scores(
    client: httpx.Client, serving_registry: ServingRegistry
) -> None:
    rows = [applicant(), applicant(Records="yes", Income=None, Home=None, Debt=None)]
    answer = client.post("/invocations", json={"dataframe_records": rows})
    assert answer.status_code == 200
    expected = expected_scores(serving_registry.settings.mlflow, 1, rows)
    assert sorted(expected.labels) == [0, 1]  # one approve, one decline: a constant answer fails
    assert answer.json() == {"predictions": expected.labels}
    assert len(answer.headers["x-batch-id"]) == 32


@pytest.mark.parametrize(
    "payload",
    [
        {
            "dataframe_split": {
                "columns": list(EXAMPLE_APPLICANT),
                "data": [list(EXAMPLE_APPLICANT.values())],
            }
        },
        {"instances": [EXAMPLE_APPLICANT]},
        {"inputs": [EXAMPLE_APPLICANT]},
        {"inputs": {k: [v] for k, v in EXAMPLE_APPLICANT.items()}},
    ],
    ids=["dataframe_split", "instances", "inputs-records", "inputs-columns"],
)
def test_every_mlflow_input_format_scores(
    client: httpx.Client, serving_registry: ServingRegistry, payload: dict[str, Any]
) -> None:
    expected = expected_scores(serving_registry.settings.mlflow, 1, [EXAMPLE_APPLICANT])
    answer = client.post("/invocations", json=payload)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": expected.labels}


def test_feedback_records_once_and_refuses_a_conflict(client: httpx.Client) -> None:
    def feedback(body: dict[str, str]) -> httpx.Response:
        return client.post("/feedback", json=body, headers=FEEDBACK_HEADERS)

    request_id = client.post("/predict", json=applicant()).json()["predictions"][0]["request_id"]
    # the row may still be queued in the writer: feedback must wait for it, not 404
    first = feedback({"request_id": request_id, "outcome": "bad"})
    assert first.status_code == 200 and first.json()["status"] == "recorded"
    again = feedback({"request_id": request_id, "outcome": "bad"})
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    conflict = feedback({"request_id": request_id, "outcome": "good"})
    assert conflict.status_code == 409
    assert "already has the outcome 'bad'" in conflict.json()["detail"]
    unknown = feedback({"request_id": "a" * 32, "outcome": "good"})
    assert unknown.status_code == 404 and "a" * 32 in unknown.json()["detail"]
    invalid = feedback({"request_id": request_id, "outcome": "maybe"})
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "outcome"


def test_metrics_count_routes_decisions_and_version(client: httpx.Client) -> None:
    client.post("/predict", json=applicant())
    client.post("/predict", json=applicant(Age=3))
    text = client.get("/metrics").text
    assert 'creditops_requests_total{route="/predict",status="200"}' in text
    assert 'creditops_requests_total{route="/predict",status="422"}' in text
    assert 'creditops_request_latency_seconds_bucket{le="0.005",route="/predict"}' in text
    assert 'creditops_decisions_total{decision="approve"}' in text
    assert "creditops_model_version 1.0" in text


def test_docs_serve_a_working_example(client: httpx.Client) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    example = body["examples"]["one applicant"]["value"]
    answer = client.post("/predict", json=example)
    assert answer.status_code == 200
    assert "PredictResponse" in spec["components"]["schemas"]


def test_admin_reload_needs_the_key(client: httpx.Client) -> None:
    assert client.post("/admin/reload").status_code == 401
    assert client.post("/admin/reload", headers={"X-API-Key": "wrong"}).status_code == 401
    answer = client.post("/admin/reload", headers={"X-API-Key": "test-key"})
    assert answer.status_code == 200
    assert answer.json()["changed"] is False and answer.json()["model_version"] == 1


def test_every_scored_row_is_logged(
    client: httpx.Client, serving_registry: ServingRegistry
) -> None:
    body = client.post("/predict", json=[applicant(Income=None), applicant(Age=41)]).json()
    ids = {p["request_id"] for p in body["predictions"]}
    for request_id in ids:  # feedback (recorded, or 409 for a decline) waits for the write
        body = {"request_id": request_id, "outcome": "good"}
        client.post("/feedback", json=body, headers=FEEDBACK_HEADERS)
    store = InferenceStore(serving_registry.settings.serve.store_url)
    frame = store.read_frame()
    store.close()
    logged = frame[frame["request_id"].isin(ids)]
    assert len(logged) == 2
    assert set(logged["Age"]) == {30.0, 41.0} and logged["Income"].isna().sum() == 1
    assert (logged["model_version"] == 1).all()


# --- bad input: every case a 4xx naming row, field, value and rule -------------------

BAD_ROWS: list[tuple[str, Any, int, list[tuple[int, str, Any, str]]]] = [
    ("missing field", [applicant(Age=None)], 422, [(1, "Age", None, "is required")]),
    (
        "absent field",
        [{k: v for k, v in EXAMPLE_APPLICANT.items() if k != "Price"}],
        422,
        [(1, "Price", None, "is required")],
    ),
    ("wrong type", [applicant(Age="thirty")], 422, [(1, "Age", "thirty", "is not a number")]),
    ("number as text", [applicant(Amount="800")], 422, [(1, "Amount", "800", "is not a number")]),
    ("boolean", [applicant(Debt=True)], 422, [(1, "Debt", True, "is not a number")]),
    ("below minimum", [applicant(Age=17)], 422, [(1, "Age", 17, "is below the minimum 18")]),
    ("above maximum", [applicant(Time=121)], 422, [(1, "Time", 121, "is above the maximum 120")]),
    ("exclusive minimum", [applicant(Income=0)], 422, [(1, "Income", 0, "must be greater than 0")]),
    ("fraction", [applicant(Age=30.5)], 422, [(1, "Age", 30.5, "must be a whole number")]),
    (
        "unknown category",
        [applicant(Home="castle")],
        422,
        [(1, "Home", "castle", "is not one of rent, owner, parents, priv, other, ignore")],
    ),
    ("unknown field", [applicant(Salary=3)], 422, [(1, "Salary", 3, "is not a contract field")]),
    (
        "every row and field named",
        [applicant(), applicant(Age=12, Records="maybe"), applicant(Price=0)],
        422,
        [
            (2, "Age", 12, "is below the minimum 18"),
            (2, "Records", "maybe", "is not one of no, yes"),
            (3, "Price", 0, "is below the minimum 1"),
        ],
    ),
    ("row not an object", [applicant(), 7], 422, [(2, "(row)", 7, "must be an object")]),
    ("empty list", [], 422, []),
]


@pytest.mark.parametrize(
    ("payload", "status", "expected"),
    [case[1:] for case in BAD_ROWS],
    ids=[case[0] for case in BAD_ROWS],
)
def test_bad_rows_are_refused_with_every_violation(
    client: httpx.Client, payload: Any, status: int, expected: list[tuple[int, str, Any, str]]
) -> None:
    # /invocations answers as `mlflow models serve` does: 400, the summary in "message"
    for route, body, code, summary in (
        ("/predict", payload, status, "detail"),
        ("/invocations", {"dataframe_records": payload}, 400, "message"),
    ):
        answer = client.post(route, json=body)
        assert answer.status_code == code, (route, answer.text)
        errors = answer.json()["errors"]
        assert [(e["row"], e["field"], e["value"]) for e in errors] == [e[:3] for e in expected]
        for error, (_, _, _, rule) in zip(errors, expected, strict=True):
            assert error["rule"].startswith(rule), error
        assert answer.json()[summary]


RAW_BODIES: list[tuple[str, bytes, dict[str, str], int, tuple[str, Any, str] | None]] = [
    ("malformed JSON", b'{"Age": 30,', {}, 400, None),
    ("not JSON at all", b"hello", {}, 400, None),
    ("nested past the parser's limit", b"[" * 100_000 + b"]" * 100_000, {}, 400, None),
    (
        "NaN",
        json.dumps([applicant(Income=math.nan)]).encode(),
        {},
        422,
        ("Income", "nan", "is not finite"),
    ),
    (
        "Infinity",
        json.dumps([applicant(Debt=math.inf)]).encode(),
        {},
        422,
        ("Debt", "inf", "is not finite"),
    ),
    (
        "wrong content type",
        json.dumps(applicant()).encode(),
        {"content-type": "text/plain"},
        415,
        None,
    ),
    (
        "form content type",
        b"Age=30",
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        None,
    ),
    ("a bare number", b"42", {}, 422, None),
]


@pytest.mark.parametrize(
    ("body", "headers", "status", "expected"),
    [case[1:] for case in RAW_BODIES],
    ids=[case[0] for case in RAW_BODIES],
)
def test_bad_bodies_are_refused_in_json(
    client: httpx.Client,
    body: bytes,
    headers: dict[str, str],
    status: int,
    expected: tuple[str, Any, str] | None,
) -> None:
    answer = client.post(
        "/predict", content=body, headers={"content-type": "application/json", **headers}
    )
    assert answer.status_code == status, answer.text
    payload = answer.json()
    assert payload["detail"] and "Traceback" not in answer.text
    if expected is not None:
        (error,) = payload["errors"]
        assert (error["row"], error["field"], error["value"], error["rule"]) == (1, *expected)


def test_too_many_rows_and_too_large_a_body(
    serving_registry: ServingRegistry, tmp_path: Path
) -> None:
    from serving_fixtures import settings_for

    settings = settings_for(
        serving_registry.root, max_batch_rows=5, max_body_bytes=4096, poll_seconds=0
    )
    running = Server(settings, tmp_path)
    try:
        running.wait_ready()
        with httpx.Client(base_url=running.url, timeout=30.0) as http:
            many = http.post("/predict", json=[applicant()] * 6)
            assert many.status_code == 413 and "limit of 5" in many.json()["detail"]
            big = http.post("/predict", json=[applicant(Job="x" * 5000)])
            assert big.status_code == 413 and "4096 bytes" in big.json()["detail"]
            chunked = http.post(
                "/predict",
                content=iter([b"[", b" " * 5000, b"]"]),
                headers={"content-type": "application/json"},
            )
            assert chunked.status_code == 413
            assert http.post("/predict", json=[applicant()] * 5).status_code == 200
    finally:
        running.terminate()


def test_the_server_keeps_serving_after_bad_input(client: httpx.Client) -> None:
    for _ in range(3):
        client.post("/predict", content=b"\xff\xfe", headers={"content-type": "application/json"})
    assert client.post("/predict", json=applicant()).status_code == 200
