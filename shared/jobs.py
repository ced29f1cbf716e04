"""The clone-job contract between the gateway (producer) and the Celery worker (consumer).

Both sides import this module, never each other: the task name and queue, the queue settings,
the Celery app factory (the gateway sends the task by name), the job records in Redis, and the
recovery of jobs whose worker was lost.

Redis holds vcfad's own job records, Celery's results and, by default, the queue (the broker can
be RabbitMQ instead: ``VCFAD_BROKER_URL``). Celery reports any unknown task id as ``PENDING``, so
the gateway cannot tell a typo from a queued job by asking Celery; it reads a :class:`JobRecord`
instead, which also remembers the API key (as a hash) that created the job. The reference audio
and the cloned audio live in Redis next to the record, each with a TTL, so workers on other hosts
need nothing but the Redis and broker URLs.

Redis layout (``vcfad:job:<id>`` prefix)::

    vcfad:job:<id>          hash  the JobRecord                       TTL job_ttl_s
    vcfad:job:<id>:refs     list  encoded reference uploads           TTL min(reference_ttl_s, job_ttl_s);
                                                                      deleted when the job ends
    vcfad:job:<id>:audio    bytes the cloned speech as WAV            TTL result_ttl_s, never past the record
    vcfad:jobs:leases       zset  running job ids by lease expiry (Redis clock)

Leases: a worker *claims* a queued job (one attempt, one worker id) and holds a lease of
``job_lease_s`` that it renews with every progress report and from a heartbeat thread. A job whose
lease ran out (its worker was killed, its host lost) is put back in the queue as its next attempt
by :func:`recover_expired_jobs` (the gateway runs it every ``job_recovery_interval_s``; each worker
once at start), or failed after ``job_max_attempts``. Every write of a worker is checked in Redis
(Lua) against the record's current attempt and worker, so a stale worker, or a redelivered
message of an older attempt, can neither run the job again nor overwrite the newer attempt's
progress or result: a job ends once, with one result.

Retention (docs/security.md): nothing outlives its record, whether the job succeeds, fails or is
never picked up; ``DELETE /clone/{id}`` (:meth:`JobStore.delete`) removes all three at once, and a
worker still running that job then writes nothing back (its next report finds no record and it
stops).

This module imports no model code, so the gateway can use it to enqueue jobs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, cast

import redis
from celery import Celery
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.schemas import JobStatus

logger = logging.getLogger(__name__)

#: The Celery name of the cloning task (the gateway sends it by name; it never imports the worker).
CLONE_TASK_NAME = "vcfad.clone"
#: The default queue cloning jobs wait in (``VCFAD_CLONE_QUEUE``); workers consume it with ``-Q``.
CLONE_QUEUE = "vcfad-clone"
_PREFIX = "vcfad:job:"
LEASES_KEY = "vcfad:jobs:leases"


class WorkerSettings(BaseSettings):
    """Queue settings shared by the gateway (producer) and the worker (consumer); env ``VCFAD_*``."""

    model_config = SettingsConfigDict(env_prefix="VCFAD_", extra="ignore")

    #: Job records, references, results and Celery's result store; every worker and gateway use the same one.
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Celery's broker; empty = ``redis_url``. RabbitMQ: ``amqp://user:password@host:5672//``.
    broker_url: str = ""
    #: The queue cloning jobs go through (start workers with ``-Q`` this name).
    clone_queue: str = CLONE_QUEUE
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
    #: A running job's lease: renewed every ``job_lease_s / 3`` by its worker; once it runs out the
    #: job is taken to be lost with its worker and is queued again.
    job_lease_s: float = Field(default=30.0, gt=0)
    #: How often the gateway looks for jobs whose lease ran out.
    job_recovery_interval_s: float = Field(default=15.0, gt=0)
    #: Attempts of a job whose workers keep getting lost before it fails.
    job_max_attempts: int = Field(default=3, ge=1)

    def broker(self) -> str:
        return self.broker_url or self.redis_url


def create_celery(settings: WorkerSettings | None = None) -> Celery:
    """A Celery app on the configured broker, configured for long, at-least-once cloning jobs."""
    settings = settings or WorkerSettings()
    app = Celery("vcfad", broker=settings.broker(), backend=settings.redis_url)
    app.conf.update(
        task_default_queue=settings.clone_queue,
        task_routes={CLONE_TASK_NAME: {"queue": settings.clone_queue}},
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # At-least-once: a message is acknowledged only when its job ends, and goes back to the
        # queue if the worker process dies under it (OOM, hard time limit, host lost). Which
        # delivery actually runs is decided by the claim on the job record (JobStore.claim).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # The job record is the source of truth for state and progress; Celery only keeps results.
        task_track_started=False,
        # One long job at a time per process; do not hoard queued jobs other workers could run.
        worker_prefetch_multiplier=1,
        result_expires=settings.result_ttl_s,
        broker_connection_retry_on_startup=True,
        # Redis redelivers unacknowledged messages after the visibility timeout (a duplicate
        # delivery of a running job is refused by its claim; a lost worker's job comes back sooner,
        # through its lease: recover_expired_jobs).
        broker_transport_options={"visibility_timeout": settings.clone_time_limit_s + 300},
        result_backend_transport_options={"visibility_timeout": settings.clone_time_limit_s + 300},
    )
    return app


def task_id(job_id: str, attempt: int) -> str:
    """Celery's task id of one attempt (the first is the job id itself), so results never mix."""
    return job_id if attempt <= 1 else f"{job_id}.{attempt}"


