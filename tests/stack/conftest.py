"""Real processes for the service tests: Redis, the detector, a Celery worker and the gateway.

Each process runs from this checkout on a random free port, against Redis at 127.0.0.1:6379 on
its own database numbers (so `make up`, which uses database 0, is never touched), and is stopped
(its whole process group) at the end of the session. Logs go to pytest's temporary folder and
their tail is printed when a process does not come up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from service_stack import (
    DETECTOR_MODEL_DIR,
    STACK_DB,
    Service,
    base_env,
    free_port,
    redis_url,
    start_detector,
    start_gateway,
    start_worker,
)


@pytest.fixture(scope="session")
def stack_redis(redis_available: None) -> Iterator[str]:
    """A clean Redis database for the process-level stack."""
    client = redis.Redis.from_url(redis_url(STACK_DB))
    client.flushdb()
    yield redis_url(STACK_DB)
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def service_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture(scope="session")
def detector_port() -> int:
    """Reserved first, so the gateway knows where the detector will listen."""
    return free_port()


@pytest.fixture(scope="session")
def detector_service(detector_port: int, service_logs: Path) -> Iterator[Service]:
    """The detector service process with the shipped model."""
    if not (DETECTOR_MODEL_DIR / "model.json").exists():
        pytest.skip(f"no shipped detector model in {DETECTOR_MODEL_DIR}")
    service = start_detector(detector_port, base_env(STACK_DB), service_logs)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def worker_service(stack_redis: str, service_logs: Path) -> Iterator[Service]:
    """One real Celery worker (prefork, one process) on the stack's Redis database."""
    pytest.importorskip("services.cloner.pipeline", reason="the cloner pipeline is not in this checkout")
    # A voice cache of its own: the job really enrolls the voice, as on a fresh machine.
    env = base_env(STACK_DB) | {"VCFAD_CLONER_VOICE_CACHE_DIR": str(service_logs / "voices")}
    service = start_worker(env, service_logs)
    try:
        yield service
    finally:
        service.stop()


def queue_ready(service: Service) -> bool:
    checks = httpx.get(f"{service.url}/readyz", timeout=5).json()["checks"]
    return checks["redis"] == "ok" and checks["worker"] == "ok"


@pytest.fixture(scope="session")
def gateway_service(
    stack_redis: str, detector_port: int, worker_service: Service, service_logs: Path
) -> Iterator[Service]:
    """The gateway process; yields once its Redis and a worker answer (tests that also need the
    detector ask for ``detector_service``, which starts it on ``detector_port``)."""
    env = base_env(STACK_DB) | {"VCFAD_DETECTOR_URL": f"http://127.0.0.1:{detector_port}"}
    service = start_gateway(free_port(), env, service_logs, ready=queue_ready)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="session")
def fake_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synthetic speech of a generator family the detector is trained on (Piper, joe voice).

    Not an ``external-dev`` clip: those measure generalisation to unseen synthesizers, where a
    good detector may still miss; the service tests need a clip whose right answer is known.
    """
    from shared.tts.piper import PiperTTS

    text = "The museum opens at nine, and the tickets are sold at the door on the left."
    path = tmp_path_factory.mktemp("fake") / "piper-joe.wav"
    PiperTTS(threads=1).synthesize(text).write(path)
    return path
