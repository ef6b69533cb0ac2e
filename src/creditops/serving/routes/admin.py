"""``POST /admin/reload``: load the current champion now (behind the ``X-API-Key`` header)."""

from __future__ import annotations

import hmac
from typing import Annotated

import orjson
from fastapi import APIRouter, Header
from starlette.responses import Response

from creditops.serving import schemas
from creditops.serving.deps import Service
from creditops.serving.responses import ApiError, error_responses, json_response

router = APIRouter()


@router.post(
    "/admin/reload",
    response_model=schemas.ReloadResponse,
    responses=error_responses(401, 403),
    summary="Load the current champion now",
)
async def reload(service: Service, x_api_key: Annotated[str | None, Header()] = None) -> Response:
    """Re-read the `champion` alias and swap models if it moved. Needs the `X-API-Key` header."""
    expected = service.config.admin_api_key.get_secret_value()
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
