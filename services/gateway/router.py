"""Routes of the public gateway: detection, cloning jobs, health and metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool

from services.gateway.dependencies import (
    CloneOwner,
    CloneServiceDep,
    DetectorDep,
    DetectOwner,
    MetricsDep,
    ReadOwner,
    SettingsDep,
    read_upload,
)
from services.gateway.exceptions import AudioExpired, AudioNotReady, Unprocessable
from shared.schemas import CloneAccepted, CloneStatus, DetectResponse, GatewayHealth, JobStatus, Problem

# FastAPI's ``responses``: status code → OpenAPI response (typed so the dicts can be merged). Every
# error a route can answer is listed, each with the Problem body: the schema tests hold us to it.
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No or invalid API key"},
    422: {"model": Problem, "description": "A missing or malformed field (named in `detail`)"},
    429: {"model": Problem, "description": "Over this key's rate limit; see `Retry-After`", "headers": _RETRY_AFTER},
}
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body is not valid multipart/form-data"},
    413: {"model": Problem, "description": "A file or the request is too large"},
    415: {
        "model": Problem,
        "description": "Not a readable audio file (WAV, FLAC, MP3 or OGG expected), or a corrupt one",
    },
    422: {"model": Problem, "description": "Silent, too short or too long audio; bad or missing fields"},
}
_JOB_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "Unknown job, or another key's job"},
    503: {"model": Problem, "description": "The job store (Redis) is down; see `Retry-After`", "headers": _RETRY_AFTER},
}

api = APIRouter()
ops = APIRouter(tags=["operations"])


@api.post(
    "/detect",
    response_model=DetectResponse,
    tags=["detection"],
    summary="Is this recording synthetic?",
    responses={
        **_AUTH,
        **_UPLOAD_ERRORS,
        502: {"model": Problem, "description": "The detector service failed"},
        503: {
            "model": Problem,
            "description": "The detector service is down; see `Retry-After`",
            "headers": _RETRY_AFTER,
        },
    },
)
async def detect(
    owner: DetectOwner,
    settings: SettingsDep,
    detector: DetectorDep,
    metrics: MetricsDep,
    file: Annotated[UploadFile, File(description="Speech to check: WAV, FLAC, MP3 or OGG")],
    timeline: Annotated[bool, Query(description="Also return per-window scores")] = False,
) -> DetectResponse:
    """Score one recording: `score` is the probability that it is fake (synthetic or cloned)."""
    upload = await read_upload(file, settings, "file")
    verdict = await detector.detect(upload, timeline=timeline)
    metrics.verdicts.labels(label=verdict.label).inc()
    return verdict


@api.post(
    "/clone",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CloneAccepted,
    tags=["cloning"],
    summary="Queue a voice-cloning job",
    responses={
        202: {"description": "Queued; poll `status_url` (also in `Location`) after `Retry-After` seconds"},
        **_AUTH,
        **_UPLOAD_ERRORS,
        503: {"model": Problem, "description": "The job queue is down; see `Retry-After`", "headers": _RETRY_AFTER},
    },
)
async def clone(
    owner: CloneOwner,
    settings: SettingsDep,
    service: CloneServiceDep,
    metrics: MetricsDep,
    response: Response,
    reference: Annotated[
        list[UploadFile], File(description="One or more recordings of the voice to clone (≥ 1 s each)")
    ],
    text: Annotated[str, Form(description="What the cloned voice should say", examples=["Hello from vcfad."])],
    match_channel: Annotated[
        bool,
        Form(
            description="Give the clone the references' recording channel (room tone and microphone "
            "colouring); false = the synthesizer's clean studio sound"
        ),
    ] = True,
) -> CloneAccepted:
    """Queue a job that makes the voice of `reference` say `text`; answers at once with a job id."""
    if len(reference) > settings.max_references:
        raise Unprocessable(f"{len(reference)} reference files; the maximum is {settings.max_references}")
    uploads = [await read_upload(item, settings, "reference") for item in reference]
    job_id = await service.submit(owner, uploads, text, match_channel)
    metrics.clone_jobs.inc()
    status_url = f"/clone/{job_id}"
    response.headers["Location"] = status_url
    response.headers["Retry-After"] = str(settings.retry_after_s)
    return CloneAccepted(job_id=job_id, status_url=status_url)


@api.get(
    "/clone/{job_id}",
    response_model=CloneStatus,
    tags=["cloning"],
    summary="Status of a cloning job",
    responses={**_AUTH, **_JOB_ERRORS},
)
async def clone_status(job_id: str, owner: ReadOwner, service: CloneServiceDep, response: Response) -> CloneStatus:
    record = await service.status(job_id, owner)
    done = record.status in (JobStatus.succeeded, JobStatus.failed)
    if not done:
        response.headers["Retry-After"] = str(service.settings.retry_after_s)
    succeeded = record.status is JobStatus.succeeded
    return CloneStatus(
        job_id=record.job_id,
        status=record.status,
        progress=record.progress,
        stage=record.stage,
        error=(record.error or "unknown error") if record.status is JobStatus.failed else None,
        audio_url=f"/clone/{record.job_id}/audio" if succeeded else None,
        duration_s=record.duration_s if succeeded else None,
    )


@api.get(
    "/clone/{job_id}/audio",
    tags=["cloning"],
    summary="Download the cloned speech (WAV)",
    response_class=Response,
    responses={
        200: {"content": {"audio/wav": {}}, "description": "16-bit PCM WAV"},
        **_AUTH,
        **_JOB_ERRORS,
        409: {"model": Problem, "description": "The job has not succeeded (yet)"},
        410: {"model": Problem, "description": "The audio has expired"},
    },
)
async def clone_audio(job_id: str, owner: ReadOwner, service: CloneServiceDep) -> Response:
    record, data = await service.audio(job_id, owner)
    if record.status is not JobStatus.succeeded:
        raise AudioNotReady(job_id, record.status.value)
    if data is None:
        raise AudioExpired(job_id)
    return Response(
        content=data,
        media_type="audio/wav",
        headers={"Content-Disposition": f'attachment; filename="vcfad-clone-{job_id}.wav"'},
    )


@api.delete(
    "/clone/{job_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    tags=["cloning"],
    summary="Delete a cloning job, its reference voices and its audio",
    responses={204: {"description": "Deleted; a running job's result will not be stored"}, **_AUTH, **_JOB_ERRORS},
)
async def delete_clone(job_id: str, owner: ReadOwner, service: CloneServiceDep) -> Response:
    """Delete the job now, before its retention time: record, uploaded references and cloned audio."""
    await service.delete(job_id, owner)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@ops.get("/healthz", response_model=GatewayHealth, summary="Liveness: the gateway process answers")
async def healthz() -> GatewayHealth:
    return GatewayHealth(status="ok")


@ops.get(
    "/readyz",
    response_model=GatewayHealth,
    summary="Readiness: Redis, the detector and at least one worker answer",
    responses={503: {"model": GatewayHealth, "description": "Something the gateway needs is down"}},
)
async def readyz(detector: DetectorDep, service: CloneServiceDep, response: Response) -> GatewayHealth:
    checks = {
        "redis": await run_in_threadpool(service.redis_ready),
        "detector": await detector.ready(),
    }
    checks["worker"] = await run_in_threadpool(service.workers_ready) if checks["redis"] == "ok" else "unknown"
    ok = all(value == "ok" for value in checks.values())
    response.status_code = status.HTTP_200_OK if ok else status.HTTP_503_SERVICE_UNAVAILABLE
    return GatewayHealth(status="ok" if ok else "unavailable", checks=checks)


@ops.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics_endpoint(metrics: MetricsDep) -> Response:
    return Response(content=generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
