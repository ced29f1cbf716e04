"""Job leases, attempts and ownership (shared/jobs.py) against a real Redis.

What makes a clone job run once and end once when workers die: a worker claims one attempt, only
the claiming worker's reports and result are taken, a job whose lease ran out is queued again as
its next attempt (or failed after the last), and a stale worker or an older attempt's message
changes nothing. The same with real worker processes killed mid-clone: tests/stack/test_faults.py.
"""

from __future__ import annotations

import base64
import json
import time

import pytest
import redis
from service_stack import UNIT_DB, redis_url

from shared.jobs import (
    CLONE_QUEUE,
    LEASES_KEY,
    JobRecord,
    JobStore,
    WorkerSettings,
    create_celery,
    recover_expired_jobs,
    task_id,
)
from shared.schemas import JobStatus

WAV = b"RIFF-pretend-wav"
LEASE_S = 0.3


def new_job(store: JobStore, job_id: str = "job1") -> str:
    store.create(JobRecord(job_id=job_id, owner="o", text="Hello there."), [b"ref-1", b"ref-2"])
    return job_id


def expire(store: JobStore, job_id: str) -> None:
    """Wait until the job's lease has run out (by Redis' clock)."""
    deadline = time.monotonic() + 5
    while job_id not in store.expired_leases():
        assert time.monotonic() < deadline, "the lease never ran out"
        time.sleep(0.05)


def test_one_claim_per_attempt_and_only_its_worker_writes(unit_redis: redis.Redis) -> None:
    store = JobStore(unit_redis, job_ttl_s=60, result_ttl_s=60, lease_s=30)
    job = new_job(store)
    assert store.claim(job, 1, "w1") == "claimed"
    record = store.get(job)
    assert record.status is JobStatus.running and record.worker == "w1" and record.attempt == 1
    assert record.lease_until > time.time() + 25
    # A second delivery of the same attempt (acks_late redelivery) does not run it again.
    assert store.claim(job, 1, "w2") == "taken"
    assert store.claim(job, 2, "w2") == "stale"
    assert store.report(job, "w2", 0.9, "meddling") is False
    assert store.succeed(job, "w2", b"other", 1.0) is False
    assert store.fail(job, "meddling", worker="w2") is False
    assert store.report(job, "w1", 0.5, "synthesizing") is True
    assert store.get(job).progress == 0.5 and store.get(job).stage == "synthesizing"
    assert store.succeed(job, "w1", WAV, 2.5) is True
    assert store.audio(job) == WAV and store.references(job) == []
    done = store.get(job)
    assert done.status is JobStatus.succeeded and done.duration_s == 2.5 and done.progress == 1.0
    assert unit_redis.zscore(LEASES_KEY, job) is None
    # After the end: no second result, no failure over it, no new run.
    assert store.succeed(job, "w1", b"again", 1.0) is False
    assert store.fail(job, "late") is False
    assert store.claim(job, 1, "w3") == "ended"
    assert store.audio(job) == WAV and store.get(job).status is JobStatus.succeeded


def test_an_expired_lease_requeues_the_next_attempt_and_fences_the_old_worker(unit_redis: redis.Redis) -> None:
    store = JobStore(unit_redis, job_ttl_s=60, result_ttl_s=60, lease_s=LEASE_S)
    job = new_job(store)
    assert store.claim(job, 1, "w1") == "claimed"
    assert store.report(job, "w1", 0.59, "fitting voice") is True
    assert store.requeue_expired(job, 3) == ("live", 0)  # a live lease is left alone
    expire(store, job)
    assert store.requeue_expired(job, 3) == ("requeued", 2)
    assert store.requeue_expired(job, 3) == ("not running", 0)  # only one caller moves it
    record = store.get(job)
    assert (record.status, record.attempt, record.worker, record.progress) == (JobStatus.queued, 2, "", 0.0)
    assert record.stage == "queued again (its worker was lost)"
    assert store.references(job) == [b"ref-1", b"ref-2"]  # the next attempt needs them
    # The first worker was only slow, not dead: it can no longer write anything.
    assert store.report(job, "w1", 0.9, "late") is False
    assert store.renew(job, "w1") is False
    assert store.succeed(job, "w1", b"stale result", 1.0) is False
    # The first attempt's message, redelivered later, is stale; the new one runs.
    assert store.claim(job, 1, "w1") == "stale"
    assert store.claim(job, 2, "w2") == "claimed"
    assert store.succeed(job, "w1", b"stale result", 1.0) is False
    assert store.succeed(job, "w2", WAV, 1.0) is True
    assert store.audio(job) == WAV and store.get(job).attempt == 2


