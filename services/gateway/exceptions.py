"""The gateway's HTTP errors: each one a status code and a message meant for the user."""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from shared.schemas import Problem


class Unauthorized(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


class JobNotFound(HTTPException):
    def __init__(self, job_id: str) -> None:
        super().__init__(status.HTTP_404_NOT_FOUND, f"no clone job {job_id!r} for this API key")


class AudioNotReady(HTTPException):
    def __init__(self, job_id: str, job_status: str) -> None:
        super().__init__(status.HTTP_409_CONFLICT, f"clone job {job_id!r} is {job_status}; it has no audio yet")


class AudioExpired(HTTPException):
    def __init__(self, job_id: str) -> None:
        super().__init__(status.HTTP_410_GONE, f"the audio of clone job {job_id!r} has expired; submit it again")


class PayloadTooLarge(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(status.HTTP_413_CONTENT_TOO_LARGE, detail)


class UnsupportedMediaType(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail)


class Unprocessable(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(status.HTTP_422_UNPROCESSABLE_CONTENT, detail)


class TooManyRequests(HTTPException):
    """Over the per-key rate limit; ``Retry-After`` says when the key's window opens again."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(status.HTTP_429_TOO_MANY_REQUESTS, detail, headers={"Retry-After": str(retry_after_s)})


class ServiceUnavailable(HTTPException):
    """A backend (detector, Redis) does not answer; the client may retry after ``retry_after_s``."""

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(status.HTTP_503_SERVICE_UNAVAILABLE, detail, headers={"Retry-After": str(retry_after_s)})


class BadGateway(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(status.HTTP_502_BAD_GATEWAY, detail)


def register_exception_handlers(app: FastAPI) -> None:
    """Request-validation errors as a :class:`Problem` (one string naming the fields), like every other error."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError) -> JSONResponse:
        problem = Problem.from_validation_errors(error.errors())
        return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content=problem.model_dump())
