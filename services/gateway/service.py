"""What the gateway does behind its routes: forward to the detector, queue and track clone jobs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
import uuid
from collections.abc import Callable
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
from shared.jobs import (
    JobNotFoundError,
    JobRecord,
    JobStore,
    RecoveryOutcome,
    WorkerSettings,
    recover_expired_jobs,
    send_clone_task,
    task_id,
)
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
        self.detector_forwards = Counter(
            "vcfad_detector_forwards_total",
            "Detection requests sent to each detector, by outcome (answered, unavailable, timeout)",
            ["detector", "outcome"],
            registry=self.registry,
        )
        self.recovered_jobs = Counter(
            "vcfad_clone_jobs_recovered_total",
            "Clone jobs whose worker was lost, by outcome (requeued, failed)",
            ["outcome"],
            registry=self.registry,
        )


class DetectorClient:
    """Forwards uploads to the detector service(s) over HTTP.

    With several detectors (``VCFAD_DETECTOR_URL`` a comma-separated list) requests go to each in
    turn. A detector that cannot be reached, or answers 503, is tried only after the others for
    ``detector_down_s`` and its request goes to the next one (detection is idempotent); when none
    answers, 503 with ``Retry-After``. Nothing needs restarting when a detector comes back.
    """

    def __init__(
        self, settings: Settings, client: httpx.AsyncClient | None = None, metrics: Metrics | None = None
    ) -> None:
        self.urls = settings.detector_urls()
        self.retry_after_s = settings.retry_after_s
        self.down_s = settings.detector_down_s
        self.metrics = metrics
        self._down_until = dict.fromkeys(self.urls, 0.0)
        self._turn = itertools.count()
        self.client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(settings.detector_timeout_s, connect=settings.detector_connect_timeout_s),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    def _order(self) -> list[str]:
        """This request's detectors: round robin, those seen down recently last."""
        start = next(self._turn) % len(self.urls)
        rotated = self.urls[start:] + self.urls[:start]
        now = time.monotonic()
        return sorted(rotated, key=lambda url: self._down_until[url] > now)

    def _count(self, url: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.detector_forwards.labels(detector=url, outcome=outcome).inc()

    async def detect(self, upload: Upload, *, timeline: bool) -> DetectResponse:
        """The detector's verdict; its 4xx answers are passed on with their message.

        Raises
        ------
        ServiceUnavailable
            No detector answers (down, starting, or too slow).
        BadGateway
            The detector failed, or answered something that is not a :class:`DetectResponse`.
        """
        not_ready = ""
        for url in self._order():
            try:
                response = await self.client.post(
                    f"{url}/detect",
                    params={"timeline": str(timeline).lower()},
                    files={"file": (upload.filename, upload.data, upload.content_type)},
                )
            except httpx.ConnectTimeout:
                self._mark_down(url)
                continue
            except httpx.TimeoutException:
                # It took the request and is slow (busy): sending the same work elsewhere would
                # only add load.
                self._count(url, "timeout")
                raise ServiceUnavailable(
                    "the detector service did not answer in time; retry later", self.retry_after_s
                ) from None
            except httpx.TransportError:  # refused, reset, or closed mid-request (stopped)
                self._mark_down(url)
                continue
            if response.status_code == 503:  # starting, or its model is not loaded
                self._mark_down(url)
                not_ready = _detail_of(response)
                continue
            self._down_until[url] = 0.0
            self._count(url, "answered")
            return self._verdict(response)
        if not_ready:
            raise ServiceUnavailable(f"the detector service is not ready: {not_ready}", self.retry_after_s)
        raise ServiceUnavailable(
            f"the detector service is unavailable (no answer at {', '.join(self.urls)}); retry later",
            self.retry_after_s,
        )

    def _mark_down(self, url: str) -> None:
        self._down_until[url] = time.monotonic() + self.down_s
        self._count(url, "unavailable")
        logger.warning("detector %s does not answer; trying the next one", url)

    @staticmethod
    def _verdict(response: httpx.Response) -> DetectResponse:
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
        raise BadGateway(f"the detector service failed (HTTP {response.status_code}): {detail}")

    async def ready(self) -> str:
        """``ok`` when at least one detector is ready (requests then go to the ready ones)."""
        answers = await asyncio.gather(*(self._ready(url) for url in self.urls))
        if "ok" in answers:
            return "ok"
        return (
            answers[0]
            if len(answers) == 1
            else "; ".join(f"{url}: {a}" for url, a in zip(self.urls, answers, strict=True))
        )

    async def _ready(self, url: str) -> str:
        try:
            response = await self.client.get(f"{url}/readyz", timeout=2.0)
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
            await run_in_threadpool(send_clone_task, self.celery, job_id, record.attempt)
        except Exception as error:  # Redis or the broker down: nothing was queued
            await run_in_threadpool(self._forget, job_id)
            where = "Redis" if self.queue.broker() == self.queue.redis_url else "Redis or the broker"
            raise ServiceUnavailable(
                f"the job queue ({where}) is unavailable: {type(error).__name__}", self.settings.retry_after_s
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
        """Catch jobs the worker could not close itself (its process killed by the hard time limit).

        A worker that is lost altogether is caught by its job's lease instead (:meth:`recover`).
        """
        if record.status not in (JobStatus.queued, JobStatus.running):
            return record
        result = self.celery.AsyncResult(task_id(record.job_id, record.attempt))
        if result.state == "FAILURE":
            error = f"the worker failed: {result.result!r}"
            self.store.fail(record.job_id, error)
            record.status, record.error, record.stage = JobStatus.failed, error, "failed"
        return record

    def recover(self) -> dict[str, RecoveryOutcome]:
        """Queue again (or fail) the jobs whose worker was lost (their lease ran out)."""
        return recover_expired_jobs(self.store, self.celery, self.queue)

    async def recover_forever(self, on_outcome: Callable[[RecoveryOutcome], None] | None = None) -> None:
        """:meth:`recover` every ``job_recovery_interval_s`` until cancelled (the app's lifespan)."""
        while True:
            await asyncio.sleep(self.queue.job_recovery_interval_s)
            try:
                outcomes = await run_in_threadpool(self.recover)
            except Exception as error:  # Redis or the broker down: try again next round
                logger.warning("job recovery failed: %s: %s", type(error).__name__, error)
                continue
            for outcome in outcomes.values():
                if on_outcome is not None and outcome in ("requeued", "failed"):
                    on_outcome(outcome)

    async def delete(self, job_id: str, owner: str) -> None:
        """Delete ``owner``'s job: record, references, cloned audio and Celery's result (404 otherwise).

        A queued job is then skipped by the worker; a running one writes nothing back.
        """
        try:
            record = await run_in_threadpool(self.store.get, job_id, owner)
        except JobNotFoundError:
            raise JobNotFound(job_id) from None
        except redis.RedisError as error:
            raise ServiceUnavailable(
                f"the job store (Redis) is unavailable: {type(error).__name__}", self.settings.retry_after_s
            ) from None
        await run_in_threadpool(self.store.delete, job_id)
        for attempt in range(1, record.attempt + 1):
            await run_in_threadpool(self.celery.AsyncResult(task_id(job_id, attempt)).forget)

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
