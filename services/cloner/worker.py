"""The Celery worker that runs cloning jobs.

Start one (prefork, one process: soft and hard time limits need prefork)::

    celery -A services.cloner.worker worker -Q vcfad-clone --pool=prefork --concurrency=1

Each job reads its reference uploads from Redis, runs :class:`~services.cloner.pipeline.Cloner`
with progress reported to the job record (and Celery's task state), and stores the WAV in Redis
with a TTL, where the gateway serves it. Errors end the job as ``failed`` with a message for the
user; nothing is retried automatically except a job whose worker process died (it is requeued).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from shared.audio import AudioError
from shared.jobs import CLONE_TASK_NAME, JobStore, WorkerSettings, create_celery
from shared.schemas import JobStatus

logger = logging.getLogger(__name__)

settings = WorkerSettings()
app = create_celery(settings)


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


@app.task(
    bind=True,
    base=CloneTask,
    name=CLONE_TASK_NAME,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.clone_soft_time_limit_s,
    time_limit=settings.clone_time_limit_s,
)
def clone_job(self: CloneTask, job_id: str) -> dict[str, Any]:
    """Run cloning job ``job_id`` (its record and references are in Redis)."""
    store = self.store
    try:
        record = store.get(job_id)
    except LookupError:
        logger.warning("job %s has no record (expired or deleted); skipping", job_id)
        return {"job_id": job_id, "status": "missing"}
    if record.status in (JobStatus.succeeded, JobStatus.failed):
        # A redelivered message of a job that already ended (acks_late): nothing to do.
        return {"job_id": job_id, "status": record.status.value}

    def report(fraction: float, stage: str) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        store.update(job_id, status=JobStatus.running, progress=round(fraction, 3), stage=stage)
        self.update_state(state="PROGRESS", meta={"progress": fraction, "stage": stage})

    try:
        report(0.0, "loading models")
        cloner = self.cloner
        references = store.references(job_id)
        if not references:
            raise ValueError("the reference audio of this job is gone (expired); submit it again")
        report(0.05, "cloning")
        audio = cloner.clone(
            references,
            record.text,
            progress=lambda f, s: report(0.05 + 0.9 * f, s),
            match_channel=record.match_channel,
        )
        wav = audio.to_wav_bytes()
        if not store.succeed(job_id, wav, audio.duration_s):
            # Deleted by its owner (or expired) while it ran: the result is dropped, not stored.
            logger.info("job %s was deleted while it ran; its result is discarded", job_id)
            return {"job_id": job_id, "status": "deleted"}
        logger.info("job %s succeeded: %.2f s of audio", job_id, audio.duration_s)
        return {"job_id": job_id, "status": "succeeded", "duration_s": audio.duration_s}
    except SoftTimeLimitExceeded:
        error = f"cloning took longer than {settings.clone_soft_time_limit_s} s and was stopped"
    except (AudioError, ValueError) as exc:  # CloneInputError is a ValueError: the user's input
        error = str(exc)
    except Exception as exc:  # the job must end with a readable error, not stay "running"
        logger.exception("job %s failed", job_id)
        error = f"internal error while cloning ({type(exc).__name__}: {exc})"
    store.fail(job_id, error)
    return {"job_id": job_id, "status": "failed", "error": error}
