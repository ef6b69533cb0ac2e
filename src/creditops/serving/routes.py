"""The HTTP routes of the scoring service.

The scoring routes read and parse their bodies themselves (size limit, content
type, orjson) and answer with pre-serialised orjson bytes: FastAPI's generic
body and response handling costs more than scoring one applicant. The request
and response models still document every route at ``/docs``.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
import numpy as np
import orjson
from fastapi import APIRouter, Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Route

from creditops import schema
from creditops.inference.reasons import top_contributions
from creditops.inference.scorer import RAW_INDEX, LoadedModel, raw_matrix
from creditops.serving import schemas as models
from creditops.serving.app import NO_CHAMPION, ScoringService, json_response, service_of
from creditops.serving.store import OutcomeResult

log = logging.getLogger(__name__)

router = APIRouter()
Service = Annotated[ScoringService, Depends(service_of)]
# Above this many rows, scoring runs in a worker thread so the loop keeps serving.
THREAD_ROWS = 512
FEEDBACK_WAIT_SECONDS = 5.0


class ApiError(Exception):
    """A refusal: status, one-line detail, and the broken rules if any."""

    def __init__(
        self, status: int, detail: str, errors: list[schema.Violation] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []

    def response(self) -> Response:
        body = {"detail": self.detail, "errors": [v.as_dict() for v in self.errors]}
        return json_response(orjson.dumps(body, default=str), self.status)


def _error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": models.ErrorResponse} for code in codes}


# --- body handling --------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing a wrong content type or an oversize body."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise ApiError(
            415, f"content type must be application/json, got {content_type or 'none'!r}"
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body of {declared} bytes is over the limit of {limit} bytes")
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"body is over the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    """The parsed body; 400 when it is not JSON."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Python clients send NaN/Infinity, which is not JSON: read it so that the
        # validation can name the field.
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, f"body is not valid JSON: {exc}") from None


async def read_json(request: Request, limit: int) -> Any:
    """The parsed JSON body (see :func:`read_body` and :func:`parse_json`)."""
    return parse_json(await read_body(request, limit))


def applicant_rows(service: ScoringService, body: bytes, *, mlflow: bool) -> list[dict[str, Any]]:
    """The validated rows of a scoring body, or an ``ApiError`` naming every violation.

    A well-formed body is validated straight from its bytes by pydantic; any
    problem sends it down the slower path that names each broken rule.
    """
    rows = models.fast_validate(body, mlflow=mlflow)
    if rows and len(rows) <= service.config.max_batch_rows:
        return rows
    data = parse_json(body)
    records = mlflow_records(data) if mlflow else ([data] if isinstance(data, dict) else data)
    return _check_rows(service, records)


def _check_rows(service: ScoringService, records: Any) -> list[dict[str, Any]]:
    if not isinstance(records, list):
        raise ApiError(422, "expected one applicant object or a list of them")
    if not records:
        raise ApiError(422, "the list of applicants is empty")
    limit = service.config.max_batch_rows
    if len(records) > limit:
        raise ApiError(413, f"{len(records)} rows is more than the limit of {limit} per request")
    rows, violations = models.validate_applicants(records)
    if violations:
        service.metrics.rows_rejected.inc(len({v.row for v in violations}))
        raise ApiError(
            422,
            f"{len(violations)} contract violation(s) in {len({v.row for v in violations})} "
            f"row(s); first: {violations[0]}",
            violations,
        )
    return rows


def _model(service: ScoringService) -> LoadedModel:
    model = service.model
    if model is None:
        raise ApiError(503, f"{NO_CHAMPION} ({service.not_ready_reason})")
    return model


# --- scoring --------------------------------------------------------------------


