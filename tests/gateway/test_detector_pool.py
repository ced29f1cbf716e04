"""Several detectors behind one gateway (``VCFAD_DETECTOR_URL`` a comma-separated list).

Real detector services on TCP ports (uvicorn in threads, the shipped model) and the gateway in
process with a real Redis: requests go to each detector in turn, a stopped one is skipped (its
request retried on the next), none answering is 503 with ``Retry-After``, and a detector that
comes back on its port is used again without touching the gateway. With separate processes:
tests/stack/test_faults.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import redis
import uvicorn
from malformed_audio import encode, tone
from service_stack import API_KEY_A, DETECTOR_MODEL_DIR, UNIT_DB, free_port, redis_url

from services.detector.app import create_app as create_detector_app
from services.detector.config import Settings as DetectorSettings
from services.gateway.app import create_app
from services.gateway.config import Settings
from shared.jobs import WorkerSettings

A = {"Authorization": f"Bearer {API_KEY_A}"}
CLIP = encode(tone(2.0))


class DetectorServer:
    """The detector app served over TCP on ``port`` from a thread, as ``vcfad serve detector`` would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        app = create_detector_app(DetectorSettings(threads=1, model_dir=DETECTOR_MODEL_DIR))
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> DetectorServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "detector did not start"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture
def servers(redis_available: None) -> Iterator[list[DetectorServer]]:
    if not (DETECTOR_MODEL_DIR / "model.json").exists():
        pytest.skip(f"no shipped detector model in {DETECTOR_MODEL_DIR}")
    started = [DetectorServer(free_port()).start(), DetectorServer(free_port()).start()]
    yield started
    for server in started:
        server.stop()


async def gateway(urls: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(api_keys=API_KEY_A, detector_url=", ".join(urls), retry_after_s=3, detector_down_s=30)
    app = create_app(settings, WorkerSettings(redis_url=redis_url(UNIT_DB)))
    redis.Redis.from_url(redis_url(UNIT_DB)).flushdb()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway") as http,
    ):
        yield http


def forwards(metrics: str, url: str, outcome: str) -> float:
    line = f'vcfad_detector_forwards_total{{detector="{url}",outcome="{outcome}"}} '
    found = [float(row[len(line) :]) for row in metrics.splitlines() if row.startswith(line)]
    return found[0] if found else 0.0


async def detect(http: httpx.AsyncClient) -> httpx.Response:
    return await http.post("/detect", headers=A, files={"file": ("clip.wav", CLIP, "audio/wav")})


async def test_round_robin_failover_503_and_recovery(servers: list[DetectorServer]) -> None:
    first, second = servers
    async for http in gateway([first.url, second.url]):
        answers = [await detect(http) for _ in range(4)]
        assert [a.status_code for a in answers] == [200] * 4, answers[-1].text
        assert len({a.json()["score"] for a in answers}) == 1  # the same model behind both
        metrics = (await http.get("/metrics")).text
        assert forwards(metrics, first.url, "answered") == forwards(metrics, second.url, "answered") == 2

        # One detector stops: every request is still answered, by the other.
        first.stop()
        assert [(await detect(http)).status_code for _ in range(4)] == [200] * 4
        metrics = (await http.get("/metrics")).text
        assert forwards(metrics, second.url, "answered") == 6
        # Refused once, then tried only after the live one while it counts as down.
        assert forwards(metrics, first.url, "unavailable") == 1
        ready = await http.get("/readyz")
        assert ready.json()["checks"]["detector"] == "ok"

        # Both down: 503 with Retry-After, naming where it looked.
        second.stop()
        down = await detect(http)
        assert down.status_code == 503 and down.headers["retry-after"] == "3"
        assert first.url in down.json()["detail"] and second.url in down.json()["detail"]
        assert (await http.get("/readyz")).json()["checks"]["detector"].count("unavailable") == 2

        # One comes back on its port: the gateway uses it again by itself.
        servers[0] = DetectorServer(first.port).start()
        back = await detect(http)
        assert back.status_code == 200, back.text
        assert back.json()["score"] == answers[0].json()["score"]
