"""The service's answers: pre-serialised JSON, the refusal every route raises, the error handlers.

Every error body has the same shape, ``{"detail": "...", "errors": [...]}``:
a one-line detail and the broken rules, if any (``schema.Violation``).
``POST /invocations`` answers as ``mlflow models serve`` does instead
(:meth:`ApiError.mlflow_response`): ``{"error_code": "BAD_REQUEST", "message":
"...", "errors": [...]}``, with 400 where the service's own routes say 422.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from creditops import schema
from creditops.serving import schemas

log = logging.getLogger(__name__)
# MLflow's error codes (mlflow.protos.databricks_pb2) for the statuses /invocations
# answers; MLflow's scoring server has no 413 or 415 code of its own.
MLFLOW_ERROR_CODES = {503: "TEMPORARILY_UNAVAILABLE", 500: "INTERNAL_ERROR"}


def json_response(body: bytes, status: int = 200, **kwargs: Any) -> Response:
    """Already-serialised JSON ``body`` (``kwargs``: headers, background)."""
    return Response(body, status_code=status, media_type="application/json", **kwargs)


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
        """The error body with this refusal's status."""
        body = {"detail": self.detail, "errors": [v.as_dict() for v in self.errors]}
        return json_response(orjson.dumps(body, default=str), self.status)

    def mlflow_response(self) -> Response:
        """The refusal as ``mlflow models serve`` answers it (for ``POST /invocations``).

        A bad payload is 400 ``BAD_REQUEST`` (the service's own routes say 422);
        other statuses are kept. The broken rules stay under ``errors``.
        """
        status = 400 if self.status == 422 else self.status
        body = {
            "error_code": MLFLOW_ERROR_CODES.get(status, "BAD_REQUEST"),
            "message": self.detail,
            "errors": [v.as_dict() for v in self.errors],
        }
        return json_response(orjson.dumps(body, default=str), status)


def error_responses(*codes: int, mlflow: bool = False) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` entry documenting the error body for ``codes``.

    Args:
        codes: the refusal statuses of the route.
        mlflow: the route answers in MLflow's error shape (``POST /invocations``).
    """
    model = schemas.MlflowErrorResponse if mlflow else schemas.ErrorResponse
    return {code: {"model": model} for code in codes}


def add_error_handlers(app: FastAPI) -> None:
    """Answer FastAPI's own refusals and unexpected errors with the service's error body."""
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(Exception, unexpected_error_handler)


async def validation_error_handler(request: Request, exc: Exception) -> Response:
    """422 with one violation per parameter FastAPI refused."""
    assert isinstance(exc, RequestValidationError)
    errors = [
        schema.Violation(1, ".".join(map(str, e["loc"])), _serialisable(e.get("input")), e["msg"])
        for e in exc.errors()
    ]
    return ApiError(422, f"invalid request: {errors[0] if errors else ''}", errors).response()


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette's HTTP errors (404, 405...) in the service's error body."""
    assert isinstance(exc, StarletteHTTPException)
    return json_response(
        orjson.dumps({"detail": str(exc.detail), "errors": []}),
        exc.status_code,
        headers=exc.headers,
    )


async def unexpected_error_handler(request: Request, exc: Exception) -> Response:
    """500 naming the exception type; the traceback goes to the server log."""
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return json_response(
        orjson.dumps(
            {"detail": f"internal error ({type(exc).__name__}); see the server log", "errors": []}
        ),
        500,
    )


def _serialisable(value: Any) -> Any:
    # Not records.json_safe: that maps NaN to None and keeps what orjson cannot
    # encode (a dict with int keys, a 70-bit int); a refused input is echoed as
    # given, or as its str when orjson cannot encode it.
    try:
        orjson.dumps(value)
    except TypeError:
        return str(value)
    return value
