"""Routes of the detector service."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, File, Query, Request, Response, UploadFile, status

from services.detector.config import Settings
from services.detector.dependencies import get_detector, get_settings, read_upload
from shared.schemas import DetectorHealth, DetectResponse, Problem

router = APIRouter()


@router.post(
    "/detect",
    response_model=DetectResponse,
    summary="Probability that a recording is synthetic",
    responses={
        400: {"model": Problem, "description": "The body is not valid multipart/form-data"},
        413: {"model": Problem, "description": "The file is too large"},
        415: {"model": Problem, "description": "Not a readable audio file (or a corrupt one)"},
        422: {"model": Problem, "description": "Silent, too short or too long audio; bad or missing fields"},
        503: {"model": Problem, "description": "The model is not loaded yet"},
    },
)
async def detect(
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
    detector: Annotated[Any, Depends(get_detector)],
    file: Annotated[UploadFile, File(description="WAV, FLAC, MP3 or OGG")],
    timeline: Annotated[bool, Query(description="Also return per-window scores")] = False,
) -> DetectResponse:
    data = await read_upload(file, settings)
    # Decoding and ONNX inference block: run them in worker threads (bounded, so a burst of
    # requests queues here instead of oversubscribing the cores), never on the event loop.
    return await anyio.to_thread.run_sync(
        lambda: detector.detect(data, timeline=timeline), limiter=request.app.state.limiter
    )


@router.get("/healthz", response_model=DetectorHealth, summary="Liveness")
async def healthz() -> DetectorHealth:
    return DetectorHealth(status="ok")


@router.get(
    "/readyz",
    response_model=DetectorHealth,
    summary="Readiness: the model is loaded",
    responses={503: {"model": DetectorHealth, "description": "The model is not loaded yet"}},
)
async def readyz(request: Request, response: Response) -> DetectorHealth:
    detector = getattr(request.app.state, "detector", None)
    if detector is None:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return DetectorHealth(status="unavailable")
    return DetectorHealth(status="ok", model=getattr(detector, "name", None))
