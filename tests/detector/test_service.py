"""The detector FastAPI app in process with the shipped ONNX model (httpx ASGI client)."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf
from service_stack import DETECTOR_MODEL_DIR

from services.detector.app import create_app
from services.detector.config import Settings

pytestmark = pytest.mark.needs_data


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def detector_client() -> AsyncIterator[httpx.AsyncClient]:
    if not (DETECTOR_MODEL_DIR / "model.json").exists():
        pytest.skip(f"no shipped detector model in {DETECTOR_MODEL_DIR}")
    app = create_app(Settings(threads=1, concurrency=2, max_upload_bytes=3_000_000))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://detector") as client,
    ):
        yield client


def post(client: httpx.AsyncClient, data: bytes, name: str = "clip.wav", timeline: bool = False):
    return client.post("/detect", params={"timeline": timeline}, files={"file": (name, data)})


@pytest.mark.asyncio(loop_scope="module")
async def test_ready_and_scores_a_recording(detector_client: httpx.AsyncClient, real_clip: Path) -> None:
    ready = await detector_client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok" and ready.json()["model"]
    response = await post(detector_client, real_clip.read_bytes(), real_clip.name, timeline=True)
    assert response.status_code == 200, response.text
    body = response.json()
    assert 0.0 <= body["score"] <= 1.0 and body["label"] in ("fake", "real")
    assert body["model"] == ready.json()["model"]
    assert body["timeline"] and body["timeline"][-1]["end_s"] == pytest.approx(body["duration_s"], abs=0.05)


@pytest.mark.asyncio(loop_scope="module")
async def test_audio_errors_map_to_415_422_413(detector_client: httpx.AsyncClient) -> None:
    unreadable = await post(detector_client, b"GIF89a not audio at all", "x.gif")
    assert unreadable.status_code == 415 and "not a readable audio file" in unreadable.json()["detail"]
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(16_000, dtype=np.float32), 16_000, format="WAV")
    silent = await post(detector_client, buffer.getvalue())
    assert silent.status_code == 422 and "silent" in silent.json()["detail"]
    buffer = io.BytesIO()
    t = np.arange(1600) / 16_000
    sf.write(buffer, 0.3 * np.sin(2 * np.pi * 220 * t).astype(np.float32), 16_000, format="WAV")
    short = await post(detector_client, buffer.getvalue())
    assert short.status_code == 422 and "at least" in short.json()["detail"]
    too_large = await post(detector_client, bytes(3_000_001))
    assert too_large.status_code == 413


@pytest.mark.asyncio(loop_scope="module")
async def test_inference_does_not_block_the_event_loop(detector_client: httpx.AsyncClient, real_clip: Path) -> None:
    detect_task = asyncio.create_task(post(detector_client, real_clip.read_bytes(), real_clip.name))
    await asyncio.sleep(0.01)  # the upload is parsed and scoring has started in a worker thread
    started = time.perf_counter()
    health = await detector_client.get("/healthz")
    health_s = time.perf_counter() - started
    detect_done_when_health_answered = detect_task.done()
    response = await detect_task
    assert health.status_code == 200 and response.status_code == 200
    assert not detect_done_when_health_answered
    assert health_s < 0.1, health_s
