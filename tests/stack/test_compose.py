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
    # Redis keeps queued jobs across restarts (append-only file on a volume).
    redis_service = services["redis"]
    assert redis_service["command"][redis_service["command"].index("--appendonly") + 1] == "yes"
    # `docker compose` writes volumes as mappings, Debian's docker-compose v1 as "name:/path:rw".
    targets = [v["target"] if isinstance(v, dict) else v.split(":")[1] for v in redis_service["volumes"]]
    assert "/data" in targets
    # Workers scale with --scale worker=N: nothing in them is unique to one container.
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["command"][worker["command"].index("-Q") + 1] == "vcfad-clone"
    assert worker["environment"]["VCFAD_BROKER_URL"] == ""  # the queue in Redis unless set
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    for dockerfile in ("deploy/Dockerfile", "deploy/Dockerfile.gpu"):
        assert (REPO_ROOT / dockerfile).is_file()
    assert "nvidia/cuda" in (REPO_ROOT / "deploy/Dockerfile.gpu").read_text()


def test_compose_config_takes_rabbitmq_as_the_broker() -> None:
    yaml = pytest.importorskip("yaml")
    broker = "amqp://guest:guest@rabbitmq:5672//"
    env = {"VCFAD_API_KEYS": "k", "VCFAD_BROKER_URL": broker, "VCFAD_CLONE_QUEUE": "clones"}
    result = compose_config("--profile", "rabbitmq", env=env)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert "rabbitmq" in services
    for name in ("worker", "gateway"):
        assert services[name]["environment"]["VCFAD_BROKER_URL"] == broker
        assert services[name]["environment"]["VCFAD_CLONE_QUEUE"] == "clones"
    assert services["worker"]["command"][services["worker"]["command"].index("-Q") + 1] == "clones"


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