def send_clone_task(celery: Celery, job_id: str, attempt: int) -> None:
    """Queue attempt ``attempt`` of ``job_id`` (raises if the broker does not answer)."""
    celery.send_task(CLONE_TASK_NAME, args=[job_id, attempt], task_id=task_id(job_id, attempt), retry=False)


# Every script reads Redis' own clock, so leases mean the same on every host whatever its clock.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""
# KEYS: record, leases. ARGV: job id, attempt, worker, lease (s).
_CLAIM = (
    _NOW
    + """
local rec = redis.call('HMGET', KEYS[1], 'status', 'attempt')
if not rec[1] then return 'missing' end
if rec[1] == 'succeeded' or rec[1] == 'failed' then return 'ended' end
if (tonumber(rec[2] or '1') or 1) ~= tonumber(ARGV[2]) then return 'stale' end
if rec[1] ~= 'queued' then return 'taken' end
local lease_until = now + tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'status', 'running', 'worker', ARGV[3], 'lease_until', tostring(lease_until),
  'progress', '0.0', 'stage', 'starting', 'error', '', 'updated_at', tostring(now))
redis.call('ZADD', KEYS[2], lease_until, ARGV[1])
return 'claimed'
"""
)
# KEYS: record, leases. ARGV: job id, worker, lease (s), then field/value pairs to set.
_REPORT = (
    _NOW
    + """
local rec = redis.call('HMGET', KEYS[1], 'status', 'worker')
if rec[1] ~= 'running' or rec[2] ~= ARGV[2] then return 0 end
local lease_until = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], 'lease_until', tostring(lease_until), unpack(ARGV, 4))
redis.call('ZADD', KEYS[2], lease_until, ARGV[1])
return 1
"""
)
# The start of the scripts that end a job (KEYS: record, references, leases, ...; ARGV[1]: job id):
# a record deleted meanwhile (by its owner, or expired) leaves no references or lease behind.
_RECORD_OR_CLEAN_UP = """
local rec = redis.call('HMGET', KEYS[1], 'status', 'worker')
if not rec[1] then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[1])
  return 0
end
"""
# KEYS: record, references, leases, audio. ARGV: job id, worker, wav, audio TTL (ms), then the
# record's field/value pairs. The audio is stored only under a record this worker still runs, and
# expires no later than that record.
_SUCCEED = (
    _RECORD_OR_CLEAN_UP
    + """
if rec[1] ~= 'running' or rec[2] ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[2])
local record_ttl_ms = redis.call('PTTL', KEYS[1])
local audio_ttl_ms = tonumber(ARGV[4])
if record_ttl_ms > 0 and record_ttl_ms < audio_ttl_ms then
  audio_ttl_ms = record_ttl_ms
end
redis.call('SET', KEYS[4], ARGV[3], 'PX', audio_ttl_ms)
redis.call('HSET', KEYS[1], 'lease_until', '0', unpack(ARGV, 5))
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""
)
# KEYS: record, references, leases. ARGV: job id, worker ('' = whoever runs it), field/value pairs.
_FAIL = (
    _RECORD_OR_CLEAN_UP
    + """
if rec[1] == 'succeeded' or rec[1] == 'failed' then return 0 end
if ARGV[2] ~= '' and (rec[1] ~= 'running' or rec[2] ~= ARGV[2]) then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'lease_until', '0', unpack(ARGV, 3))
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""
)
# KEYS: record, references, leases. ARGV: job id, max attempts, error once they are used up.
_REQUEUE_EXPIRED = (
    _NOW
    + """
local rec = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'lease_until')
if rec[1] ~= 'running' then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return {'not running', 0}
end
local lease_until = tonumber(rec[3] or '0') or 0
if lease_until > now then
  redis.call('ZADD', KEYS[3], lease_until, ARGV[1])
  return {'live', 0}
end
local attempt = tonumber(rec[2] or '1') or 1
redis.call('ZREM', KEYS[3], ARGV[1])
if attempt >= tonumber(ARGV[2]) then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'status', 'failed', 'stage', 'failed', 'error', ARGV[3], 'worker', '',
    'lease_until', '0', 'updated_at', tostring(now))
  return {'failed', attempt}
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempt', tostring(attempt + 1), 'worker', '',
  'lease_until', '0', 'progress', '0.0', 'stage', 'queued again (its worker was lost)', 'updated_at', tostring(now))
return {'requeued', attempt + 1}
"""
)
# Undo a requeue whose message could not be sent (broker down): running again with an expired
# lease, so the next recovery round tries once more. KEYS: record, leases. ARGV: job id, attempt.
_UNDO_REQUEUE = """
local rec = redis.call('HMGET', KEYS[1], 'status', 'attempt')
if rec[1] ~= 'queued' or rec[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'status', 'running', 'attempt', tostring(tonumber(ARGV[2]) - 1), 'lease_until', '0')
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 1
"""

