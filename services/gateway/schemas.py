"""Response bodies of the gateway (and their OpenAPI examples)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class WindowScore(BaseModel):
    start_s: float = Field(description="Window start, seconds from the beginning of the trimmed audio")
    end_s: float
    score: float = Field(ge=0.0, le=1.0, description="Probability that this window is synthetic")


class DetectResponse(BaseModel):
    """The detector's verdict on one recording."""

    model_config = ConfigDict(
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
        }
    )

    score: float = Field(ge=0.0, le=1.0, description="Probability that the recording is synthetic (fake)")
    label: Literal["fake", "real"] = Field(description="`fake` when score ≥ threshold")
    threshold: float
    model: str = Field(description="Name of the classifier that scored it")
    duration_s: float = Field(description="Seconds of audio scored (after trimming silence)")
    timeline: list[WindowScore] | None = Field(
        default=None, description="Per-window scores; only with `?timeline=true`"
    )


class CloneAccepted(BaseModel):
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
    status: Literal["queued", "running", "succeeded", "failed"]
    progress: float = Field(ge=0.0, le=1.0)
    stage: str = Field(description="What the worker is doing now")
    error: str | None = Field(description="Why the job failed (only when status is `failed`)")
    audio_url: str | None = Field(description="WAV download (only when status is `succeeded`)")
    duration_s: float | None = Field(default=None, description="Length of the cloned audio")


class Problem(BaseModel):
    """Every error answer: one message saying what is wrong."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"detail": "missing or malformed Authorization header"}]})

    detail: str


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
