"""The Compose client and the container engine, for the tests of docker-compose.yml."""

from __future__ import annotations

import shutil
import subprocess

import pytest


def compose_command() -> list[str]:
    """`docker compose` (v2 plugin) when present, else Debian's `docker-compose` (v1.29)."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("neither the docker compose plugin nor docker-compose is installed (scripts/install.sh adds it)")


def engine_problem() -> str | None:
    """Why no Docker engine answers here (None when `docker info` succeeds)."""
    if not shutil.which("docker"):
        return "no docker client on PATH"
    try:
        probe = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer in 20 s"
    if probe.returncode != 0:
        lines = (probe.stderr or probe.stdout).strip().splitlines()
        return f"`docker info` failed: {lines[-1] if lines else 'no output'}"
    return None


def image_exists(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True).returncode == 0
