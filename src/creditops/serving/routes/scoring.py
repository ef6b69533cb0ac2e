"""``POST /predict`` and ``POST /invocations``: score applicants, answer, log them after.

The event loop only reads bodies and sends answers: validating, scoring,
contributions (SHAP), building the answer and building the log rows run in
worker threads of the service's scoring limiter, whatever the request's size,
so that the loop never stalls behind one request's arithmetic.

Both routes exist twice: as documented FastAPI routes (in the OpenAPI schema)
and as plain Starlette routes placed before them (:func:`direct_routes`), which
skip FastAPI's dependency solving and parameter parsing: they cost more per
request than parsing one applicant.
"""

from __future__ import annotations

import contextlib
import math
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import anyio
import numpy as np
import orjson
from fastapi import APIRouter, Request
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.routing import Route

from creditops import schema
from creditops.errors import StoreError
from creditops.inference.raw import RAW_INDEX, Matrix, raw_matrix
from creditops.inference.reasons import top_contributions
from creditops.inference.scorer import LoadedModel
from creditops.serving import schemas
from creditops.serving.bodies import applicant_rows, read_body
from creditops.serving.deps import Service, served_model
from creditops.serving.request_ids import new_request_ids
from creditops.serving.responses import ApiError, error_responses, json_response
from creditops.serving.service import ScoringService

router = APIRouter()
# Log rows of requests this small are built in the scoring thread, before the answer
# (a few microseconds); bigger ones in another thread hop, after it.
PREBUILT_ROWS = 16
BIG_BODY_BYTES = 256 * 1024  # about 1,700 applicants
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
Reason = dict[str, Any]


class Scored:
    """One request's results, ready to answer and to log."""

    def __init__(
        self, model: LoadedModel, rows: list[dict[str, Any]], raw: Matrix, started: float
    ) -> None:
        self.model = model
        self.rows = rows
        self.raw = raw
        self.started = started
        self.batch_id = uuid.uuid4().hex
        self.request_ids = new_request_ids(len(rows))
        self.probability = np.zeros(0)
        self.decline = np.zeros(0, dtype=bool)
        self.contributions: Matrix | None = None
        self.latency_ms = 0.0
        self.prebuilt_rows: list[dict[str, Any]] | None = None

    def log_rows(self) -> list[dict[str, Any]]:
        """One inference-log row per scored applicant."""
        ref = self.model.ref
        created = datetime.now(UTC)
        common = {
            "batch_id": self.batch_id,
            "created_at": created,
            "model_name": ref.name,
            "model_version": ref.version,
            "threshold": ref.threshold,
            "latency_ms": self.latency_ms,
        }
        out = []
        for i, row in enumerate(self.rows):
            record = {name: row[name] for name in schema.FEATURES}
            record.update(common)
            record["request_id"] = self.request_ids[i]
            record["probability"] = float(self.probability[i])
            record["decision"] = "decline" if self.decline[i] else "approve"
            out.append(record)
        return out


Answer = Callable[[ScoringService, Scored], bytes]


async def _answer(
    service: ScoringService,
    body: bytes,
    started: float,
    answer: Answer,
    *,
    reasons: bool,
    mlflow: bool,
) -> tuple[Scored, bytes]:
    """Score ``body`` and serialise the ``answer``, in a worker thread (never on the loop)."""

    def work() -> tuple[Scored, bytes]:
        scored = _score(service, body, started, reasons=reasons, mlflow=mlflow)
        out = answer(service, scored)
        scored.latency_ms = (time.perf_counter() - started) * 1000.0
        if len(scored.rows) <= PREBUILT_ROWS and not service.acknowledged:
            scored.prebuilt_rows = scored.log_rows()  # cheaper here than a second thread hop
        return scored, out

    return await anyio.to_thread.run_sync(work, limiter=service.scoring_limiter)


