"""Dependencies of the detector service: the process's one Detector, bounded uploads."""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request, UploadFile, status

from services.detector.config import Settings
from shared.audio import SilentAudioError
from shared.uploads import read_capped


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_detector(request: Request) -> Any:
    """The Detector loaded at start-up (one ONNX Runtime session per process); 503 until it is."""
    detector = request.app.state.detector
    if detector is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "the detector model is not loaded (yet)", headers={"Retry-After": "2"}
        )
    return detector


async def read_upload(file: UploadFile, settings: Settings) -> bytes:
    data = await read_capped(file, settings.max_upload_bytes, "file")  # UploadTooLargeError -> 413
    if not data:
        raise SilentAudioError(f"{file.filename or 'uploaded audio'}: the upload is empty (0 bytes)")
    return data
