"""The detector service against its own OpenAPI schema: generated requests, every answer checked.

Real app in process with the shipped model (schemathesis drives it through ASGI and runs its
lifespan, so the model is really loaded); ``FUZZ_EXAMPLES`` cases (1,000 here, more with
``make fuzz``). Counts: docs/reliability.md, "Fuzzing and malformed input".
"""

from __future__ import annotations

import pytest
import schemathesis
from schema_fuzz import FUZZ_EXAMPLES, fuzz_schema
from service_stack import DETECTOR_MODEL_DIR

from services.detector.app import create_app
from services.detector.config import Settings

pytestmark = pytest.mark.needs_data


def test_detector_answers_every_generated_request_by_its_schema() -> None:
    if not (DETECTOR_MODEL_DIR / "model.json").exists():
        pytest.skip(f"no shipped detector model in {DETECTOR_MODEL_DIR}")
    app = create_app(Settings(threads=1, concurrency=2, max_upload_bytes=2_000_000))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    report = fuzz_schema(schema, headers={})
    print(f"detector schema fuzz: {report.summary()}")
    assert report.cases >= FUZZ_EXAMPLES
    assert report.by_operation["POST /detect"] >= FUZZ_EXAMPLES // 2, report.by_operation
    assert not any(code >= 500 for code in report.by_status), report.by_status
