"""Security of the gateway in process, with a real Redis: rate limits, deleting jobs, retention,
CORS, security headers, and what reaches the logs.

The same with real processes (a whole clone, and the log files of every service):
tests/stack/test_security_stack.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
import redis
from malformed_audio import encode, tone
from service_stack import API_KEY_A, API_KEY_B, DETECTOR_MODEL_DIR, UNIT_DB, free_port, redis_url

from services.detector.app import create_app as create_detector_app
from services.detector.config import Settings as DetectorSettings
from services.gateway.app import PAGE_CSP, create_app
from services.gateway.config import Settings
from shared.jobs import CLONE_QUEUE, JobRecord, JobStore, WorkerSettings
from shared.schemas import JobStatus

A = {"Authorization": f"Bearer {API_KEY_A}"}
B = {"Authorization": f"Bearer {API_KEY_B}"}
REFERENCE = encode(tone(2.0))


def settings(**changes: object) -> Settings:
    values: dict[str, object] = {
        "api_keys": f"{API_KEY_A},{API_KEY_B}",
        "detector_url": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "retry_after_s": 3,
    }
    return Settings(**(values | changes))


@pytest_asyncio.fixture
async def db(redis_available: None) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url(UNIT_DB))
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


async def gateway(app_settings: Settings, queue: WorkerSettings | None = None, **kwargs) -> AsyncIterator:
    app = create_app(app_settings, queue or WorkerSettings(redis_url=redis_url(UNIT_DB)), **kwargs)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http,
    ):
        yield http


async def submit(http: httpx.AsyncClient, headers: dict[str, str], text: str = "Hello there.") -> httpx.Response:
    return await http.post(
        "/clone", headers=headers, files={"reference": ("voice.wav", REFERENCE, "audio/wav")}, data={"text": text}
    )


# -- rate limits ---------------------------------------------------------------------------------


async def test_rate_limit_per_key_is_429_with_retry_after_across_processes(db: redis.Redis) -> None:
    limited = settings(rate_limit_clone_per_min=3, rate_limit_read_per_min=4)
    # Two gateway apps on one Redis stand for two gateway processes: the limit is per key, not per process.
    async for first in gateway(limited):
        async for second in gateway(limited):
            answers = [(await submit(http, A)).status_code for http in (first, second, first, second)]
            assert answers == [202, 202, 202, 429], answers
            refused = await submit(first, A)
            assert refused.status_code == 429
            retry_after_s = int(refused.headers["retry-after"])
            assert 1 <= retry_after_s <= 60
            assert refused.json()["detail"].startswith("rate limit: at most 3 clone submissions a minute per API key")
            # Another key has its own budget; reads are counted apart from submissions.
            assert (await submit(second, B)).status_code == 202
            reads = [(await first.get("/clone/ffff", headers=A)).status_code for _ in range(5)]
            assert reads == [404, 404, 404, 404, 429], reads
            # No key, no counting: a bad key is 401, never 429.
            assert (await first.get("/clone/ffff", headers={"Authorization": "Bearer nope"})).status_code == 401
    # Counted by the key's hash: the key itself is nowhere in Redis.
    assert not [key for key in db.keys("*") if API_KEY_A.encode() in key]


async def test_prefix_or_extension_of_a_key_is_refused(db: redis.Redis) -> None:
    async for http in gateway(settings()):
        for wrong in (API_KEY_A[:-1], API_KEY_A + "x", API_KEY_A.upper(), f"{API_KEY_A},{API_KEY_B}", ""):
            answer = await http.get("/clone/ffff", headers={"Authorization": f"Bearer {wrong}"})
            assert answer.status_code == 401, wrong
        assert (await http.get("/clone/ffff", headers=B)).status_code == 404


# -- deleting jobs, retention ----------------------------------------------------------------------


async def test_owner_deletes_a_job_with_everything_it_stored(db: redis.Redis) -> None:
    async for http in gateway(settings()):
        job_id = (await submit(http, A)).json()["job_id"]
        store = JobStore(db, job_ttl_s=60, result_ttl_s=60)
        assert db.exists(store.record_key(job_id), store.references_key(job_id)) == 2
        # Another key cannot delete it, and learns nothing (404, as for an unknown id).
        assert (await http.delete(f"/clone/{job_id}", headers=B)).status_code == 404
        assert (await http.delete("/clone/ffffffffffffffffffffffffffffffff", headers=A)).status_code == 404
        assert (await http.get(f"/clone/{job_id}", headers=A)).status_code == 200
        deleted = await http.delete(f"/clone/{job_id}", headers=A)
        assert deleted.status_code == 204 and deleted.content == b""
        assert db.keys(f"vcfad:job:{job_id}*") == []
        assert (await http.get(f"/clone/{job_id}", headers=A)).status_code == 404
        assert (await http.delete(f"/clone/{job_id}", headers=A)).status_code == 404
        # Its queued message stays in the broker; the worker finds no record and skips it.
        assert db.llen(CLONE_QUEUE) == 1


async def test_a_running_jobs_result_does_not_come_back_after_delete(db: redis.Redis) -> None:
    async for http in gateway(settings()):
        job_id = (await submit(http, A)).json()["job_id"]
        worker_store = JobStore(db, job_ttl_s=60, result_ttl_s=60)  # what the worker holds
        assert worker_store.claim(job_id, 1, "w1") == "claimed"
        assert worker_store.report(job_id, "w1", 0.5, "synthesizing") is True
        assert (await http.delete(f"/clone/{job_id}", headers=A)).status_code == 204
        # The worker's next report tells it the job is gone (it stops); nothing is written back.
        assert worker_store.report(job_id, "w1", 0.9, "vocoding") is False
        assert worker_store.succeed(job_id, "w1", encode(tone(1.0)), 1.0) is False
        assert worker_store.fail(job_id, "late failure", worker="w1") is False
        assert db.keys(f"vcfad:job:{job_id}*") == []
        assert db.zscore("vcfad:jobs:leases", job_id) is None
        assert (await http.get(f"/clone/{job_id}", headers=A)).status_code == 404
        assert (await http.get(f"/clone/{job_id}/audio", headers=A)).status_code == 404


def test_references_expire_even_if_no_worker_picks_the_job(db: redis.Redis) -> None:
    store = JobStore.from_settings(
        WorkerSettings(redis_url=redis_url(UNIT_DB), job_ttl_s=30, reference_ttl_s=1, result_ttl_s=20)
    )

    store.create(JobRecord(job_id="never-picked", owner="o", text="Hi."), [REFERENCE])
    assert 0 < db.pttl(store.references_key("never-picked")) <= 1000
    assert 29_000 < db.pttl(store.record_key("never-picked")) <= 30_000
    time.sleep(1.3)
    assert not db.exists(store.references_key("never-picked"))
    assert store.references("never-picked") == []  # the worker then fails the job with a clear error
    # References never outlive the record, whatever the settings say.
    capped = JobStore(db, job_ttl_s=5, result_ttl_s=60, reference_ttl_s=3600)
    assert capped.reference_ttl_s == 5


def test_cloned_audio_never_outlives_its_record(db: redis.Redis) -> None:

    store = JobStore(db, job_ttl_s=10, result_ttl_s=3600)
    store.create(JobRecord(job_id="short", owner="o", text="Hi."), [REFERENCE])
    assert store.claim("short", 1, "w1") == "claimed"
    assert store.succeed("short", "w1", encode(tone(1.0)), 1.0) is True
    assert 0 < db.pttl(store.audio_key("short")) <= 10_000
    assert not db.exists(store.references_key("short"))  # deleted as soon as the job ends
    assert store.get("short").status is JobStatus.succeeded


# -- browsers: CORS and headers --------------------------------------------------------------------


async def test_cors_is_closed_unless_origins_are_configured(db: redis.Redis) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    async for http in gateway(settings()):
        answer = await http.options("/detect", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
        answer = await http.get("/clone/ffff", headers=A | {"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in answer.headers
    async for http in gateway(settings(cors_origins="https://app.example")):
        allowed = await http.options("/detect", headers=preflight | {"Origin": "https://app.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        refused = await http.options("/detect", headers=preflight)
        assert "access-control-allow-origin" not in refused.headers


async def test_security_headers_on_the_page_and_the_api(db: redis.Redis) -> None:
    async for http in gateway(settings()):
        for path in ("/", "/static/app.js", "/healthz", "/openapi.json"):
            answer = await http.get(path)
            assert answer.headers["x-content-type-options"] == "nosniff", path
            assert answer.headers["x-frame-options"] == "DENY", path
            assert answer.headers["referrer-policy"] == "no-referrer", path
            assert answer.headers["content-security-policy"] == PAGE_CSP, path
        assert (await http.get("/clone/ffff", headers=A)).headers["x-content-type-options"] == "nosniff"
        # The page loads its own script and style only: nothing inline that the policy would block.
        page = (await http.get("/")).text
        assert "<script>" not in page and "style=" not in page and "onclick" not in page
        assert "frame-ancestors 'none'" in PAGE_CSP and "script-src 'self'" in PAGE_CSP
        docs = await http.get("/docs")  # FastAPI's Swagger UI page needs its inline script
        assert docs.status_code == 200 and "content-security-policy" not in docs.headers
        assert docs.headers["x-content-type-options"] == "nosniff"


# -- logs ------------------------------------------------------------------------------------------


@pytest.mark.needs_data
async def test_no_key_text_or_audio_in_logs(db: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    if not (DETECTOR_MODEL_DIR / "model.json").exists():
        pytest.skip(f"no shipped detector model in {DETECTOR_MODEL_DIR}")
    secret_text = "Meet me at the old lighthouse at dawn, Zebulon."
    audio = encode(tone(3.0))
    detector_app = create_detector_app(DetectorSettings(threads=1))
    caplog.set_level(logging.DEBUG)
    async with detector_app.router.lifespan_context(detector_app):
        async for http in gateway(settings(), detector_transport=httpx.ASGITransport(app=detector_app)):
            assert (await http.post("/detect", headers=A, files={"file": ("a.wav", audio)})).status_code == 200
            refused = await http.post("/detect", headers=A, files={"file": ("a.wav", b"not audio " * 50)})
            assert refused.status_code == 415
            job_id = (await submit(http, A, text=secret_text)).json()["job_id"]
            assert (await http.get(f"/clone/{job_id}", headers=A)).status_code == 200
            assert (await http.delete(f"/clone/{job_id}", headers=A)).status_code == 204
            assert (await http.get("/clone/x", headers={"Authorization": "Bearer wrong-secret"})).status_code == 401
    logged = caplog.text + "".join(repr(record.args) for record in caplog.records)
    assert caplog.records, "nothing was logged at all: the check would be empty"
    for secret in (API_KEY_A, "wrong-secret", secret_text, "lighthouse", "not audio"):
        assert secret not in logged, secret
    for chunk in (audio[44:76], REFERENCE[44:76]):  # raw sample bytes, as text or as bytes repr
        assert repr(chunk)[2:-1] not in logged and chunk.hex() not in logged
