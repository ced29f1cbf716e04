"""Settings of the detector service (environment variables ``VCFAD_DETECTOR_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VCFAD_DETECTOR_", extra="ignore", protected_namespaces=())

    host: str = "127.0.0.1"
    port: int = 8001
    #: A trained model folder; empty means the model shipped with vcfad.
    model_dir: Path | None = None
    #: ONNX Runtime intra-op threads of the one session this process holds.
    threads: int = 1
    #: Requests scored at the same time (worker threads sharing the session); more wait their turn.
    concurrency: int = 2
    max_upload_bytes: int = 20 * 1024 * 1024
    #: Read the vcfad watermark of every recording (key: ``VCFAD_WATERMARK_KEY`` or var/watermark.key).
    watermark: bool = True
