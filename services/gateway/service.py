"""What the gateway does behind its routes: forward to the detector, queue and track clone jobs."""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from dataclasses import dataclass

import httpx
import redis
from celery import Celery
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from services.gateway.config import Settings
from services.gateway.exceptions import (
    BadGateway,
    JobNotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    Unprocessable,
    UnsupportedMediaType,
)
from shared.audio import (
    AudioError,
    AudioTooLongError,
    AudioTooShortError,
    LoadPolicy,
    SilentAudioError,
    UnreadableAudioError,
    load_audio,
)
from shared.jobs import CLONE_TASK_NAME, JobNotFoundError, JobRecord, JobStore, WorkerSettings
from shared.schemas import DetectResponse, JobStatus
from shared.text import CloneTextError, clone_text

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upload:
    """One uploaded file, read into memory (sizes are capped before this exists)."""

    filename: str
    content_type: str
    data: bytes


class Metrics:
    """Prometheus metrics of one gateway app (own registry, so test apps do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vcfad_gateway_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vcfad_gateway_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.verdicts = Counter("vcfad_detect_verdicts_total", "Detector verdicts", ["label"], registry=self.registry)
        self.clone_jobs = Counter("vcfad_clone_jobs_submitted_total", "Clone jobs accepted", registry=self.registry)


class DetectorClient:
    """Forwards uploads to the detector service over HTTP."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self.base_url = settings.detector_url.rstrip("/")
        self.retry_after_s = settings.retry_after_s
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.detector_timeout_s, connect=settings.detector_connect_timeout_s),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def detect(self, upload: Upload, *, timeline: bool) -> DetectResponse:
        """The detector's verdict; its 4xx answers are passed on with their message.

        Raises
        ------
        ServiceUnavailable
            The detector does not answer (down, starting, or too slow).
        BadGateway
            The detector failed, or answered something that is not a :class:`DetectResponse`.
        """
        try:
            response = await self.client.post(
                f"{self.base_url}/detect",
                params={"timeline": str(timeline).lower()},
                files={"file": (upload.filename, upload.data, upload.content_type)},
            )
        except httpx.TimeoutException:
            raise ServiceUnavailable(
                "the detector service did not answer in time; retry later", self.retry_after_s
            ) from None
        except httpx.TransportError:
            raise ServiceUnavailable(
                f"the detector service is unavailable (no answer at {self.base_url}); retry later",
                self.retry_after_s,
            ) from None
        if response.status_code == 200:
            try:
                return DetectResponse.model_validate_json(response.content)
            except ValidationError as error:
                raise BadGateway(
                    f"the detector service answered an unexpected body ({error.error_count()} errors)"
                ) from None
        detail = _detail_of(response)
        if response.status_code == 413:
            raise PayloadTooLarge(detail)
        if response.status_code == 415:
            raise UnsupportedMediaType(detail)
        if response.status_code == 422:
            raise Unprocessable(detail)
        if response.status_code == 503:
            raise ServiceUnavailable(f"the detector service is not ready: {detail}", self.retry_after_s)
        raise BadGateway(f"the detector service failed (HTTP {response.status_code}): {detail}")

    async def ready(self) -> str:
        try:
            response = await self.client.get(f"{self.base_url}/readyz", timeout=2.0)
        except httpx.HTTPError as error:
            return f"unavailable ({type(error).__name__})"
        return "ok" if response.status_code == 200 else f"not ready (HTTP {response.status_code})"


