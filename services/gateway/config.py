"""Settings of the gateway (environment variables ``VCFAD_*``)."""

from __future__ import annotations

import hashlib

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.text import MAX_CLONE_TEXT_CHARS


def key_owner(api_key: str) -> str:
    """The owner id stored with a job: a hash, so Redis never holds the API key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()


class Settings(BaseSettings):
    """Gateway settings; the queue's (Redis URL, time limits, TTLs) are in ``WorkerSettings``."""

    model_config = SettingsConfigDict(env_prefix="VCFAD_", extra="ignore")

    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    #: Comma-separated bearer keys (``VCFAD_API_KEYS``); empty means every API call gets 401.
    api_keys: str = ""
    #: The detector service; several, comma-separated, are used in turn (a detector that does not
    #: answer is skipped for ``detector_down_s``, its request retried on the next one).
    detector_url: str = "http://127.0.0.1:8001"
    #: How long a detector that refused a connection is tried only after the others.
    detector_down_s: float = Field(default=5.0, ge=0)
    #: Seconds to wait for the detector (connect / whole request).
    detector_connect_timeout_s: float = 2.0
    detector_timeout_s: float = 60.0
    #: Whole request body (checked from Content-Length before reading it).
    max_request_bytes: int = 60 * 1024 * 1024
    #: One uploaded file (POST /detect's ``file``, each ``reference`` of POST /clone).
    max_upload_bytes: int = 20 * 1024 * 1024
    max_references: int = 5
    min_reference_duration_s: float = 1.0
    max_reference_duration_s: float = 120.0
    #: Longest clone text (the clone-text rule, :mod:`shared.text`); never above what the worker accepts.
    max_text_chars: int = Field(default=400, ge=1, le=MAX_CLONE_TEXT_CHARS)
    #: Seconds a client should wait before polling a job, or retrying while the detector is down.
    retry_after_s: int = 2
    #: How long a worker-ping answer is reused by /readyz.
    readiness_cache_s: float = 5.0
    #: Requests per minute per API key, counted in Redis (so across every gateway process); over it
    #: a request gets 429 with ``Retry-After``. 0 turns a limit off. Detection, clone submissions,
    #: and reads of jobs (status, audio, delete) are counted separately.
    rate_limit_detect_per_min: int = Field(default=600, ge=0)
    rate_limit_clone_per_min: int = Field(default=30, ge=0)
    rate_limit_read_per_min: int = Field(default=1200, ge=0)
    #: Comma-separated origins allowed to call the API from a browser (CORS); empty (the default):
    #: no CORS headers at all, so only the gateway's own page can use the API from a browser.
    cors_origins: str = ""

    def detector_urls(self) -> list[str]:
        urls = [url.strip().rstrip("/") for url in self.detector_url.split(",") if url.strip()]
        if not urls:
            raise ValueError("VCFAD_DETECTOR_URL names no detector")
        return urls

    def cors_origin_list(self) -> list[str]:
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    def api_key_owners(self) -> dict[str, str]:
        """``{api_key: owner}`` for the configured keys."""
        keys = [key.strip() for key in self.api_keys.split(",") if key.strip()]
        return {key: key_owner(key) for key in keys}