def _score(
    service: ScoringService, body: bytes, started: float, *, reasons: bool, mlflow: bool
) -> Scored:
    model = served_model(service)  # this request's model, whatever a reload does meanwhile
    rows = applicant_rows(service, body, mlflow=mlflow)
    raw = raw_matrix(rows)
    scored = Scored(model, rows, raw, started)
    want = reasons and service.config.reasons_top_k > 0
    scores = model.score(raw, reasons=want)
    scored.probability = scores.probability
    scored.decline = scores.probability >= model.ref.threshold
    scored.contributions = scores.contributions
    declines = int(scored.decline.sum())
    metrics = service.metrics.decisions
    if declines:
        metrics.labels("decline").inc(declines)
    if len(rows) - declines:
        metrics.labels("approve").inc(len(rows) - declines)
    return scored


def _reasons(scored: Scored, top_k: int) -> list[list[Reason]]:
    contributions = scored.contributions
    if contributions is None or top_k == 0:
        return [[] for _ in scored.rows]
    sources = scored.model.sources
    order, top = top_contributions(contributions, top_k)
    k = order.shape[1]
    out = []
    for i, row in enumerate(scored.rows):
        reasons = []
        for j in range(k):
            contribution = float(top[i, j])
            if not contribution > 0:
                break
            name = sources[order[i, j]]
            if name in schema.FIELDS:
                value = row.get(name)
            else:
                raw_value = float(scored.raw[i, RAW_INDEX[name]])
                value = raw_value if math.isfinite(raw_value) else None
            reasons.append({"feature": name, "value": value, "contribution": contribution})
        out.append(reasons)
    return out


def _logged(service: ScoringService, scored: Scored) -> BackgroundTask:
    # Runs after the answer is sent, so building and queueing log rows costs no
    # latency; in a scoring thread, as the scoring did: not on the loop.
    async def log_rows() -> None:
        if scored.prebuilt_rows is not None:  # queueing them is an append, not a build
            service.log_rows(scored.prebuilt_rows)
            return
        await anyio.to_thread.run_sync(
            lambda: service.log_rows(scored.log_rows()), limiter=service.scoring_limiter
        )

    return BackgroundTask(log_rows)


async def _unrecorded(service: ScoringService, scored: Scored) -> ApiError | None:
    """``[serve] durability = "acknowledged"``: wait until the rows are durable.

    The writer thread builds the rows and commits them; None once they are
    durable, else the 503 to answer instead (no decision is given off the record).
    """
    try:
        await service.log_durably(scored.log_rows)
    except StoreError as exc:
        return ApiError(503, f"the decision was not recorded, so it is not given: {exc}")
    return None


def _predictions(service: ScoringService, scored: Scored) -> bytes:
    """The ``POST /predict`` answer: each applicant's probability, decision and reasons."""
    ref = scored.model.ref
    all_reasons = _reasons(scored, service.config.reasons_top_k)
    predictions = [
        {
            "request_id": scored.request_ids[i],
            "probability": float(scored.probability[i]),
            "decision": "decline" if scored.decline[i] else "approve",
            "reasons": all_reasons[i],
            "model_name": ref.name,
            "model_version": ref.version,
        }
        for i in range(len(scored.rows))
    ]
    return orjson.dumps({"batch_id": scored.batch_id, "predictions": predictions})


def _decisions(service: ScoringService, scored: Scored) -> bytes:
    """The ``POST /invocations`` answer: 1 (decline) or 0 (approve) per row."""
    return orjson.dumps(
        {"predictions": scored.decline.astype(np.int64)}, option=orjson.OPT_SERIALIZE_NUMPY
    )


def _applicant_body() -> dict[str, Any]:
    applicant = schemas.Applicant.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [applicant, {"type": "array", "items": applicant, "minItems": 1}]
                    },
                    "examples": {
                        "one applicant": {"value": schemas.EXAMPLE_APPLICANT},
                        "a list": {
                            "value": [
                                schemas.EXAMPLE_APPLICANT,
                                {**schemas.EXAMPLE_APPLICANT, "Income": None, "Records": "yes"},
                            ]
                        },
                    },
                }
            },
        }
    }


