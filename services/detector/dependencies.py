"""Dependencies of the detector service: the process's one Detector, bounded uploads."""

from __future__ import annotations

from typing import Any

from fastapi import Request, UploadFile

from services.detector.config import Settings
from services.detector.exceptions import UploadTooLarge
from shared.audio import SilentAudioError


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_detector(request: Request) -> Any:
    """The Detector loaded at start-up (one ONNX Runtime session per process)."""
    return request.app.state.detector


async def read_upload(file: UploadFile, settings: Settings) -> bytes:
    limit = settings.max_upload_bytes
    if file.size is not None and file.size > limit:
        raise UploadTooLarge(f"`file` is {file.size} bytes; the maximum is {limit} bytes")
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise UploadTooLarge(f"`file` is larger than the maximum of {limit} bytes")
    if not data:
        raise SilentAudioError(f"{file.filename or 'uploaded audio'}: the upload is empty (0 bytes)")
    return data