class Scored:
    """One request's results, ready to answer and to log."""

    def __init__(
        self, model: LoadedModel, rows: list[dict[str, Any]], raw: np.ndarray, started: float
    ) -> None:
        self.model = model
        self.rows = rows
        self.raw = raw
        self.started = started
        self.batch_id = uuid.uuid4().hex
        ids = os.urandom(16 * len(rows)).hex()
        self.request_ids = [ids[i : i + 32] for i in range(0, 32 * len(rows), 32)]
        self.probability = np.zeros(0)
        self.decline = np.zeros(0, dtype=bool)
        self.contributions: np.ndarray | None = None
        self.latency_ms = 0.0

    def log_rows(self) -> list[dict[str, Any]]:
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


async def _score(
    service: ScoringService, body: bytes, started: float, *, reasons: bool, mlflow: bool
) -> Scored:
    model = _model(service)  # this request's model, whatever a reload does meanwhile
    return await _score_rows(service, model, body, started, reasons=reasons, mlflow=mlflow)


async def _score_rows(
    service: ScoringService,
    model: LoadedModel,
    body: bytes,
    started: float,
    *,
    reasons: bool,
    mlflow: bool,
) -> Scored:
    rows = applicant_rows(service, body, mlflow=mlflow)
    raw = raw_matrix(rows)
    scored = Scored(model, rows, raw, started)
    want = reasons and service.config.reasons_top_k > 0
    if len(rows) > THREAD_ROWS:
        scores = await anyio.to_thread.run_sync(lambda: model.score(raw, reasons=want))
    else:
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


def _reasons(scored: Scored, top_k: int) -> list[list[dict[str, Any]]]:
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
    # Runs after the answer is sent: building and queueing log rows costs no latency.
    # A coroutine, not a function: Starlette would run a function in the thread pool.
    async def log_rows() -> None:
        service.log_rows(scored.log_rows())

    return BackgroundTask(log_rows)


def _applicant_body() -> dict[str, Any]:
    applicant = models.Applicant.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "anyOf": [applicant, {"type": "array", "items": applicant, "minItems": 1}]
                    },
                    "examples": {
                        "one applicant": {"value": models.EXAMPLE_APPLICANT},
                        "a list": {
                            "value": [
                                models.EXAMPLE_APPLICANT,
                                {**models.EXAMPLE_APPLICANT, "Income": None, "Records": "yes"},
                            ]
                        },
                    },
                }
            },
        }
    }


