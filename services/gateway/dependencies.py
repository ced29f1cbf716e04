"""FastAPI dependencies of the gateway: API-key auth, services from app state, bounded uploads."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, UploadFile
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.gateway.config import Settings
from services.gateway.exceptions import PayloadTooLarge, Unauthorized, Unprocessable
from services.gateway.service import CloneService, DetectorClient, Metrics, Upload
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
SettingsDep = Annotated[Settings, Depends(get_settings)]
DetectorDep = Annotated[DetectorClient, Depends(get_detector)]
CloneServiceDep = Annotated[CloneService, Depends(get_clone_service)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
