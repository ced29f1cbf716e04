"""FastAPI dependencies of the gateway: API-key auth, services from app state, bounded uploads."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from services.gateway.config import Settings
from services.gateway.exceptions import PayloadTooLarge, TooManyRequests, Unauthorized, Unprocessable
from services.gateway.service import CloneService, DetectorClient, Metrics, RateLimiter, Upload
from shared.uploads import UploadTooLargeError, read_capped

# auto_error=False: we answer 401 (not FastAPI's 403) with our own message.
bearer_scheme = HTTPBearer(
    auto_error=False, description="An API key from `VCFAD_API_KEYS`: `Authorization: Bearer <key>`"
)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_detector(request: Request) -> DetectorClient:
    return request.app.state.detector


def get_clone_service(request: Request) -> CloneService:
    return request.app.state.clone_service


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def require_api_key(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The owner id (hash) of a valid bearer key; 401 otherwise."""
    if credentials is None:
        raise Unauthorized("missing API key: send `Authorization: Bearer <key>`")
    owners: dict[str, str] = request.app.state.key_owners
    presented = credentials.credentials.encode()
    owner = None
    # Compare against every key in constant time, so timing does not reveal a key's prefix.
    for key, key_owner in owners.items():
        if hmac.compare_digest(presented, key.encode()):
            owner = key_owner
    if owner is None:
        raise Unauthorized("invalid API key")
    return owner


def rate_limited(scope: str, what: str) -> Callable[..., Awaitable[str]]:
    """A dependency: the caller's owner id (401 without a valid key), counted against ``scope``'s limit (429)."""

    async def owner_within_limit(request: Request, owner: Annotated[str, Depends(require_api_key)]) -> str:
        limiter: RateLimiter = request.app.state.rate_limiter
        retry_after_s = await run_in_threadpool(limiter.retry_after_s, owner, scope)
        if retry_after_s is not None:
            limit = limiter.limits_per_min[scope]
            raise TooManyRequests(
                f"rate limit: at most {limit} {what} a minute per API key; retry in {retry_after_s} s", retry_after_s
            )
        return owner

    return owner_within_limit


async def read_upload(file: UploadFile, settings: Settings, field: str) -> Upload:
    """Read one multipart file, refusing it (413) once it passes ``max_upload_bytes``."""
    try:
        data = await read_capped(file, settings.max_upload_bytes, field)
    except UploadTooLargeError as error:
        raise PayloadTooLarge(str(error)) from None
    if not data:
        raise Unprocessable(f"`{field}` ({file.filename or 'upload'}) is empty (0 bytes)")
    return Upload(
        filename=file.filename or field,
        content_type=file.content_type or "application/octet-stream",
        data=data,
    )


ApiOwner = Annotated[str, Depends(require_api_key)]
#: The owner of a valid key within its per-minute limit for detection, clone submissions, job reads.
DetectOwner = Annotated[str, Depends(rate_limited("detect", "detections"))]
CloneOwner = Annotated[str, Depends(rate_limited("clone", "clone submissions"))]
ReadOwner = Annotated[str, Depends(rate_limited("read", "job requests"))]
SettingsDep = Annotated[Settings, Depends(get_settings)]
DetectorDep = Annotated[DetectorClient, Depends(get_detector)]
CloneServiceDep = Annotated[CloneService, Depends(get_clone_service)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
