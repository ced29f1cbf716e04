"""docker-compose.yml is valid Compose (checked by the compose client itself; no engine needed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from compose_stack import compose_command

REPO_ROOT = Path(__file__).resolve().parents[2]


def compose_config(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*compose_command(), "--project-directory", str(REPO_ROOT), *args, "config"],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_config_is_valid_with_cpu_services_and_a_gpu_profile() -> None:
    yaml = pytest.importorskip("yaml")
    result = compose_config("--profile", "gpu", env={"VCFAD_API_KEYS": "key-one,key-two"})
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert {"redis", "detector", "worker", "gateway", "worker-gpu"} <= set(services)
    for name in ("detector", "worker", "gateway"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert services[name]["environment"]["VCFAD_REDIS_URL"] == "redis://redis:6379/0"
    assert services["gateway"]["environment"]["VCFAD_API_KEYS"] == "key-one,key-two"
    assert services["gateway"]["environment"]["VCFAD_DETECTOR_URL"] == "http://detector:8001"
    assert "services.cloner.worker" in services["worker"]["command"]
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    for dockerfile in ("deploy/Dockerfile", "deploy/Dockerfile.gpu"):
        assert (REPO_ROOT / dockerfile).is_file()
    assert "nvidia/cuda" in (REPO_ROOT / "deploy/Dockerfile.gpu").read_text()


def test_compose_config_refuses_a_missing_api_key() -> None:
    env = {key: value for key, value in os.environ.items() if key != "VCFAD_API_KEYS"}
    result = subprocess.run(
        [*compose_command(), "--project-directory", str(REPO_ROOT), "config"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "VCFAD_API_KEYS" in result.stderr