def test_renewal_keeps_a_slow_job_and_the_last_attempt_fails_clearly(unit_redis: redis.Redis) -> None:
    store = JobStore(unit_redis, job_ttl_s=60, result_ttl_s=60, lease_s=LEASE_S)
    job = new_job(store)
    assert store.claim(job, 1, "w1") == "claimed"
    for _ in range(4):  # a heartbeat every lease/3 keeps it alive well past one lease
        time.sleep(LEASE_S / 3)
        assert store.renew(job, "w1") is True
        assert job not in store.expired_leases()
    expire(store, job)
    assert store.requeue_expired(job, 2) == ("requeued", 2)
    assert store.claim(job, 2, "w2") == "claimed"
    expire(store, job)
    outcome, attempt = store.requeue_expired(job, 2)
    assert (outcome, attempt) == ("failed", 2)
    record = store.get(job)
    assert record.status is JobStatus.failed and "during each of 2 attempts" in record.error
    assert store.references(job) == [] and unit_redis.zscore(LEASES_KEY, job) is None


def test_a_deleted_job_stops_its_worker_and_leaves_nothing(unit_redis: redis.Redis) -> None:
    store = JobStore(unit_redis, job_ttl_s=60, result_ttl_s=60, lease_s=30)
    job = new_job(store)
    assert store.claim(job, 1, "w1") == "claimed"
    store.delete(job)
    assert store.report(job, "w1", 0.5, "x") is False and store.renew(job, "w1") is False
    assert store.succeed(job, "w1", WAV, 1.0) is False and store.fail(job, "x", worker="w1") is False
    assert store.claim(job, 1, "w2") == "missing"
    assert unit_redis.keys("vcfad:job:*") == [] and unit_redis.zcard(LEASES_KEY) == 0


def queued_messages(unit_redis: redis.Redis) -> list[tuple[str, list]]:
    """(task id, args) of each Celery message waiting in the Redis broker's queue."""
    messages = []
    for raw in unit_redis.lrange(CLONE_QUEUE, 0, -1):
        message = json.loads(raw)
        args = json.loads(base64.b64decode(message["body"]))[0]
        messages.append((message["headers"]["id"], args))
    return messages


def test_recovery_sends_the_next_attempt_once(unit_redis: redis.Redis) -> None:
    settings = WorkerSettings(redis_url=redis_url(UNIT_DB), job_lease_s=LEASE_S, job_max_attempts=3)
    store = JobStore.from_settings(settings)
    celery = create_celery(settings)
    job = new_job(store)
    assert store.claim(job, 1, "w1") == "claimed"
    assert recover_expired_jobs(store, celery, settings) == {}
    expire(store, job)
    assert recover_expired_jobs(store, celery, settings) == {job: "requeued"}
    assert recover_expired_jobs(store, celery, settings) == {}  # a second gateway finds nothing
    assert queued_messages(unit_redis) == [(task_id(job, 2), [job, 2])] and task_id(job, 2) == f"{job}.2"
    # A job whose record is gone (deleted, expired) leaves the lease set quietly.
    unit_redis.zadd(LEASES_KEY, {"gone": 0})
    assert recover_expired_jobs(store, celery, settings) == {} and unit_redis.zcard(LEASES_KEY) == 0


def test_a_requeue_whose_message_cannot_be_sent_is_retried(unit_redis: redis.Redis) -> None:
    settings = WorkerSettings(redis_url=redis_url(UNIT_DB), job_lease_s=LEASE_S)
    store = JobStore.from_settings(settings)
    job = new_job(store)
    assert store.claim(job, 1, "w1") == "claimed"
    expire(store, job)
    # The broker does not answer (nothing listens on that port): the requeue is taken back.
    unreachable = WorkerSettings(redis_url=settings.redis_url, broker_url="redis://127.0.0.1:1/0", job_lease_s=LEASE_S)
    with pytest.raises(Exception):  # noqa: B017  # kombu's connection error, whichever it is
        recover_expired_jobs(store, create_celery(unreachable), unreachable)
    record = store.get(job)
    assert (record.status, record.attempt) == (JobStatus.running, 1) and job in store.expired_leases()
    assert recover_expired_jobs(store, create_celery(settings), settings) == {job: "requeued"}
    assert store.get(job).attempt == 2