@router.post(
    "/predict",
    response_model=models.PredictResponse,
    responses=_error_responses(400, 413, 415, 422, 503),
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
        scored = await _score(service, body, started, reasons=reasons, mlflow=False)
    except ApiError as exc:
        return exc.response()
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
    body_out = orjson.dumps({"batch_id": scored.batch_id, "predictions": predictions})
    scored.latency_ms = (time.perf_counter() - started) * 1000.0
    return json_response(body_out, background=_logged(service, scored))


def mlflow_records(body: Any) -> Any:
    """The rows of an MLflow scoring-protocol body, as a list of records.

    Accepts ``dataframe_records``, ``dataframe_split`` (columns + data),
    ``instances`` and ``inputs`` (a list of records or a dict of columns).
    """
    if not isinstance(body, dict):
        raise ApiError(
            422, "expected an object with dataframe_records, dataframe_split, instances or inputs"
        )
    keys = [k for k in ("dataframe_records", "dataframe_split", "instances", "inputs") if k in body]
    if len(keys) != 1:
        raise ApiError(
            422,
            "expected exactly one of dataframe_records, dataframe_split, instances, inputs; "
            f"got {sorted(body) or 'none'}",
        )
    key = keys[0]
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise ApiError(422, "dataframe_split needs 'columns' and 'data' (a list of rows)")
        columns = value.get("columns")
        if not isinstance(columns, list):
            raise ApiError(422, "dataframe_split needs 'columns': the contract's field names")
        records = []
        for i, row in enumerate(value["data"]):
            if not isinstance(row, list) or len(row) != len(columns):
                raise ApiError(
                    422,
                    f"dataframe_split row {i + 1} has {len(row) if isinstance(row, list) else 0} "
                    f"values for {len(columns)} columns",
                )
            records.append(dict(zip(columns, row, strict=True)))
        return records
    if isinstance(value, dict):  # columnar: {"Age": [..], "Income": [..]}
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise ApiError(422, f"{key} as columns needs lists of one same length")
        n = lengths.pop()
        names = list(value)
        return [{name: value[name][i] for name in names} for i in range(n)]
    return value


@router.post(
    "/invocations",
    response_model=models.InvocationsResponse,
    responses=_error_responses(400, 413, 415, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "object"},
                    "example": {"dataframe_records": [models.EXAMPLE_APPLICANT]},
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
    """
    started = time.perf_counter()
    try:
        body = await read_body(request, service.config.max_body_bytes)
        scored = await _score(service, body, started, reasons=False, mlflow=True)
    except ApiError as exc:
        return exc.response()
    body_out = orjson.dumps(
        {"predictions": scored.decline.astype(np.int64)}, option=orjson.OPT_SERIALIZE_NUMPY
    )
    scored.latency_ms = (time.perf_counter() - started) * 1000.0
    return json_response(
        body_out, headers={"X-Batch-Id": scored.batch_id}, background=_logged(service, scored)
    )


# --- feedback -------------------------------------------------------------------


@router.post(
    "/feedback",
    response_model=models.FeedbackResponse,
    responses=_error_responses(404, 409, 415, 422, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": models.FeedbackRequest.model_json_schema(),
                    "example": {"request_id": "0" * 32, "outcome": "bad"},
                }
            },
        }
    },
    summary="Report the observed outcome of a scored applicant",
)
async def feedback(request: Request, service: Service) -> Response:
    """Store the outcome (good/bad) with its inference.

    404 for an unknown request id, 409 if a different outcome is already stored;
    repeating the same outcome is harmless.
    """
    try:
        body = await read_json(request, 4096)
        try:
            item = models.FeedbackRequest.model_validate(body)
        except ValidationError as exc:
            errors = [
                schema.Violation(
                    1, ".".join(map(str, e["loc"])) or "(body)", e.get("input"), e["msg"]
                )
                for e in exc.errors(include_url=False)
            ]
            raise ApiError(422, f"invalid feedback: {errors[0]}", errors) from None
        result = await anyio.to_thread.run_sync(_record, service, item.request_id, item.outcome)
    except ApiError as exc:
        return exc.response()
    status = "recorded" if result is OutcomeResult.RECORDED else "unchanged"
    return json_response(
        orjson.dumps({"request_id": item.request_id, "outcome": item.outcome, "status": status})
    )


def _record(service: ScoringService, request_id: str, outcome: str) -> OutcomeResult:
    from creditops.errors import StoreError

    writer = service.writer
    if writer.is_pending(request_id) and not writer.wait_written(request_id, FEEDBACK_WAIT_SECONDS):
        raise ApiError(503, "the inference log is not writable right now; retry the feedback later")
    # Another worker or replica may have scored it and not flushed yet: look again
    # for a few of its flush intervals before answering 404.
    # (a busy worker holds its rows up to the writer's max_delay, then flushes)
    deadline = time.monotonic() + min(
        FEEDBACK_WAIT_SECONDS,
        max(1.0, writer.max_delay + 5 * service.config.flush_interval_seconds),
    )
    while True:
        try:
            result = service.store.record_outcome(request_id, outcome)
        except StoreError as exc:
            raise ApiError(503, f"the inference log is not writable right now: {exc}") from None
        if result is not OutcomeResult.UNKNOWN or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    if result is OutcomeResult.UNKNOWN:
        raise ApiError(404, f"no inference has request id {request_id}")
    if result is OutcomeResult.CONFLICT:
        raise ApiError(
            409,
            f"request {request_id} already has the outcome "
            f"{'bad' if outcome == 'good' else 'good'!r}; {outcome!r} would contradict it",
        )
    return result


# --- status ---------------------------------------------------------------------


@router.get("/health", summary="Process alive")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="A champion is loaded", responses=_error_responses(503))
async def ready(service: Service) -> Response:
    model = service.model
    if model is None:
        return json_response(
            orjson.dumps({"ready": False, "detail": service.not_ready_reason}), 503
        )
    ref = model.ref
    return json_response(
        orjson.dumps({"ready": True, "model_name": ref.name, "model_version": ref.version})
    )


@router.get("/model", summary="The served model and the contract", responses=_error_responses(503))
async def model_info(service: Service) -> Response:
    model = service.model
    if model is None:
        return ApiError(503, f"{NO_CHAMPION} ({service.not_ready_reason})").response()
    ref = model.ref
    body = {
        "name": ref.name,
        "version": ref.version,
        "alias": registry_alias(),
        "aliases": list(ref.aliases),
        "family": ref.family,
        "threshold": ref.threshold,
        "metrics": ref.metrics,
        "data_hash": ref.data_hash,
        "run_id": ref.run_id,
        "train_run_id": ref.train_run_id,
        "model_uri": ref.model_uri,
        "inference_path": "compiled" if model.fast_path else "pipeline",
        "contribution_unit": model.contribution_unit,
        "loaded_at": datetime.fromtimestamp(model.loaded_at, UTC).isoformat(),
        "load_seconds": round(model.load_seconds, 3),
        "contract": schema.describe_contract(),
    }
    return json_response(orjson.dumps(body, default=str))


def registry_alias() -> str:
    from creditops.registry import CHAMPION

    return CHAMPION


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(service: Service) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    service.metrics.log_pending.set(service.writer.pending)
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.post(
    "/admin/reload",
    response_model=models.ReloadResponse,
    responses=_error_responses(401, 403),
    summary="Load the current champion now",
)
async def reload(service: Service, x_api_key: Annotated[str | None, Header()] = None) -> Response:
    """Re-read the `champion` alias and swap models if it moved. Needs the `X-API-Key` header."""
    expected = service.config.admin_api_key
    if not expected:
        return ApiError(
            403,
            "admin routes are disabled: set [serve] admin_api_key (CREDITOPS_SERVE__ADMIN_API_KEY)",
        ).response()
    if x_api_key is None or not hmac.compare_digest(x_api_key.encode(), expected.encode()):
        return ApiError(401, "missing or wrong X-API-Key header").response()
    changed, detail = await service.reload()
    model = service.model
    return json_response(
        orjson.dumps(
            {
                "changed": changed,
                "model_name": model.ref.name if model else None,
                "model_version": model.ref.version if model else None,
                "detail": detail,
            }
        )
    )


# --- error handlers ---------------------------------------------------------------


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        schema.Violation(1, ".".join(map(str, e["loc"])), _jsonable(e.get("input")), e["msg"])
        for e in exc.errors()
    ]
    return ApiError(422, f"invalid request: {errors[0] if errors else ''}", errors).response()


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return json_response(
        orjson.dumps({"detail": str(exc.detail), "errors": []}),
        exc.status_code,
        headers=exc.headers,
    )


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return json_response(
        orjson.dumps(
            {"detail": f"internal error ({type(exc).__name__}); see the server log", "errors": []}
        ),
        500,
    )


def _jsonable(value: Any) -> Any:
    try:
        orjson.dumps(value)
    except TypeError:
        return str(value)
    return value


# --- the scoring routes without FastAPI's per-request machinery --------------------

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


BIG_BODY_BYTES = 256 * 1024  # about 1,700 applicants


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
    service = request.app.state.service
    with _holding_log_if_big(request, service):
        return await predict(request, service, reasons=flag in _TRUE)


async def _invocations_direct(request: Request) -> Response:
    service = request.app.state.service
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
