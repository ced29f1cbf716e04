"""Response bodies of the detector service."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class WindowScore(BaseModel):
    start_s: float
    end_s: float
    score: float = Field(ge=0.0, le=1.0)


class DetectResponse(BaseModel):
    score: float = Field(ge=0.0, le=1.0, description="Probability that the recording is synthetic")
    label: Literal["fake", "real"]
    threshold: float
    model: str
    duration_s: float
    timeline: list[WindowScore] | None = None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    model: str | None = None
