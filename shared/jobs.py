"""The clone-job contract between the gateway (producer) and the Celery worker (consumer).

Both sides import this module, never each other: the task name and queue, the queue settings,
the Celery app factory (the gateway sends the task by name), and the job records in Redis.

Redis is the broker, Celery's result store, and the home of vcfad's own job records. Celery
reports any unknown task id as ``PENDING``, so the gateway cannot tell a typo from a queued job
by asking Celery; it reads a :class:`JobRecord` instead, which also remembers the API key (as a
hash) that created the job. The reference audio and the cloned audio live in Redis next to the
record, each with a TTL, so workers on other hosts need nothing but the Redis URL.

Redis layout (``vcfad:job:<id>`` prefix)::

    vcfad:job:<id>          hash  the JobRecord                       TTL job_ttl_s
    vcfad:job:<id>:refs     list  encoded reference uploads           TTL min(reference_ttl_s, job_ttl_s);
                                                                      deleted when the job ends
    vcfad:job:<id>:audio    bytes the cloned speech as WAV            TTL result_ttl_s, never past the record

Retention (docs/security.md): nothing outlives its record, whether the job succeeds, fails or is
never picked up; ``DELETE /clone/{id}`` (:meth:`JobStore.delete`) removes all three at once, and a
worker still running that job then writes nothing back (:meth:`JobStore.succeed` and
:meth:`JobStore.update` only touch a record that exists, atomically).

This module imports no model code, so the gateway can use it to enqueue jobs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import Any, cast

import redis
from celery import Celery
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.schemas import JobStatus

#: The Celery name of the cloning task (the gateway sends it by name; it never imports the worker).
CLONE_TASK_NAME = "vcfad.clone"
#: The queue cloning jobs wait in; start workers with ``-Q vcfad-clone``.
CLONE_QUEUE = "vcfad-clone"
_PREFIX = "vcfad:job:"


class WorkerSettings(BaseSettings):
    """Queue settings shared by the gateway (producer) and the worker (consumer); env ``VCFAD_*``."""

    model_config = SettingsConfigDict(env_prefix="VCFAD_", extra="ignore")

    #: Broker, Celery result store and job records; every worker and the gateway use the same one.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: A clone taking longer gets SoftTimeLimitExceeded (the job fails with a clear error) ...
    clone_soft_time_limit_s: int = 600
    #: ... and after this the worker process is killed and replaced.
    clone_time_limit_s: int = 660
    #: How long a job record (and its status) stays readable.
    job_ttl_s: int = 24 * 3600
    #: How long uploaded reference voices are kept if no worker has finished the job by then (a
    #: job that ends deletes them at once); capped at ``job_ttl_s``.
    reference_ttl_s: int = 3600
    #: How long the cloned audio stays downloadable (never past its job record).
    result_ttl_s: int = 3600


def create_celery(settings: WorkerSettings | None = None) -> Celery:
    """A Celery app on ``settings.redis_url`` configured for long, at-least-once cloning jobs."""
    settings = settings or WorkerSettings()
    app = Celery("vcfad", broker=settings.redis_url, backend=settings.redis_url)
    app.conf.update(
        task_default_queue=CLONE_QUEUE,
        task_routes={CLONE_TASK_NAME: {"queue": CLONE_QUEUE}},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # At-least-once: a job is acknowledged only when it ends, and goes back to the queue if
        # the worker process dies under it (OOM, hard time limit, host lost).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_track_started=True,
        # One long job at a time per process; do not hoard queued jobs other workers could run.
        worker_prefetch_multiplier=1,
        result_expires=settings.result_ttl_s,
        broker_connection_retry_on_startup=True,
        # Redis redelivers unacknowledged messages after the visibility timeout: it must be longer
        # than the longest job, or a running job is started a second time elsewhere.
        broker_transport_options={"visibility_timeout": settings.clone_time_limit_s + 300},
        result_backend_transport_options={"visibility_timeout": settings.clone_time_limit_s + 300},
    )
    return app


# HSET ARGV pairs on KEYS[1] only if it exists.
_UPDATE_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
  return 1
end
return 0
"""
# KEYS: record, references, audio. ARGV: wav, audio TTL (ms), then the record's field/value pairs.
# The references go either way; the audio is stored only under an existing record, and expires no
# later than that record.
_SUCCEED_IF_EXISTS = """
redis.call('DEL', KEYS[2])
local record_ttl_ms = redis.call('PTTL', KEYS[1])
if record_ttl_ms == -2 then
  return 0
end
local audio_ttl_ms = tonumber(ARGV[2])
if record_ttl_ms > 0 and record_ttl_ms < audio_ttl_ms then
  audio_ttl_ms = record_ttl_ms
end
redis.call('SET', KEYS[3], ARGV[1], 'PX', audio_ttl_ms)
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
return 1
"""


class JobNotFoundError(LookupError):
    """No job with that id (never created, expired, or owned by another API key)."""


