"""Routes of the detector service."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from services.detector.config import Settings
from services.detector.dependencies import get_detector, get_settings, read_upload
from services.detector.schemas import DetectResponse, Health

router = APIRouter()


@router.post(
    "/detect",
    response_model=DetectResponse,
    summary="Probability that a recording is synthetic",
    responses={
        413: {"description": "The file is too large"},
        415: {"description": "Not a readable audio file"},
        422: {"description": "Silent, too short or too long"},
    },
)
async def detect(
    request: Request,
    settings: Annotated[Settings, Depends(get_settings)],
    detector: Annotated[Any, Depends(get_detector)],
    file: Annotated[UploadFile, File(description="WAV, FLAC, MP3 or OGG")],
    timeline: Annotated[bool, Query(description="Also return per-window scores")] = False,
) -> dict:
    data = await read_upload(file, settings)
    # Decoding and ONNX inference block: run them in worker threads (bounded, so a burst of
    # requests queues here instead of oversubscribing the cores), never on the event loop.
    detection = await anyio.to_thread.run_sync(
        lambda: detector.detect(data, timeline=timeline), limiter=request.app.state.limiter
    )
    return asdict(detection)


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, summary="Readiness: the model is loaded")
async def readyz(request: Request) -> JSONResponse:
    detector = getattr(request.app.state, "detector", None)
    if detector is None:
        return JSONResponse(status_code=503, content=Health(status="unavailable").model_dump())
    return JSONResponse(content=Health(status="ok", model=getattr(detector, "name", None)).model_dump())
