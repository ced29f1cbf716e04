"""The wire types of vcfad: every JSON body that crosses a process boundary, defined once.

The detector service answers ``POST /detect`` with :class:`DetectResponse` (also what
``Detector.detect`` returns in process); the gateway reads that body back into the same model and
answers its clients with it. Clone jobs are reported as :class:`CloneAccepted` and
:class:`CloneStatus` (their :class:`JobStatus` is also what the worker writes into the job record,
:mod:`shared.jobs`); every error body is a :class:`Problem`. The OpenAPI descriptions and
examples of the public API live here, next to the fields they describe.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class WindowScore(BaseModel):
    """The score of one short window of a recording (the `timeline` of a detection)."""

    model_config = ConfigDict(frozen=True)

    start_s: float = Field(description="Window start, seconds from the beginning of the trimmed audio")
    end_s: float
    score: float = Field(ge=0.0, le=1.0, description="Probability that this window is synthetic")


class WatermarkWindow(BaseModel):
    """A stretch of the recording where the vcfad watermark was found."""

    model_config = ConfigDict(frozen=True)

    start_s: float = Field(description="Window start, seconds from the beginning of the trimmed audio")
    end_s: float


class WatermarkResult(BaseModel):
    """The vcfad provenance watermark (shared/watermark.py) read with this deployment's key."""

    model_config = ConfigDict(frozen=True)

    present: bool = Field(
        description="The watermark was found: the recording's best 1 s window passes the bound on a false find "
        "in a recording of its length (at most 1 in 10,000 recordings without it)"
    )
    confidence: float = Field(
        ge=0.0, le=1.0, description="1 − the bound on the chance of a false find in this recording"
    )
    payload: str | None = Field(
        default=None, description="The 24-bit payload (hex: key id, then job hash) when it was read clearly enough"
    )
    windows: list[WatermarkWindow] = Field(
        default_factory=list, description="Windows where it was found (none unless present)"
    )


class DetectResponse(BaseModel):
    """The detector's verdict on one recording."""

    model_config = ConfigDict(
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "score": 0.93,
                    "label": "fake",
                    "threshold": 0.5,
                    "model": "vcfad-detector-v1",
                    "duration_s": 4.8,
                    "timeline": [
                        {"start_s": 0.0, "end_s": 2.0, "score": 0.88},
                        {"start_s": 1.0, "end_s": 3.0, "score": 0.95},
                    ],
                }
            ]
        },
    )

    score: float = Field(ge=0.0, le=1.0, description="Probability that the recording is synthetic (fake)")
    label: Literal["fake", "real"] = Field(description="`fake` when score ≥ threshold")
    threshold: float
    model: str = Field(description="Name of the classifier that scored it")
    duration_s: float = Field(description="Seconds of audio scored (after trimming silence)")
    timeline: list[WindowScore] | None = Field(
        default=None, description="Per-window scores; only with `?timeline=true`"
    )
    watermark: WatermarkResult | None = Field(
        default=None, description="The vcfad watermark; None when the detector reads no watermark"
    )
    reason: str | None = Field(default=None, description="What the vcfad watermark, when found, says about the label")


class JobStatus(enum.StrEnum):
    """Where a cloning job is: the same values in the job record and in the API."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class CloneAccepted(BaseModel):
    """The answer to ``POST /clone``: the new job's id and where to poll it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"job_id": "5f0c7a0e9b1d4e64a1e1c2b7d9f3a210", "status_url": "/clone/5f0c7a0e9b1d4e64a1e1c2b7d9f3a210"}
            ]
        }
    )

    job_id: str
    status_url: str = Field(description="Poll it with GET (same API key)")


class CloneStatus(BaseModel):
    """What a client sees of a cloning job (from the job record in Redis)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "job_id": "5f0c7a0e9b1d4e64a1e1c2b7d9f3a210",
                    "status": "running",
                    "progress": 0.4,
                    "stage": "synthesizing",
                    "error": None,
                    "audio_url": None,
                    "duration_s": None,
                },
                {
                    "job_id": "5f0c7a0e9b1d4e64a1e1c2b7d9f3a210",
                    "status": "succeeded",
                    "progress": 1.0,
                    "stage": "done",
                    "error": None,
                    "audio_url": "/clone/5f0c7a0e9b1d4e64a1e1c2b7d9f3a210/audio",
                    "duration_s": 3.2,
                },
            ]
        }
    )

    job_id: str
    status: JobStatus
    progress: float = Field(ge=0.0, le=1.0)
    stage: str = Field(description="What the worker is doing now")
    error: str | None = Field(description="Why the job failed (only when status is `failed`)")
    audio_url: str | None = Field(description="WAV download (only when status is `succeeded`)")
    duration_s: float | None = Field(default=None, description="Length of the cloned audio")


class Problem(BaseModel):
    """Every error answer: one message saying what is wrong."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "missing or malformed Authorization header"}]})

    detail: str

    @classmethod
    def from_validation_errors(cls, errors: Iterable[Mapping[str, Any]]) -> Problem:
        """One message from FastAPI's request-validation errors, naming each field (a 422 body).

        Every error body of both services is a ``Problem``, request validation included, so a
        client (and the OpenAPI schema) sees one shape.
        """
        parts = []
        for error in errors:
            where = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path", "header")]
            field = f"`{'.'.join(where)}`: " if where else ""
            parts.append(f"{field}{error.get('msg', 'invalid value')}")
        return cls(detail="; ".join(parts) or "invalid request")


class Health(BaseModel):
    """Liveness and readiness of a service: ``ok``, or ``unavailable`` (with status 503)."""

    status: Literal["ok", "unavailable"]


class GatewayHealth(Health):
    """The gateway's health: one check per part it needs (Redis, the detector, a worker)."""

    checks: dict[str, str] = Field(default_factory=dict, description="`ok`, or why that part is not ready")


class DetectorHealth(Health):
    """The detector service's health: the model it serves, once loaded."""

    model: str | None = Field(default=None, description="Name of the loaded model")
