"""The gateway against its own OpenAPI schema: generated requests, every answer checked.

The gateway app in process, with real Redis (this checkout's unit database) and the real detector
app (shipped model) behind it over an in-process transport; ``FUZZ_EXAMPLES`` cases (1,000 here,
more with ``make fuzz``). Counts: docs/reliability.md, "Fuzzing and malformed input".
"""

from __future__ import annotations

import httpx
import pytest
import redis
import schemathesis
from schema_fuzz import FUZZ_EXAMPLES, fuzz_schema
from service_stack import API_KEY_A, API_KEY_B, DETECTOR_MODEL_DIR, UNIT_DB, redis_url

from services.detector.app import create_app as create_detector_app
from services.detector.config import Settings as DetectorSettings
from services.detector.inference import Detector
from services.gateway.app import create_app
from services.gateway.config import Settings
from shared.jobs import WorkerSettings

pytestmark = pytest.mark.needs_data


def test_gateway_answers_every_generated_request_by_its_schema(redis_available: None) -> None:
    if not (DETECTOR_MODEL_DIR / "model.json").exists():
        pytest.skip(f"no shipped detector model in {DETECTOR_MODEL_DIR}")
    detector_settings = DetectorSettings(threads=1, concurrency=2, max_upload_bytes=2_000_000)
    detector_app = create_detector_app(detector_settings)
    # What the detector's lifespan does; an in-process transport sends no lifespan events.
    detector_app.state.detector = Detector.from_model_dir(detector_settings.model_dir, threads=1)
    settings = Settings(
        api_keys=f"{API_KEY_A},{API_KEY_B}",
        max_upload_bytes=1_000_000,
        max_request_bytes=3_000_000,
        # Limits far above the run's rate: the fuzzer explores the routes; the limiter: test_security.py.
        rate_limit_detect_per_min=1_000_000,
        rate_limit_clone_per_min=1_000_000,
        rate_limit_read_per_min=1_000_000,
    )
    queue = WorkerSettings(redis_url=redis_url(UNIT_DB))
    client = redis.Redis.from_url(queue.redis_url)
    client.flushdb()
    app = create_app(settings, queue, detector_transport=httpx.ASGITransport(app=detector_app))
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        # /readyz answers its documented 503 here (no worker runs), which the no-5xx check would
        # count as a failure; it is tested in test_api.py.
        report = fuzz_schema(schema, headers={"Authorization": f"Bearer {API_KEY_A}"}, exclude_paths=("/readyz",))
    finally:
        client.flushdb()
    print(f"gateway schema fuzz: {report.summary()}")
    print(f"gateway schema fuzz by operation: {dict(report.by_operation)}")
    assert report.cases >= FUZZ_EXAMPLES
    assert not any(code >= 500 for code in report.by_status), report.by_status
    for operation in ("POST /detect", "POST /clone", "GET /clone/{job_id}", "DELETE /clone/{job_id}"):
        assert report.by_operation[operation] >= FUZZ_EXAMPLES // 20, report.by_operation
