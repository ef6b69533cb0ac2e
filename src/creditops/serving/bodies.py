"""Reading request bodies: size limit, content type, JSON, the MLflow protocol, the contract.

The scoring routes read their bodies themselves rather than through FastAPI's
generic body handling, which costs more than scoring one applicant. A
well-formed body is validated straight from its bytes by pydantic
(``schemas.fast_validate``); any problem sends it down the slower path that
names each broken rule.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from creditops import schema
from creditops.serving import schemas
from creditops.serving.credit_time import date_violations
from creditops.serving.original_codes import SWITCH_HINT, decode_records, explain_codes
from creditops.serving.responses import ApiError
from creditops.serving.service import ScoringService

MLFLOW_KEYS = ("dataframe_records", "dataframe_split", "instances", "inputs")


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
        except (ValueError, UnicodeDecodeError, RecursionError):  # nested past orjson's limit
            raise ApiError(400, f"body is not valid JSON: {exc}") from None


async def read_json(request: Request, limit: int) -> Any:
    """The parsed JSON body (see :func:`read_body` and :func:`parse_json`)."""
    return parse_json(await read_body(request, limit))


def applicant_rows(service: ScoringService, body: bytes, *, mlflow: bool) -> list[dict[str, Any]]:
    """The validated rows of a scoring body, or an ``ApiError`` naming every violation.

    A well-formed body is validated straight from its bytes by pydantic; any
    problem sends it down the slower path that names each broken rule. On the
    MLflow route (``mlflow``), the original pipeline's integer category codes
    are decoded when ``[serve] original_codes`` is on (see ``original_codes``).
    """
    rows = schemas.fast_validate(body, mlflow=mlflow)
    if rows and len(rows) <= service.config.max_batch_rows:
        return _dated(service, rows)
    data = parse_json(body)
    if not mlflow:
        return _dated(service, _check_rows(service, [data] if isinstance(data, dict) else data))
    records = mlflow_records(data)
    codes = service.config.original_codes
    if codes and isinstance(records, list):
        records = decode_records(records)
    return _dated(service, _check_rows(service, records, original_codes=codes))


def _dated(service: ScoringService, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows``, unless an ``application_at`` is in the future or before the earliest date."""
    violations = date_violations(rows, service.config.earliest_application_date)
    if violations:
        service.metrics.rows_rejected.inc(len({v.row for v in violations}))
        raise ApiError(422, _summary(violations), violations)
    return rows


def _check_rows(
    service: ScoringService, records: Any, *, original_codes: bool | None = None
) -> list[dict[str, Any]]:
    """The validated rows; ``original_codes`` is the switch on routes that know of it."""
    if not isinstance(records, list):
        raise ApiError(422, "expected one applicant object or a list of them")
    if not records:
        raise ApiError(422, "the list of applicants is empty")
    limit = service.config.max_batch_rows
    if len(records) > limit:
        raise ApiError(413, f"{len(records)} rows is more than the limit of {limit} per request")
    rows, violations = schemas.validate_applicants(records)
    if violations:
        service.metrics.rows_rejected.inc(len({v.row for v in violations}))
        if original_codes is not None:
            violations = explain_codes(violations, enabled=original_codes)
        raise ApiError(422, _summary(violations), violations)
    return rows


def _summary(violations: list[schema.Violation]) -> str:
    """One line: how many violations, the first, and the first refused integer code if another."""
    rows = len({v.row for v in violations})
    line = f"{len(violations)} contract violation(s) in {rows} row(s); first: {violations[0]}"
    code = next((v for v in violations if v.rule.endswith(SWITCH_HINT)), None)
    if code is not None and code is not violations[0]:
        line += f"; {code}"
    return line


def mlflow_records(body: Any) -> Any:
    """The rows of an MLflow scoring-protocol body, as a list of records.

    Accepts ``dataframe_records``, ``dataframe_split`` (columns + data),
    ``instances`` and ``inputs`` (a list of records or a dict of columns).
    """
    if not isinstance(body, dict):
        raise ApiError(
            422, "expected an object with dataframe_records, dataframe_split, instances or inputs"
        )
    keys = [k for k in MLFLOW_KEYS if k in body]
    if len(keys) != 1:
        raise ApiError(
            422,
            "expected exactly one of dataframe_records, dataframe_split, instances, inputs; "
            f"got {sorted(body) or 'none'}",
        )
    key = keys[0]
    value = body[key]
    if key == "dataframe_split":
        return _split_records(value)
    if isinstance(value, dict):  # columnar: {"Age": [..], "Income": [..]}
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if len(lengths) != 1 or -1 in lengths:
            raise ApiError(422, f"{key} as columns needs lists of one same length")
        n = lengths.pop()
        names = list(value)
        return [{name: value[name][i] for name in names} for i in range(n)]
    if not isinstance(value, list):
        raise ApiError(
            422,
            f"{key}: {schema.show_value(value)} is not a list of rows or an object of columns",
        )
    return value


def _split_records(value: Any) -> list[dict[str, Any]]:
    """The records of a ``dataframe_split`` (``columns`` + ``data``)."""
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