@dataclass
class JobRecord:
    """What the gateway tells a client about a cloning job."""

    job_id: str
    owner: str  # sha256 of the API key that created the job
    status: JobStatus = JobStatus.queued
    progress: float = 0.0  # 0..1
    stage: str = "queued"
    error: str = ""
    text: str = ""
    reference_count: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    duration_s: float = 0.0  # of the cloned audio, once succeeded
    match_channel: bool = True  # give the clone the references' room and microphone

    def to_redis(self) -> dict[str, str]:
        values = asdict(self)
        values["status"] = self.status.value
        return {key: str(value) for key, value in values.items()}

    @classmethod
    def from_redis(cls, raw: dict[bytes, bytes]) -> JobRecord:
        decoded = {key.decode(): value.decode() for key, value in raw.items()}
        kwargs: dict[str, object] = {}
        for field in fields(cls):
            if field.name not in decoded:
                continue
            value = decoded[field.name]
            if field.name == "status":
                kwargs[field.name] = JobStatus(value)
            elif field.type in ("float",):
                kwargs[field.name] = float(value)
            elif field.type in ("int",):
                kwargs[field.name] = int(value)
            elif field.type in ("bool",):
                kwargs[field.name] = value == "True"
            else:
                kwargs[field.name] = value
        return cls(**kwargs)  # type: ignore[arg-type]  # each value converted to its field's type above


class JobStore:
    """Job records, reference uploads and cloned audio in Redis (sync client; thread-safe)."""

    def __init__(
        self, client: redis.Redis, *, job_ttl_s: int, result_ttl_s: int, reference_ttl_s: int | None = None
    ) -> None:
        self.client = client
        self.job_ttl_s = job_ttl_s
        self.result_ttl_s = result_ttl_s
        # References never outlive the record they belong to.
        self.reference_ttl_s = min(reference_ttl_s or job_ttl_s, job_ttl_s)
        self._update_script = client.register_script(_UPDATE_IF_EXISTS)
        self._succeed_script = client.register_script(_SUCCEED_IF_EXISTS)

    @classmethod
    def from_settings(cls, settings: WorkerSettings | None = None) -> JobStore:
        settings = settings or WorkerSettings()
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
        return cls(
            client,
            job_ttl_s=settings.job_ttl_s,
            result_ttl_s=settings.result_ttl_s,
            reference_ttl_s=settings.reference_ttl_s,
        )

    # -- keys -------------------------------------------------------------------------------
    @staticmethod
    def record_key(job_id: str) -> str:
        return f"{_PREFIX}{job_id}"

    @staticmethod
    def references_key(job_id: str) -> str:
        return f"{_PREFIX}{job_id}:refs"

    @staticmethod
    def audio_key(job_id: str) -> str:
        return f"{_PREFIX}{job_id}:audio"

    # -- producer side (gateway) ---------------------------------------------------------------
    def create(self, record: JobRecord, references: list[bytes]) -> None:
        """Store a new queued job and its reference uploads atomically."""
        now = time.time()
        record.created_at = record.updated_at = now
        record.reference_count = len(references)
        # redis-py types hash field names as a union (and Mapping keys are invariant): Any keys.
        values: dict[Any, str] = record.to_redis()
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.record_key(record.job_id), mapping=values)
            pipe.expire(self.record_key(record.job_id), self.job_ttl_s)
            pipe.rpush(self.references_key(record.job_id), *references)
            pipe.expire(self.references_key(record.job_id), self.reference_ttl_s)
            pipe.execute()

    def get(self, job_id: str, owner: str | None = None) -> JobRecord:
        """The record of ``job_id``; with ``owner``, only if that key created it.

        Raises
        ------
        JobNotFoundError
            Unknown, expired, or another owner's job (indistinguishable on purpose).
        """
        # The client does not decode responses (from_settings): replies are bytes, not str.
        raw = cast("dict[bytes, bytes]", self.client.hgetall(self.record_key(job_id)))
        if not raw:
            raise JobNotFoundError(f"no clone job {job_id!r}")
        record = JobRecord.from_redis(raw)
        if owner is not None and record.owner != owner:
            raise JobNotFoundError(f"no clone job {job_id!r}")
        return record

    def audio(self, job_id: str) -> bytes | None:
        return cast("bytes | None", self.client.get(self.audio_key(job_id)))

    def delete(self, job_id: str) -> None:
        """Remove the record, the references and the cloned audio of ``job_id`` (one command)."""
        self.client.delete(self.record_key(job_id), self.references_key(job_id), self.audio_key(job_id))

    # -- consumer side (worker) ----------------------------------------------------------------
    def references(self, job_id: str) -> list[bytes]:
        return list(cast("list[bytes]", self.client.lrange(self.references_key(job_id), 0, -1)))

    def update(self, job_id: str, **changes: object) -> None:
        """Set fields of an existing record (a record that expired meanwhile is not recreated)."""
        key = self.record_key(job_id)
        values: dict[Any, str] = {
            name: (value.value if isinstance(value, JobStatus) else str(value)) for name, value in changes.items()
        }
        values["updated_at"] = str(time.time())
        # Only touch records that exist, in one step: HSET on a missing key (expired, or deleted by
        # its owner meanwhile) would create a record without owner.
        self._update_script(keys=[key], args=[item for pair in values.items() for item in pair])

    def succeed(self, job_id: str, wav: bytes, duration_s: float) -> bool:
        """Store the cloned audio and mark the job done; False (nothing stored) if the record is gone.

        Atomic, so a job deleted by its owner while the worker ran never gets its result back.
        """
        values = {
            "status": JobStatus.succeeded.value,
            "progress": "1.0",
            "stage": "done",
            "error": "",
            "duration_s": str(round(duration_s, 3)),
            "updated_at": str(time.time()),
        }
        stored = self._succeed_script(
            keys=[self.record_key(job_id), self.references_key(job_id), self.audio_key(job_id)],
            args=[wav, self.result_ttl_s * 1000, *(item for pair in values.items() for item in pair)],
        )
        return bool(stored)

    def fail(self, job_id: str, error: str) -> None:
        self.client.delete(self.references_key(job_id))
        self.update(job_id, status=JobStatus.failed, stage="failed", error=error)
