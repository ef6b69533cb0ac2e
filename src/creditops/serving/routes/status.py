"""``/health``, ``/ready``, ``/model``, ``/metrics``, ``/ping``, ``/version``: the service's state.

These routes have no docstrings on purpose: FastAPI publishes a route's
docstring as its OpenAPI description, and ``/openapi.json`` stays as it was.
``/health`` answers while the process does; ``/ready`` once a champion is
loaded (503 and why before); ``/model`` describes the served version and the
contract; ``/metrics`` is Prometheus' text format. ``/ping`` and ``/version``
answer as ``mlflow models serve`` does, for MLflow's clients: ``/ping`` is 200
(body ``"\\n"``) once a champion is loaded, 404 before; ``/version`` is the
installed MLflow version, read from the package metadata (MLflow is not imported).
"""

from __future__ import annotations

import functools
import importlib.metadata
from datetime import UTC, datetime

import orjson
from fastapi import APIRouter
from starlette.responses import Response

from creditops import schema
from creditops.registry import CHAMPION
from creditops.serving.deps import Service, served_model
from creditops.serving.responses import ApiError, error_responses, json_response

router = APIRouter()


@router.get("/health", summary="Process alive")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="A champion is loaded", responses=error_responses(503))
async def ready(service: Service) -> Response:
    model = service.model
    if model is None:
        return json_response(
            orjson.dumps({"ready": False, "detail": service.not_ready_reason}), 503
        )
    ref = model.ref
    body = {
        "ready": True,
        "model_name": ref.name,
        "model_version": ref.version,
        # "none": a version logged without a calibrator, its probability the raw score
        "calibration": model.calibration_method,
    }
    if service.shadow is not None:  # [serve] shadow: which challenger, or why none
        body["shadow"] = service.shadow.status
    return json_response(orjson.dumps(body))


@router.get("/model", summary="The served model and the contract", responses=error_responses(503))
async def model_info(service: Service) -> Response:
    try:
        model = served_model(service)
    except ApiError as exc:
        return exc.response()
    ref = model.ref
    body = {
        "name": ref.name,
        "version": ref.version,
        "alias": CHAMPION,
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
        "calibration": model.calibration_method,
        "calibrated": model.calibrated,
        "loaded_at": datetime.fromtimestamp(model.loaded_at, UTC).isoformat(),
        "load_seconds": round(model.load_seconds, 3),
        "contract": schema.describe_contract(),
    }
    return json_response(orjson.dumps(body, default=str))


@router.get("/ping", summary="MLflow's readiness check: 200 once a champion is loaded, else 404")
async def ping(service: Service) -> Response:
    # MLflow's scoring server answers "\n" as application/json; its client checks the status only
    return Response(
        "\n", status_code=200 if service.model is not None else 404, media_type="application/json"
    )


@router.get("/version", summary="The MLflow version, as MLflow's scoring server answers")
async def version() -> Response:
    return Response(_mlflow_version(), media_type="application/json")


@functools.cache
def _mlflow_version() -> str:
    # the package metadata, not mlflow.version: importing MLflow costs seconds at start-up
    return importlib.metadata.version("mlflow")


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(service: Service) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    service.metrics.log_pending.set(service.writer.pending)
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