ClaimOutcome = Literal["claimed", "missing", "ended", "stale", "taken"]
RecoveryOutcome = Literal["requeued", "failed", "live", "not running"]


class JobNotFoundError(LookupError):
    """No job with that id (never created, expired, or owned by another API key)."""


@dataclass
class JobRecord:
    """What the gateway tells a client about a cloning job, and who runs it now."""

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
    attempt: int = 1  # 1 + how often the job was queued again after its worker was lost
    worker: str = ""  # the worker that claimed the current attempt
    lease_until: float = 0.0  # Redis time (s) at which a running job counts as lost

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


def _pairs(values: dict[str, str]) -> list[str]:
    return [item for pair in values.items() for item in pair]


class JobStore:
    """Job records, reference uploads and cloned audio in Redis (sync client; thread-safe)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        job_ttl_s: int,
        result_ttl_s: int,
        reference_ttl_s: int | None = None,
        lease_s: float = 30.0,
    ) -> None:
        self.client = client
        self.job_ttl_s = job_ttl_s
        self.result_ttl_s = result_ttl_s
        # References never outlive the record they belong to.
        self.reference_ttl_s = min(reference_ttl_s or job_ttl_s, job_ttl_s)
        self.lease_s = lease_s
        self._claim_script = client.register_script(_CLAIM)
        self._report_script = client.register_script(_REPORT)
        self._succeed_script = client.register_script(_SUCCEED)
        self._fail_script = client.register_script(_FAIL)
        self._requeue_script = client.register_script(_REQUEUE_EXPIRED)
        self._undo_requeue_script = client.register_script(_UNDO_REQUEUE)

    @classmethod
    def from_settings(cls, settings: WorkerSettings | None = None) -> JobStore:
        settings = settings or WorkerSettings()
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
        return cls(
            client,
            job_ttl_s=settings.job_ttl_s,
            result_ttl_s=settings.result_ttl_s,
            reference_ttl_s=settings.reference_ttl_s,
            lease_s=settings.job_lease_s,
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
        """Remove the record, the references and the cloned audio of ``job_id`` (one transaction)."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.record_key(job_id), self.references_key(job_id), self.audio_key(job_id))
            pipe.zrem(LEASES_KEY, job_id)
            pipe.execute()

    # -- consumer side (worker) ----------------------------------------------------------------
    def references(self, job_id: str) -> list[bytes]:
        return list(cast("list[bytes]", self.client.lrange(self.references_key(job_id), 0, -1)))

    def claim(self, job_id: str, attempt: int, worker: str) -> ClaimOutcome:
        """Take attempt ``attempt`` of a queued job for ``worker``, with a fresh lease.

        Anything but ``"claimed"`` means: do not run it. ``missing``: deleted or expired;
        ``ended``: already succeeded or failed; ``stale``: a message of an older attempt (the job
        was queued again); ``taken``: another delivery of this attempt already runs it.
        """
        outcome = self._claim_script(
            keys=[self.record_key(job_id), LEASES_KEY], args=[job_id, attempt, worker, self.lease_s]
        )
        return cast("ClaimOutcome", outcome.decode() if isinstance(outcome, bytes) else outcome)

    def report(self, job_id: str, worker: str, progress: float, stage: str) -> bool:
        """Record progress and renew the lease; False if the job is no longer ``worker``'s to run."""
        values = {"progress": str(round(progress, 3)), "stage": stage, "updated_at": str(time.time())}
        return bool(
            self._report_script(
                keys=[self.record_key(job_id), LEASES_KEY], args=[job_id, worker, self.lease_s, *_pairs(values)]
            )
        )

    def renew(self, job_id: str, worker: str) -> bool:
        """Renew the lease only (the heartbeat); False if the job is no longer ``worker``'s."""
        return bool(
            self._report_script(keys=[self.record_key(job_id), LEASES_KEY], args=[job_id, worker, self.lease_s])
        )

    def succeed(self, job_id: str, worker: str, wav: bytes, duration_s: float) -> bool:
        """Store the cloned audio and mark the job done; False (nothing stored) unless ``worker``
        still runs the job: deleted by its owner, expired, or queued again meanwhile.
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
            keys=[self.record_key(job_id), self.references_key(job_id), LEASES_KEY, self.audio_key(job_id)],
            args=[job_id, worker, wav, self.result_ttl_s * 1000, *_pairs(values)],
        )
        return bool(stored)

    def fail(self, job_id: str, error: str, worker: str | None = None) -> bool:
        """End a job as failed with ``error`` (its references are deleted); with ``worker``, only if
        that worker still runs it. False if nothing changed (gone, already ended, not its job)."""
        values = {"status": JobStatus.failed.value, "stage": "failed", "error": error, "updated_at": str(time.time())}
        failed = self._fail_script(
            keys=[self.record_key(job_id), self.references_key(job_id), LEASES_KEY],
            args=[job_id, worker or "", *_pairs(values)],
        )
        return bool(failed)

    # -- recovery ---------------------------------------------------------------------------------
    def expired_leases(self) -> list[str]:
        """Ids of running jobs whose lease has run out (by Redis' clock)."""
        seconds, microseconds = cast("tuple[int, int]", self.client.time())
        ids = cast("list[bytes]", self.client.zrangebyscore(LEASES_KEY, "-inf", seconds + microseconds / 1e6))
        return [job_id.decode() for job_id in ids]

    def requeue_expired(self, job_id: str, max_attempts: int) -> tuple[RecoveryOutcome, int]:
        """Put a running job whose lease ran out back to ``queued`` as its next attempt, or fail it
        once ``max_attempts`` are used up. Returns what happened and the attempt it concerns."""
        error = (
            f"its worker stopped (killed or lost) during each of {max_attempts} attempts; "
            "the job was given up: submit it again"
        )
        outcome, attempt = self._requeue_script(
            keys=[self.record_key(job_id), self.references_key(job_id), LEASES_KEY], args=[job_id, max_attempts, error]
        )
        return cast("RecoveryOutcome", outcome.decode()), int(attempt)

    def undo_requeue(self, job_id: str, attempt: int) -> bool:
        """Take back :meth:`requeue_expired`'s ``attempt`` when its message could not be sent."""
        return bool(self._undo_requeue_script(keys=[self.record_key(job_id), LEASES_KEY], args=[job_id, attempt]))


def recover_expired_jobs(store: JobStore, celery: Celery, settings: WorkerSettings) -> dict[str, RecoveryOutcome]:
    """Queue again (or fail) every running job whose lease ran out; ``{job_id: outcome}``.

    Safe to run from several gateways and workers at once: each job is moved by one atomic script,
    and only the caller that moved it sends its new message.
    """
    outcomes: dict[str, RecoveryOutcome] = {}
    for job_id in store.expired_leases():
        try:
            record = store.get(job_id)
        except JobNotFoundError:
            store.client.zrem(LEASES_KEY, job_id)
            continue
        # A job Celery itself failed (its process killed by the hard time limit) would only hit the
        # limit again: it ends here with Celery's error.
        result = celery.AsyncResult(task_id(job_id, record.attempt))
        if result.state == "FAILURE":
            if store.fail(job_id, f"the worker failed: {result.result!r}"):
                outcomes[job_id] = "failed"
            continue
        outcome, attempt = store.requeue_expired(job_id, settings.job_max_attempts)
        outcomes[job_id] = outcome
        if outcome == "requeued":
            try:
                send_clone_task(celery, job_id, attempt)
            except Exception:
                # Broker down: the job goes back to "lost" and the next round retries it.
                store.undo_requeue(job_id, attempt)
                raise
            logger.warning("job %s: its worker was lost; queued again as attempt %d", job_id, attempt)
        elif outcome == "failed":
            logger.warning("job %s: its worker was lost in each of %d attempts; failed", job_id, attempt)
    return outcomes