@router.post(
    "/predict",
    response_model=schemas.PredictResponse,
    responses=error_responses(400, 413, 415, 422, 503),
    openapi_extra=_applicant_body(),
    summary="Score one applicant or a list, with reasons",
)
async def predict(request: Request, service: Service, reasons: bool = True) -> Response:
    """Probability of default, decision at the model's threshold, and the top reasons.

    Set `reasons=false` to skip the per-prediction contributions (faster for
    large batches).
    """
    started = time.perf_counter()
    try:
        body = await read_body(request, service.config.max_body_bytes)
        scored, body_out = await _answer(
            service, body, started, _predictions, reasons=reasons, mlflow=False
        )
    except ApiError as exc:
        return exc.response()
    if service.acknowledged:
        refused = await _unrecorded(service, scored)
        return refused.response() if refused else json_response(body_out)
    return json_response(body_out, background=_logged(service, scored))


@router.post(
    "/invocations",
    response_model=schemas.InvocationsResponse,
    responses=error_responses(400, 413, 415, 503, mlflow=True),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {"dataframe_records": [schemas.EXAMPLE_APPLICANT]},
                }
            },
        }
    },
    summary="MLflow scoring protocol",
)
async def invocations(request: Request, service: Service) -> Response:
    """Score rows sent as `mlflow models serve` expects them.

    Answers `{"predictions": [...]}`, one per row: 1 when the model declines
    (predicts bad at its own threshold), 0 when it approves. The batch id is in
    the `X-Batch-Id` header; probabilities and reasons are on `POST /predict`.

    Refusals are MLflow's too: a bad payload is 400 with
    `{"error_code": "BAD_REQUEST", "message": ..., "errors": [...]}`. With
    `[serve] original_codes = true`, categories may be sent as the original
    pipeline's integer codes.
    """
    started = time.perf_counter()
    try:
        body = await read_body(request, service.config.max_body_bytes)
        scored, body_out = await _answer(
            service, body, started, _decisions, reasons=False, mlflow=True
        )
    except ApiError as exc:
        return exc.mlflow_response()
    headers = {"X-Batch-Id": scored.batch_id}
    if service.acknowledged:
        refused = await _unrecorded(service, scored)
        return refused.mlflow_response() if refused else json_response(body_out, headers=headers)
    return json_response(body_out, headers=headers, background=_logged(service, scored))


# --- the scoring routes without FastAPI's per-request machinery --------------------


@contextlib.contextmanager
def _holding_log_if_big(request: Request, service: ScoringService) -> Iterator[None]:
    """While a big body is handled, the inference log waits (see ``InferenceLogWriter``)."""
    declared = request.headers.get("content-length", "")
    big = declared.isdigit() and int(declared) > BIG_BODY_BYTES
    if big:
        service.big_requests += 1
    try:
        yield
    finally:
        if big:
            service.big_requests -= 1


async def _predict_direct(request: Request) -> Response:
    flag = request.query_params.get("reasons", "true").lower()
    if flag not in _TRUE | _FALSE:
        return ApiError(422, f"query parameter reasons={flag!r} is not true or false").response()
    service: ScoringService = request.app.state.service
    with _holding_log_if_big(request, service):
        return await predict(request, service, reasons=flag in _TRUE)


async def _invocations_direct(request: Request) -> Response:
    service: ScoringService = request.app.state.service
    with _holding_log_if_big(request, service):
        return await invocations(request, service)


def direct_routes() -> list[Route]:
    """``/predict`` and ``/invocations`` as plain Starlette routes.

    They are placed before the documented FastAPI routes, which stay in the
    OpenAPI schema: dependency solving and parameter parsing cost more per
    request than parsing one applicant.
    """
    return [
        Route("/predict", _predict_direct, methods=["POST"], include_in_schema=False),
        Route("/invocations", _invocations_direct, methods=["POST"], include_in_schema=False),
    ]
