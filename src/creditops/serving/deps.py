"""What a route asks FastAPI for: the process's :class:`ScoringService` and its served model."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from creditops.inference.scorer import LoadedModel
from creditops.serving.responses import ApiError
from creditops.serving.service import NO_CHAMPION, ScoringService


async def service_of(request: Request) -> ScoringService:
    """The service the app was built with."""
    # async: a plain function dependency would cost a thread-pool hop per request
    service: ScoringService = request.app.state.service
    return service


Service = Annotated[ScoringService, Depends(service_of)]


def served_model(service: ScoringService) -> LoadedModel:
    """The model serving now (a request keeps it, whatever a reload does meanwhile).

    Raises:
        ApiError: 503, no champion is loaded yet (and why).
    """
    model = service.model
    if model is None:
        raise ApiError(503, f"{NO_CHAMPION} ({service.not_ready_reason})")
    return model
