"""The Celery worker that runs cloning jobs.

Start one (prefork, one process: soft and hard time limits need prefork)::

    celery -A services.cloner.worker worker -Q vcfad-clone --pool=prefork --concurrency=1

Each delivery first claims its job attempt in Redis (:meth:`shared.jobs.JobStore.claim`), so a
redelivered or stale message never runs a job twice. The claimed job reads its reference uploads
from Redis, runs :class:`~services.cloner.pipeline.Cloner` with progress written to the job record
(each report renews the job's lease; a heartbeat thread renews it during long steps), and stores
the WAV in Redis with a TTL, where the gateway serves it. Errors end the job as ``failed`` with a
message for the user. A job whose worker dies is queued again once its lease runs out
(:func:`shared.jobs.recover_expired_jobs`); a job this worker no longer owns (deleted, or given to
a newer attempt) is abandoned at its next report.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready

from shared.audio import Audio, AudioError
from shared.jobs import (
    CLONE_TASK_NAME,
    JobNotFoundError,
    JobStore,
    WorkerSettings,
    create_celery,
    recover_expired_jobs,
)
from shared.watermark import Watermarker

logger = logging.getLogger(__name__)

settings = WorkerSettings()
app = create_celery(settings)


class JobLostError(Exception):
    """The job is no longer this worker's to run: deleted, expired, or queued again elsewhere."""


class LeaseKeeper:
    """Renews a job's lease from a thread while the cloner runs (some steps report rarely)."""

    def __init__(self, store: JobStore, job_id: str, worker: str) -> None:
        self.store, self.job_id, self.worker = store, job_id, worker
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id[:8]}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.store.lease_s / 3):
            try:
                if not self.store.renew(self.job_id, self.worker):
                    self.lost.set()
                    return
            except redis.RedisError as error:  # Redis restarting: keep working, try again next beat
                logger.warning("job %s: lease not renewed (%s)", self.job_id, type(error).__name__)


class CloneTask(Task):
    """Holds the per-process Cloner and job store: built on the first job, reused after."""

    _cloner: Any = None
    _store: JobStore | None = None

    @property
    def cloner(self) -> Any:
        if self._cloner is None:
            # Heavy import inside the worker process, after the fork, never in the gateway.
            from services.cloner.pipeline import Cloner

            started = time.perf_counter()
            self._cloner = Cloner.from_settings()
            logger.info("cloner loaded in %.1f s", time.perf_counter() - started)
        return self._cloner

    @property
    def store(self) -> JobStore:
        if self._store is None:
            self._store = JobStore.from_settings(settings)
        return self._store


def _watermark_payload(cloner: Any, audio: Audio) -> str:
    """How the clone's own watermark reads: its payload in hex (as `POST /detect` reports it),
    "unreadable", or that marking is off. Logged with each job, so that a payload the detector
    reports can be traced to its job in the workers' logs (docs/watermark.md, "Provenance")."""
    if cloner.watermarker is None:
        return "none (watermarking is off)"
    # The clone is read as it was made (no speed or tempo change), so one scale is searched, not
    # the detector's 45: a few ms instead of ~0.2 s per 5 s of speech. The payload code is shared.
    marker = cloner.watermarker
    unscaled = dataclasses.replace(marker.params, max_speed_change=0.0, max_tempo_change=0.0)
    payload = Watermarker(marker.key, unscaled).detect(audio).payload
    return "unreadable" if payload is None else f"{payload:06x}"


def _why_lost(store: JobStore, job_id: str) -> str:
    try:
        store.get(job_id)
    except JobNotFoundError:
        return "was deleted while it ran"
    return "was queued again while it ran (its lease had run out)"


@worker_ready.connect
def recover_on_start(**_: object) -> None:
    """A worker coming back also brings back jobs whose worker was lost (the gateway does it too)."""
    store = JobStore.from_settings(settings)
    try:
        recovered = recover_expired_jobs(store, app, settings)
    except Exception as error:  # never keep the worker from starting
        logger.warning("recovery of lost jobs at start failed: %s", error)
    else:
        if recovered:
            logger.info("recovered jobs of lost workers: %s", recovered)
    finally:
        store.client.close()


@app.task(
    bind=True,
    base=CloneTask,
    name=CLONE_TASK_NAME,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.clone_soft_time_limit_s,
    time_limit=settings.clone_time_limit_s,
)
def clone_job(self: CloneTask, job_id: str, attempt: int = 1) -> dict[str, Any]:
    """Run attempt ``attempt`` of cloning job ``job_id`` (its record and references are in Redis)."""
    store = self.store
    worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    claim = store.claim(job_id, attempt, worker)
    if claim != "claimed":
        # Deleted or expired, already ended, an older attempt's message, or a second delivery of a
        # running one (acks_late redelivery): the message is acknowledged and nothing runs.
        logger.info("job %s attempt %d not run: %s", job_id, attempt, claim)
        return {"job_id": job_id, "status": claim}
    record = store.get(job_id)
    logger.info("job %s attempt %d claimed by %s", job_id, attempt, worker)

    with LeaseKeeper(store, job_id, worker) as lease:

        def report(fraction: float, stage: str) -> None:
            fraction = min(max(float(fraction), 0.0), 1.0)
            try:
                owned = store.report(job_id, worker, fraction, stage)
            except redis.RedisError as error:  # Redis restarting: the job goes on; the lease may lapse
                logger.warning("job %s: progress not recorded (%s)", job_id, type(error).__name__)
                return
            if lease.lost.is_set() or not owned:
                raise JobLostError(job_id)

        try:
            report(0.0, "loading models")
            cloner = self.cloner
            report(0.05, "cloning")  # before reading the references: a job deleted meanwhile stops here
            references = store.references(job_id)
            if not references:
                raise ValueError("the reference audio of this job is gone (expired); submit it again")
            audio = cloner.clone(
                references,
                record.text,
                progress=lambda f, s: report(0.05 + 0.9 * f, s),
                match_channel=record.match_channel,
            )
            wav = audio.to_wav_bytes()
            if not store.succeed(job_id, worker, wav, audio.duration_s):
                # Deleted by its owner, expired, or queued again while it ran: the result is dropped.
                logger.info(
                    "job %s %s (attempt %d); its result is discarded", job_id, _why_lost(store, job_id), attempt
                )
                return {"job_id": job_id, "status": "discarded"}
            logger.info(
                "job %s attempt %d succeeded: %.2f s of audio, watermark payload %s",
                job_id,
                attempt,
                audio.duration_s,
                _watermark_payload(cloner, audio),
            )
            return {"job_id": job_id, "status": "succeeded", "duration_s": audio.duration_s}
        except JobLostError:
            logger.info("job %s %s (attempt %d); stopped", job_id, _why_lost(store, job_id), attempt)
            return {"job_id": job_id, "status": "abandoned"}
        except SoftTimeLimitExceeded:
            error = f"cloning took longer than {settings.clone_soft_time_limit_s} s and was stopped"
        except (AudioError, ValueError) as exc:  # CloneInputError is a ValueError: the user's input
            error = str(exc)
        except Exception as exc:  # the job must end with a readable error, not stay "running"
            logger.exception("job %s failed", job_id)
            error = f"internal error while cloning ({type(exc).__name__}: {exc})"
    if not store.fail(job_id, error, worker=worker):
        logger.info("job %s %s (attempt %d); its failure is discarded", job_id, _why_lost(store, job_id), attempt)
        return {"job_id": job_id, "status": "discarded"}
    return {"job_id": job_id, "status": "failed", "error": error}
