"""The malformed-audio corpus (tests/support/malformed_audio.py) against both services in process.

Every kind goes to the detector's ``POST /detect``, the gateway's ``POST /detect`` (which forwards
to that same detector app) and the gateway's ``POST /clone`` as a reference: each must get a 4xx
whose ``detail`` names the problem (or a normal answer, for damage a decoder may read past),
both apps must still answer afterwards, and this process's peak memory must stay bounded (the
3 hours of silence are refused from the header, not decoded). The same corpus against real
processes, with their memory: tests/stack/test_malformed_stack.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import redis
from malformed_audio import check_answer, corpus, encode, tone
from service_stack import API_KEY_A, DETECTOR_MODEL_DIR, UNIT_DB, redis_url

from services.detector.app import create_app as create_detector_app
from services.detector.config import Settings as DetectorSettings
from services.gateway.app import create_app
from services.gateway.config import Settings
from shared.jobs import WorkerSettings

pytestmark = pytest.mark.needs_data

MAX_UPLOAD_BYTES = 1_000_000
A = {"Authorization": f"Bearer {API_KEY_A}"}


def memory_mb(field: str) -> float:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def reset_peak_memory() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS; False where Linux does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@pytest_asyncio.fixture
async def apps(redis_available: None) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    if not (DETECTOR_MODEL_DIR / "model.json").exists():
        pytest.skip(f"no shipped detector model in {DETECTOR_MODEL_DIR}")
    detector_settings = DetectorSettings(threads=1, concurrency=2, max_upload_bytes=MAX_UPLOAD_BYTES)
    detector_app = create_detector_app(detector_settings)
    settings = Settings(api_keys=API_KEY_A, max_upload_bytes=MAX_UPLOAD_BYTES, max_request_bytes=3 * MAX_UPLOAD_BYTES)
    queue = WorkerSettings(redis_url=redis_url(UNIT_DB))
    client = redis.Redis.from_url(queue.redis_url)
    client.flushdb()
    gateway_app = create_app(settings, queue, detector_transport=httpx.ASGITransport(app=detector_app))
    async with (
        detector_app.router.lifespan_context(detector_app),
        gateway_app.router.lifespan_context(gateway_app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=detector_app), base_url="http://detector") as detector,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway_app), base_url="http://gateway") as gateway,
    ):
        yield detector, gateway
    client.flushdb()


async def test_every_malformed_upload_gets_a_clear_answer(apps: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    detector, gateway = apps
    cases = corpus(MAX_UPLOAD_BYTES)
    # Warm up (first inference allocates ONNX Runtime's arenas), then measure from here.
    assert (await detector.post("/detect", files={"file": ("ok.wav", encode(tone(3.0)))})).status_code == 200
    can_measure = reset_peak_memory()
    rss_before_mb = memory_mb("VmRSS")
    problems, answers = [], 0
    for case in cases:
        requests = {
            "detector POST /detect": detector.post("/detect", files={"file": (case.filename, case.data)}),
            "gateway POST /detect": gateway.post("/detect", headers=A, files={"file": (case.filename, case.data)}),
            "gateway POST /clone": gateway.post(
                "/clone", headers=A, files={"reference": (case.filename, case.data)}, data={"text": "Hello there."}
            ),
        }
        for where, request in requests.items():
            response = await request
            answers += 1
            detail = response.json().get("detail", "") if response.status_code >= 400 else ""
            if (problem := check_answer(case, response.status_code, str(detail))) is not None:
                problems.append(f"{where}: {problem}")
    peak_mb = memory_mb("VmHWM") - rss_before_mb
    print(f"malformed corpus: {len(cases)} kinds, {answers} answers, {len(problems)} wrong; peak +{peak_mb:.0f} MB")
    assert not problems, "\n".join(problems)
    assert answers == 3 * len(cases) >= 3 * 24
    # Both still answer, and still score sound audio.
    assert (await detector.post("/detect", files={"file": ("ok.wav", encode(tone(3.0)))})).status_code == 200
    assert (await gateway.post("/detect", headers=A, files={"file": ("ok.wav", encode(tone(3.0)))})).status_code == 200
    if can_measure:
        # Decoding the 3 hours of silence would take > 340 MB (float32 at 8 kHz); refused from its header.
        assert peak_mb < 200, peak_mb
