"""docker-compose.yml for real: the stack in containers, and the demo client against it.

Needs a running Docker engine and the images built beforehand (docs/deployment.md, "Building the
images here"); skips naming what is missing otherwise, so CI's machines, which have no engine,
skip it. Where the public `redis` image is absent it runs with deploy/compose.offline.yml (Redis
from the local Debian base). Its own Compose project, host port and volumes; removed at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from compose_stack import compose_command, engine_problem, image_exists
from service_stack import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "docker-test-key"
BUILD_HINT = "docs/deployment.md, 'Building the images here'"

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.needs_data]


def compose_files() -> list[str]:
    """The Compose files for the images this engine has; skips when an image is missing."""
    if not image_exists("vcfad:cpu"):
        pytest.skip(f"image vcfad:cpu is not built (docker build -f deploy/Dockerfile -t vcfad:cpu .; {BUILD_HINT})")
    if image_exists("redis:7-alpine"):
        return ["-f", "docker-compose.yml"]
    if image_exists("vcfad/redis:bookworm"):
        return ["-f", "docker-compose.yml", "-f", "deploy/compose.offline.yml"]
    pytest.skip(f"neither redis:7-alpine nor vcfad/redis:bookworm is in the engine ({BUILD_HINT})")


@pytest.fixture(scope="module")
def compose_stack() -> Iterator[tuple[str, Callable[[], str]]]:
    """(gateway URL, a function returning the services' last log lines) of a stack brought up
    with `compose up`; `compose down -v` at the end."""
    problem = engine_problem()
    if problem is not None:
        pytest.skip(f"no Docker engine answers here: {problem} ({BUILD_HINT})")
    port = free_port()
    project = f"vcfadtest{uuid.uuid4().hex[:8]}"
    command = [*compose_command(), "--project-directory", str(REPO_ROOT), "-p", project, *compose_files()]
    env = {**os.environ, "VCFAD_API_KEYS": API_KEY, "VCFAD_GATEWAY_PORT": str(port)}

    def compose(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*command, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout_s
        )

    def logs() -> str:
        return compose("logs", "--no-color", "--tail", "30").stdout

    try:
        up = compose("up", "-d", "--no-build", timeout_s=600)
        assert up.returncode == 0, f"compose up failed:\n{up.stdout}\n{up.stderr}\n{logs()}"
        url = f"http://127.0.0.1:{port}"
        # The detector loads its graph and the worker its models first: generous on a busy host.
        deadline = time.monotonic() + 600
        answer = ""
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{url}/readyz", timeout=5)
                answer = response.text
                if response.status_code == 200:
                    break
            except httpx.HTTPError as error:
                answer = repr(error)
            time.sleep(2)
        else:
            pytest.fail(f"the stack's /readyz was not green in 600 s (last: {answer}):\n{logs()}")
        yield url, logs
    finally:
        compose("down", "-v", "--remove-orphans", timeout_s=300)


def test_compose_stack_is_ready_with_every_part(compose_stack: tuple[str, Callable[[], str]]) -> None:
    url, _ = compose_stack
    response = httpx.get(f"{url}/readyz", timeout=10)
    assert response.json() == {"status": "ok", "checks": {"redis": "ok", "detector": "ok", "worker": "ok"}}
    assert httpx.post(f"{url}/detect", files={"file": ("a.wav", b"x")}, timeout=10).status_code == 401


def test_demo_detects_and_clones_against_the_containers(compose_stack: tuple[str, Callable[[], str]]) -> None:
    url, logs = compose_stack
    env = {**os.environ, "VCFAD_API_KEY": API_KEY}
    demo = subprocess.run(
        [sys.executable, "scripts/demo.py", "--url", url, "--timeout", "600"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert demo.returncode == 0, f"{demo.stdout}\n{demo.stderr}\n{logs()}"
    # Both detections, the job's progress to the end, and the clone detected.
    assert demo.stdout.count("(score ") == 3, demo.stdout
    assert "succeeded" in demo.stdout and "demo: ok" in demo.stdout, demo.stdout
