"""Helpers of the service tests: free ports, starting and stopping real service processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from shared.jobs import CLONE_QUEUE

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
#: Database of the process-level stack (worker, gateway) and of the in-process unit tests.
#: VCFAD_TEST_REDIS_DBS="stack,unit" moves them, so two checkouts can run their suites at once
#: against one Redis (each fixture flushes its database).
STACK_DB, UNIT_DB = (int(db) for db in os.environ.get("VCFAD_TEST_REDIS_DBS", "11,12").split(","))
API_KEY_A, API_KEY_B = "test-key-alpha", "test-key-beta"
AUTH_A = {"Authorization": f"Bearer {API_KEY_A}"}
#: The model the detector serves in tests (the shipped one unless VCFAD_DETECTOR_MODEL_DIR is set).
DETECTOR_MODEL_DIR = Path(os.environ.get("VCFAD_DETECTOR_MODEL_DIR") or REPO_ROOT / "models" / "detector" / "default")


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    log_path: Path
    url: str = ""

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        # Its own session: the group holds exactly this service and its children (Celery's pool).
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def start_service(name: str, command: list[str], env: dict[str, str], log_dir: Path) -> Service:
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    return Service(name, process, log_path)


def wait_until(service: Service, check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            pytest.fail(f"{service.name} exited ({service.process.returncode}):\n{service.log_tail()}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.3)
    pytest.fail(f"{service.name}: {what} not reached in {timeout_s:.0f} s:\n{service.log_tail()}")


def base_env(db: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "VCFAD_REDIS_URL": redis_url(db),
            "VCFAD_API_KEYS": f"{API_KEY_A},{API_KEY_B}",
            "OMP_NUM_THREADS": "1",
            "PYTHONUNBUFFERED": "1",
            "VCFAD_CLONER_THREADS": "1",
            # The real default backend, with a short voice fit: these tests check the service
            # (queue, progress, storage, auth), not voice quality (that is `vcfad eval-clone`).
            "VCFAD_CLONER_FIT_ITERATIONS": os.environ.get("VCFAD_CLONER_FIT_ITERATIONS", "2"),
        }
    )
    return env


def start_worker(env: dict[str, str], log_dir: Path, name: str = "worker", queue: str = CLONE_QUEUE) -> Service:
    """A real Celery worker (prefork, one process) consuming ``queue``; returns once it is ready."""
    command = [
        sys.executable, "-m", "celery", "-A", "services.cloner.worker", "worker",
        "-Q", queue, "--pool=prefork", "--concurrency=1", "--loglevel=INFO",
        "-n", f"test-{uuid.uuid4().hex[:8]}@%h", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    service = start_service(name, command, env | {"VCFAD_CLONE_QUEUE": queue}, log_dir)
    try:
        wait_until(service, lambda: b"ready." in service.log_path.read_bytes(), 120, "'ready.' in the log")
    except BaseException:
        service.stop()
        raise
    return service


def start_detector(port: int, env: dict[str, str], log_dir: Path, name: str = "detector") -> Service:
    """The detector service process on ``port``; returns once its /readyz is 200."""
    env = env | {"VCFAD_DETECTOR_PORT": str(port), "VCFAD_DETECTOR_THREADS": "1"}
    service = start_service(name, [sys.executable, "-m", "vcfad.cli", "serve", "detector"], env, log_dir)
    service.url = f"http://127.0.0.1:{port}"
    try:  # 300 s: the first start on a fresh machine assembles the ONNX graph from Whisper weights
        wait_until(
            service, lambda: httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200, 300, "/readyz 200"
        )
    except BaseException:
        service.stop()
        raise
    return service


def start_gateway(port: int, env: dict[str, str], log_dir: Path, name: str = "gateway", ready=None) -> Service:
    """The gateway process on ``port``; returns once ``ready(service)`` holds (default: /healthz 200)."""
    env = env | {"VCFAD_GATEWAY_PORT": str(port)}
    service = start_service(name, [sys.executable, "-m", "vcfad.cli", "serve", "gateway"], env, log_dir)
    service.url = f"http://127.0.0.1:{port}"
    check = ready or (lambda s: httpx.get(f"{s.url}/healthz", timeout=5).status_code == 200)
    try:
        wait_until(service, lambda: check(service), 90, "ready")
    except BaseException:
        service.stop()
        raise
    return service


def post_clone(
    gateway_url: str, text: str, reference_name: str, reference: bytes, content_type: str = "audio/flac"
) -> httpx.Response:
    """``POST /clone`` with one reference file and ``text``, as client A."""
    return httpx.post(
        f"{gateway_url}/clone",
        headers=AUTH_A,
        files=[("reference", (reference_name, reference, content_type))],
        data={"text": text},
        timeout=30,
    )
