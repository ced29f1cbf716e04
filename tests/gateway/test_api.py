"""The gateway in process (httpx ASGI client) with a real Redis and no detector or worker.

Covers auth, limits, the clone-text rule, job records and ownership, readiness and metrics; the
full stack with real processes is in tests/stack/test_stack.py.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest
import redis
import soundfile as sf
from service_stack import API_KEY_A, API_KEY_B, UNIT_DB, free_port, redis_url

from services.gateway.app import create_app
from services.gateway.config import Settings
from services.gateway.service import DetectorClient
from shared.jobs import CLONE_QUEUE, JobStore, WorkerSettings

MAX_UPLOAD_BYTES = 1_000_000
MAX_REQUEST_BYTES = 3_000_000
A = {"Authorization": f"Bearer {API_KEY_A}"}
B = {"Authorization": f"Bearer {API_KEY_B}"}


def wav_bytes(duration_s: float, amplitude: float = 0.3, sample_rate_hz: int = 16_000) -> bytes:
    """A voiced-like test signal (harmonics with a syllable-rate envelope)."""
    t = np.arange(int(duration_s * sample_rate_hz)) / sample_rate_hz
    signal = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    samples = (amplitude * signal * envelope / 2.3).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate_hz, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.fixture
async def client(redis_available: None) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        api_keys=f"{API_KEY_A}, {API_KEY_B}",
        detector_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        max_upload_bytes=MAX_UPLOAD_BYTES,
        max_request_bytes=MAX_REQUEST_BYTES,
        max_text_chars=100,
        retry_after_s=3,
    )
    queue = WorkerSettings(redis_url=redis_url(UNIT_DB))
    app = create_app(settings, queue)
    redis.Redis.from_url(queue.redis_url).flushdb()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield http
    redis.Redis.from_url(queue.redis_url).flushdb()


async def submit(http: httpx.AsyncClient, headers: dict, text: str = "Hello there.", refs=None) -> httpx.Response:
    refs = refs if refs is not None else [("reference", ("voice.wav", wav_bytes(2.0), "audio/wav"))]
    return await http.post("/clone", headers=headers, files=refs, data={"text": text})


async def test_page_docs_and_openapi(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="detect-file"' in page.text and 'id="clone-button"' in page.text
    assert (await client.get("/static/app.js")).status_code == 200
    assert (await client.get("/docs")).status_code == 200
    spec = (await client.get("/openapi.json")).json()
    for path in ("/detect", "/clone", "/clone/{job_id}", "/clone/{job_id}/audio", "/healthz", "/readyz"):
        assert path in spec["paths"], path
    assert spec["components"]["schemas"]["DetectResponse"]["examples"][0]["label"] == "fake"
    assert "HTTPBearer" in spec["components"]["securitySchemes"]
    assert set(spec["paths"]["/clone"]["post"]["responses"]) >= {"202", "401", "413", "415", "422"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key"}, {"Authorization": "Basic abc"}])
async def test_missing_or_wrong_key_is_401(client: httpx.AsyncClient, headers: dict) -> None:
    files = {"file": ("a.wav", wav_bytes(1.0), "audio/wav")}
    for response in (
        await client.post("/detect", headers=headers, files=files),
        await submit(client, headers),
        await client.get("/clone/0123", headers=headers),
        await client.get("/clone/0123/audio", headers=headers),
    ):
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert "API key" in response.json()["detail"]


async def test_detector_down_is_503_with_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.post("/detect", headers=A, files={"file": ("a.wav", wav_bytes(1.0), "audio/wav")})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "3"
    assert "detector service is unavailable" in response.json()["detail"]


async def test_too_large_is_413(client: httpx.AsyncClient) -> None:
    big = b"RIFF" + bytes(MAX_UPLOAD_BYTES + 10)
    response = await client.post("/detect", headers=A, files={"file": ("big.wav", big, "audio/wav")})
    assert response.status_code == 413 and "maximum" in response.json()["detail"]
    response = await submit(client, A, refs=[("reference", ("big.wav", big, "audio/wav"))])
    assert response.status_code == 413
    # Over the whole-request limit: refused from Content-Length, before the body is parsed.
    huge = bytes(MAX_REQUEST_BYTES + 1)
    response = await client.post("/detect", headers=A | {"content-type": "application/octet-stream"}, content=huge)
    assert response.status_code == 413 and "request" in response.json()["detail"]


async def test_unreadable_reference_is_415(client: httpx.AsyncClient) -> None:
    response = await submit(client, A, refs=[("reference", ("notes.txt", b"just some text, not audio", "text/plain"))])
    assert response.status_code == 415
    assert "notes.txt" in response.json()["detail"] and "not a readable audio file" in response.json()["detail"]


@pytest.mark.parametrize(
    ("text", "refs", "expected"),
    [
        ("   ", None, "`text` is empty"),
        ("x" * 101, None, "maximum is 100"),
        ("Hi.", [("reference", ("quiet.wav", wav_bytes(2.0, amplitude=0.0), "audio/wav"))], "silent"),
        ("Hi.", [("reference", ("short.wav", wav_bytes(0.4), "audio/wav"))], "at least 1 s"),
        ("Hi.", [("reference", ("empty.wav", b"", "audio/wav"))], "empty"),
        ("Hi.", [("reference", (f"v{i}.wav", wav_bytes(1.5), "audio/wav")) for i in range(6)], "maximum is 5"),
    ],
)
async def test_bad_clone_input_is_422(client: httpx.AsyncClient, text: str, refs, expected: str) -> None:
    response = await submit(client, A, text=text, refs=refs)
    assert response.status_code == 422, response.text
    assert expected in str(response.json()["detail"])


@pytest.mark.parametrize("text", ["!!!", "1234 5678 !!!", " ... \n ?? "])
async def test_text_without_words_is_422_at_once(client: httpx.AsyncClient, text: str) -> None:
    # The clone-text rule (shared/text.py) at the gateway: refused now, not minutes later in the worker.
    response = await submit(client, A, text=text)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("`text` has no words to speak")
    # Nothing was recorded or queued (only the key's rate-limit counter is in Redis).
    client = redis.Redis.from_url(redis_url(UNIT_DB))
    assert client.keys("vcfad:job:*") == [] and client.llen(CLONE_QUEUE) == 0


async def test_detect_answers_the_detectors_verdict_as_the_shared_model(redis_available: None) -> None:
    verdict = {
        "score": 0.93,
        "label": "fake",
        "threshold": 0.5,
        "model": "stub",
        "duration_s": 4.8,
        "timeline": [{"start_s": 0.0, "end_s": 2.0, "score": 0.88}],
        # The watermark reading passes through the gateway unchanged.
        "watermark": {
            "present": True,
            "confidence": 1.0,
            "payload": "a3f09c",
            "windows": [{"start_s": 0.0, "end_s": 1.0}],
        },
        "reason": "vcfad watermark found in 1 window(s) (confidence 1.000000, payload a3f09c)",
    }
    bodies = [verdict, {"score": "high"}]
    seen: list[httpx.Request] = []

    def detector(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=bodies[len(seen) - 1])

    settings = Settings(api_keys=API_KEY_A, detector_url="http://detector")
    app = create_app(settings, WorkerSettings(redis_url=redis_url(UNIT_DB)))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        await app.state.detector.aclose()
        app.state.detector = DetectorClient(settings, httpx.AsyncClient(transport=httpx.MockTransport(detector)))
        files = {"file": ("a.wav", wav_bytes(1.0), "audio/wav")}
        response = await http.post("/detect", headers=A, params={"timeline": "true"}, files=files)
        assert response.status_code == 200 and response.json() == verdict
        assert seen[0].url.path == "/detect" and seen[0].url.params["timeline"] == "true"
        # A body that is not a verdict is the detector's failure, not the client's.
        broken = await http.post("/detect", headers=A, files=files)
        assert broken.status_code == 502 and "unexpected body" in broken.json()["detail"]
        metrics = (await http.get("/metrics")).text
        assert 'vcfad_detect_verdicts_total{label="fake"} 1.0' in metrics


async def test_missing_fields_are_422(client: httpx.AsyncClient) -> None:
    no_reference = await client.post("/clone", headers=A, data={"text": "Hello."})
    no_text = await client.post("/clone", headers=A, files={"reference": ("v.wav", wav_bytes(2.0), "audio/wav")})
    no_file = await client.post("/detect", headers=A, data={"x": "1"})
    for response, field in ((no_reference, "reference"), (no_text, "text"), (no_file, "file")):
        assert response.status_code == 422
        assert field in str(response.json()["detail"])


async def test_clone_job_is_recorded_queued_and_private(client: httpx.AsyncClient) -> None:
    response = await submit(client, A)
    assert response.status_code == 202
    body = response.json()
    job_id = body["job_id"]
    assert body["status_url"] == f"/clone/{job_id}" == response.headers["location"]
    assert response.headers["retry-after"] == "3"
    # The Celery message is really in the broker queue (no worker consumes this database).
    assert redis.Redis.from_url(redis_url(UNIT_DB)).llen(CLONE_QUEUE) == 1

    status = await client.get(f"/clone/{job_id}", headers=A)
    assert status.status_code == 200
    assert status.json() == {
        "job_id": job_id,
        "status": "queued",
        "progress": 0.0,
        "stage": "queued",
        "error": None,
        "audio_url": None,
        "duration_s": None,
    }
    assert (await client.get(f"/clone/{job_id}/audio", headers=A)).status_code == 409
    # Another key sees nothing, exactly like an unknown id.
    assert (await client.get(f"/clone/{job_id}", headers=B)).status_code == 404
    assert (await client.get(f"/clone/{job_id}/audio", headers=B)).status_code == 404
    assert (await client.get("/clone/ffffffffffffffffffffffffffffffff", headers=A)).status_code == 404
    # The per-job channel option reaches the record the worker reads (default: match the reference).
    store = JobStore(redis.Redis.from_url(redis_url(UNIT_DB)), job_ttl_s=60, result_ttl_s=60)
    assert store.get(job_id).match_channel is True
    refs = [("reference", ("voice.wav", wav_bytes(2.0), "audio/wav"))]
    clean = await client.post("/clone", headers=A, files=refs, data={"text": "Hi there.", "match_channel": "false"})
    assert clean.status_code == 202 and store.get(clean.json()["job_id"]).match_channel is False
    bad = await client.post("/clone", headers=A, files=refs, data={"text": "Hi there.", "match_channel": "maybe"})
    assert bad.status_code == 422 and "match_channel" in bad.text


async def test_readyz_names_what_is_down_and_metrics_count(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["redis"] == "ok"
    assert checks["detector"].startswith("unavailable")
    assert checks["worker"] == "no worker answers"
    await client.post("/detect", files={"file": ("a.wav", b"x", "audio/wav")})
    metrics = (await client.get("/metrics")).text
    assert 'vcfad_gateway_requests_total{method="POST",route="/detect",status="401"} 1.0' in metrics
    assert "vcfad_gateway_request_duration_seconds_bucket" in metrics


async def test_redis_down_is_503_for_clone() -> None:
    settings = Settings(api_keys=API_KEY_A, detector_url=f"http://127.0.0.1:{free_port()}", retry_after_s=4)
    app = create_app(settings, WorkerSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        response = await submit(http, A)
        assert response.status_code == 503 and response.headers["retry-after"] == "4"
        assert "job queue (Redis) is unavailable" in response.json()["detail"]
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["redis"].startswith("unavailable")


async def test_a_lost_workers_job_is_queued_again_by_the_gateway(redis_available: None) -> None:
    # A worker claims the job, then stops renewing its lease (as if killed): the gateway's
    # recovery loop queues the job again as attempt 2, with a new message in the broker.
    settings = Settings(api_keys=API_KEY_A, detector_url=f"http://127.0.0.1:{free_port()}")
    queue = WorkerSettings(redis_url=redis_url(UNIT_DB), job_lease_s=0.3, job_recovery_interval_s=0.2)
    db = redis.Redis.from_url(queue.redis_url)
    db.flushdb()
    app = create_app(settings, queue)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
        job_id = (await submit(http, A)).json()["job_id"]
        store = JobStore.from_settings(queue)
        assert store.claim(job_id, 1, "lost-worker") == "claimed"
        assert (await http.get(f"/clone/{job_id}", headers=A)).json()["status"] == "running"
        deadline = time.monotonic() + 10
        while store.get(job_id).attempt == 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        job = (await http.get(f"/clone/{job_id}", headers=A)).json()
        assert job["status"] == "queued" and job["stage"] == "queued again (its worker was lost)", job
        assert store.get(job_id).attempt == 2 and db.llen(CLONE_QUEUE) == 2
        metrics = (await http.get("/metrics")).text
        assert 'vcfad_clone_jobs_recovered_total{outcome="requeued"} 1.0' in metrics
    db.flushdb()