def _detail_of(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    if isinstance(detail, list):  # FastAPI validation errors
        detail = "; ".join(str(item.get("msg", item)) for item in detail)
    return str(detail or response.text[:200] or response.reason_phrase)


class RateLimiter:
    """Per-API-key request limits: fixed one-minute windows counted in Redis.

    The count lives in Redis (``vcfad:rate:<scope>:<owner>:<minute>``, expiring after two
    minutes), so every gateway process sharing that Redis enforces one limit per key. Keys are
    counted by their owner hash, never by the key itself. If Redis does not answer, requests are
    let through (detection does not otherwise need Redis) and the limiter rests for a few seconds
    rather than make every request wait for a timeout.
    """

    WINDOW_S = 60
    PAUSE_WHEN_DOWN_S = 5.0

    def __init__(self, client: redis.Redis, limits_per_min: dict[str, int]) -> None:
        self.client = client
        self.limits_per_min = limits_per_min
        self._down_until = 0.0

    def retry_after_s(self, owner: str, scope: str) -> int | None:
        """Count one request of ``owner`` in ``scope``; None if allowed, else seconds to wait."""
        limit = self.limits_per_min.get(scope, 0)
        if limit <= 0 or time.monotonic() < self._down_until:
            return None
        now = time.time()
        window = int(now // self.WINDOW_S)
        key = f"vcfad:rate:{scope}:{owner}:{window}"
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, 2 * self.WINDOW_S)
                count = int(pipe.execute()[0])
        except redis.RedisError as error:
            self._down_until = time.monotonic() + self.PAUSE_WHEN_DOWN_S
            logger.warning("rate limiter: Redis unavailable (%s); not limiting for now", type(error).__name__)
            return None
        if count <= limit:
            return None
        return max(1, math.ceil((window + 1) * self.WINDOW_S - now))


class CloneService:
    """Validates clone requests, records jobs in Redis and queues them for the Celery worker."""

    def __init__(self, settings: Settings, queue: WorkerSettings, celery: Celery, store: JobStore) -> None:
        self.settings = settings
        self.queue = queue
        self.celery = celery
        self.store = store
        self.reference_policy = LoadPolicy(
            min_duration_s=settings.min_reference_duration_s,
            max_duration_s=settings.max_reference_duration_s,
            normalize_loudness=False,
        )
        self._workers_checked_at = 0.0
        self._workers_answer = "unknown"

    # -- validation -----------------------------------------------------------------------------
    def validate_text(self, text: str) -> str:
        """``text`` in normal form by the clone-text rule (the worker's rule too); 422 otherwise."""
        try:
            return clone_text(text, self.settings.max_text_chars)
        except CloneTextError as error:
            raise Unprocessable(str(error)) from None

    def validate_reference(self, upload: Upload) -> None:
        """Decode one reference; a bad one is refused now, not minutes later in the worker."""
        try:
            load_audio(upload.data, self.reference_policy)
        except UnreadableAudioError as error:
            raise UnsupportedMediaType(f"reference {upload.filename!r}: {_strip_name(error)}") from None
        except (SilentAudioError, AudioTooShortError, AudioTooLongError, AudioError) as error:
            raise Unprocessable(f"reference {upload.filename!r}: {_strip_name(error)}") from None

    # -- jobs -----------------------------------------------------------------------------------
    async def submit(self, owner: str, references: list[Upload], text: str, match_channel: bool = True) -> str:
        if not references:
            raise Unprocessable("at least one `reference` audio file is required")
        if len(references) > self.settings.max_references:
            raise Unprocessable(f"{len(references)} reference files; the maximum is {self.settings.max_references}")
        text = self.validate_text(text)
        for upload in references:
            await run_in_threadpool(self.validate_reference, upload)
        job_id = uuid.uuid4().hex
        record = JobRecord(job_id=job_id, owner=owner, text=text, match_channel=match_channel)
        try:
            await run_in_threadpool(self.store.create, record, [upload.data for upload in references])
            await run_in_threadpool(self.celery.send_task, CLONE_TASK_NAME, args=[job_id], task_id=job_id, retry=False)
        except Exception as error:  # Redis down: nothing was queued
            await run_in_threadpool(self._forget, job_id)
            raise ServiceUnavailable(
                f"the job queue (Redis) is unavailable: {type(error).__name__}", self.settings.retry_after_s
            ) from None
        return job_id

    def _forget(self, job_id: str) -> None:
        with contextlib.suppress(Exception):  # Redis is what failed; nothing more to undo
            self.store.delete(job_id)

    async def status(self, job_id: str, owner: str) -> JobRecord:
        try:
            record = await run_in_threadpool(self.store.get, job_id, owner)
        except JobNotFoundError:
            raise JobNotFound(job_id) from None
        except redis.RedisError as error:
            raise ServiceUnavailable(
                f"the job store (Redis) is unavailable: {type(error).__name__}", self.settings.retry_after_s
            ) from None
        return await run_in_threadpool(self._reconcile, record)

    def _reconcile(self, record: JobRecord) -> JobRecord:
        """Catch jobs the worker could not close itself (killed by the hard time limit)."""
        if record.status not in (JobStatus.queued, JobStatus.running):
            return record
        if record.status is JobStatus.running:
            silent_s = time.time() - record.updated_at
            if silent_s > self.queue.clone_time_limit_s + 60:
                error = f"the worker stopped reporting {silent_s:.0f} s ago (killed or lost)"
                self.store.fail(record.job_id, error)
                record.status, record.error, record.stage = JobStatus.failed, error, "failed"
                return record
        result = self.celery.AsyncResult(record.job_id)
        if result.state == "FAILURE":
            error = f"the worker failed: {result.result!r}"
            self.store.fail(record.job_id, error)
            record.status, record.error, record.stage = JobStatus.failed, error, "failed"
        return record

    async def delete(self, job_id: str, owner: str) -> None:
        """Delete ``owner``'s job: record, references, cloned audio and Celery's result (404 otherwise).

        A queued job is then skipped by the worker; a running one writes nothing back.
        """
        try:
            await run_in_threadpool(self.store.get, job_id, owner)
        except JobNotFoundError:
            raise JobNotFound(job_id) from None
        except redis.RedisError as error:
            raise ServiceUnavailable(
                f"the job store (Redis) is unavailable: {type(error).__name__}", self.settings.retry_after_s
            ) from None
        await run_in_threadpool(self.store.delete, job_id)
        await run_in_threadpool(self.celery.AsyncResult(job_id).forget)

    async def audio(self, job_id: str, owner: str) -> tuple[JobRecord, bytes | None]:
        record = await self.status(job_id, owner)
        data = await run_in_threadpool(self.store.audio, job_id) if record.status is JobStatus.succeeded else None
        return record, data

    # -- readiness --------------------------------------------------------------------------------
    def redis_ready(self) -> str:
        try:
            self.store.client.ping()
        except Exception as error:
            return f"unavailable ({type(error).__name__})"
        return "ok"

    def workers_ready(self) -> str:
        """Whether at least one worker answers a ping (cached for a few seconds)."""
        now = time.monotonic()
        if now - self._workers_checked_at < self.settings.readiness_cache_s and self._workers_answer == "ok":
            return self._workers_answer
        try:
            replies = self.celery.control.ping(timeout=1.0, limit=1)
        except Exception as error:
            answer = f"unavailable ({type(error).__name__})"
        else:
            answer = "ok" if replies else "no worker answers"
        self._workers_checked_at, self._workers_answer = now, answer
        return answer


def _strip_name(error: Exception) -> str:
    """AudioError messages start with the source's name ("uploaded audio: ..."); drop it."""
    message = str(error)
    prefix = "uploaded audio: "
    return message[len(prefix) :] if message.startswith(prefix) else message
