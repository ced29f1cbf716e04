"""HTTP status of each audio error: unreadable → 415, unusable (silent, too short/long) → 422."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from shared.audio import AudioError, UnreadableAudioError
from shared.schemas import Problem
from shared.uploads import UploadTooLargeError


def status_of(error: AudioError) -> int:
    if isinstance(error, UnreadableAudioError):
        return status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    return status.HTTP_422_UNPROCESSABLE_CONTENT


def register_exception_handlers(app: FastAPI) -> None:
    @app.exception_handler(AudioError)
    async def audio_error(_request: Request, error: AudioError) -> JSONResponse:
        return JSONResponse(status_code=status_of(error), content={"detail": str(error)})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problem = Problem.from_validation_errors(error.errors())
        return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content=problem.model_dump())

    @app.exception_handler(UploadTooLargeError)
    async def too_large(_request: Request, error: UploadTooLargeError) -> JSONResponse:
        return JSONResponse(status_code=status.HTTP_413_CONTENT_TOO_LARGE, content={"detail": str(error)})
