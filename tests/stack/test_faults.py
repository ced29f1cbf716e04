"""Faults injected into real processes (issue 20): each test breaks one part and checks that no
accepted job is lost and that the service recovers by itself.

- a worker killed with SIGKILL in the middle of a clone: the job runs again on the next worker and
  ends once, with one result, also when the killed attempt's message is delivered again later;
- Redis restarted while jobs wait in its queue (Redis started by scripts/ensure_redis.sh, with its
  append-only file): every job is still there and completes;
- `make down` then `make up` at once, after traffic (connections in TIME-WAIT on the ports);
- the detector stopped: the gateway answers 503 with ``Retry-After``, and 200 again by itself once
  a detector is back;
- the clone path with RabbitMQ as the broker (skipped where none answers at 127.0.0.1:5672).

Each test prints its measured figures on lines starting with ``FAULT`` (run with ``-s``); they are
the ones in docs/reliability.md, "Faults". Jobs, records and queues use the unit-test Redis database
(not the session stack's), so the session's worker and gateway never see them.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis
from kombu import Connection
from service_stack import (
    AUTH_A,
    REPO_ROOT,
    UNIT_DB,
    Service,
    base_env,
    free_port,
    post_clone,
    start_detector,
    start_gateway,
    start_worker,
    wait_until,
)

from shared.jobs import CLONE_QUEUE

A = AUTH_A
CLONE_TEXT = "Please call me back tomorrow."
RABBITMQ_URL = os.environ.get("VCFAD_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def figure(text: str) -> None:
    print(f"FAULT {text}", flush=True)


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    return folder


def submit(gateway: Service, reference: Path, text: str = CLONE_TEXT) -> str:
    response = post_clone(gateway.url, text, reference.name, reference.read_bytes())
    assert response.status_code == 202, response.text
    return response.json()["job_id"]


def job(gateway: Service, job_id: str) -> dict:
    response = httpx.get(f"{gateway.url}/clone/{job_id}", headers=A, timeout=10)
    assert response.status_code == 200, (response.status_code, response.text)
    return response.json()


def wait_for(gateway: Service, job_id: str, done, timeout_s: float, *services: Service) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = job(gateway, job_id)
        if done(state):
            return state
        time.sleep(0.2)
    tails = "\n".join(f"--- {s.name}\n{s.log_tail()}" for s in (gateway, *services))
    pytest.fail(f"job {job_id} stayed {state} for {timeout_s:.0f} s\n{tails}")


def wait_record(db: redis.Redis, job_id: str, done, timeout_s: float) -> float:
    """When (monotonic) the job's record in Redis first satisfies ``done``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done(db.hgetall(f"vcfad:job:{job_id}")):
            return time.monotonic()
        time.sleep(0.02)
    pytest.fail(f"job {job_id}: record {db.hgetall(f'vcfad:job:{job_id}')} after {timeout_s:.0f} s")


def log_lines(services: list[Service], needle: str) -> list[str]:
    return [line for s in services for line in s.log_path.read_text(errors="replace").splitlines() if needle in line]


def redeliver_unacked(db: redis.Redis, queue: str, job_id: str) -> int:
    """What the Redis transport does once a message stays unacknowledged past its visibility
    timeout (here 16 min): put it back in its queue. Returns how many messages of ``job_id`` moved."""
    moved = 0
    for tag, raw in db.hgetall("unacked").items():
        message, _exchange, _routing_key = json.loads(raw)
        if message["headers"]["id"] == job_id:
            db.lpush(queue, json.dumps(message))
            db.hdel("unacked", tag)
            db.zrem("unacked_index", tag)
            moved += 1
    return moved


@pytest.mark.slow
@pytest.mark.needs_data
def test_worker_killed_mid_clone_the_job_completes_once(unit_redis: redis.Redis, logs: Path, real_clip: Path) -> None:
    # Default lease (30 s) and recovery interval (15 s): the figure is what a user gets.
    env = base_env(UNIT_DB) | {"VCFAD_CLONER_VOICE_CACHE_DIR": str(logs / "voices")}
    gateway = start_gateway(free_port(), env | {"VCFAD_DETECTOR_URL": f"http://127.0.0.1:{free_port()}"}, logs)
    workers = [start_worker(env, logs, name="worker-killed")]
    try:
        job_id = submit(gateway, real_clip)
        running = wait_for(gateway, job_id, lambda j: j["status"] == "running" and j["progress"] >= 0.2, 180, *workers)
        os.killpg(workers[0].process.pid, signal.SIGKILL)  # the worker and its pool process, no goodbye
        workers[0].process.wait(timeout=10)
        killed_at = time.monotonic()
        figure(f"kill: job killed at progress {running['progress']:.2f} ({running['stage']})")
        assert job(gateway, job_id)["status"] == "running"  # nobody knows yet

        back_at = time.monotonic()
        workers.append(start_worker(env, logs, name="worker-back"))
        ready_at = time.monotonic()
        # Queued again once the lease (30 s) has run out, at the gateway's next round (every 15 s),
        # then claimed by the new worker.
        # (It is "queued" for milliseconds only: watched in the record, not through the API.)
        requeued_at = wait_record(unit_redis, job_id, lambda r: r[b"attempt"] == b"2", 90)
        claimed_at = wait_record(unit_redis, job_id, lambda r: r[b"status"] != b"queued", 60)
        done = wait_for(gateway, job_id, lambda j: j["status"] in ("succeeded", "failed"), 300, *workers)
        finished_at = time.monotonic()
        assert done["status"] == "succeeded", done
        figure(
            f"kill: queued again {requeued_at - killed_at:.1f} s after the kill; the new worker (started "
            f"{back_at - killed_at:.1f} s after the kill, ready in {ready_at - back_at:.1f} s) ran it "
            f"{claimed_at - back_at:.1f} s after it started and finished it {finished_at - back_at:.1f} s after "
            f"it started (the clone itself {finished_at - claimed_at:.1f} s)"
        )
        # The recovery itself: at most lease + one recovery interval (45 s) after the kill.
        assert requeued_at - killed_at < 60 and claimed_at - back_at < 60
        record = unit_redis.hgetall(f"vcfad:job:{job_id}")
        assert record[b"attempt"] == b"2"
        audio = httpx.get(f"{gateway.url}/clone/{job_id}/audio", headers=A, timeout=30)
        assert audio.status_code == 200 and audio.content[:4] == b"RIFF"

        # The killed attempt's message is still unacknowledged in Redis; delivered again (as after
        # the visibility timeout), its claim is refused (the job has ended) and nothing changes.
        assert redeliver_unacked(unit_redis, CLONE_QUEUE, job_id) == 1
        refused = f"job {job_id} attempt 1 not run: ended"
        deadline = time.monotonic() + 60
        while not log_lines(workers, refused) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert log_lines(workers, refused), workers[1].log_tail()
        assert len(log_lines(workers, f"job {job_id} attempt")) >= 3
        assert len(log_lines(workers, "succeeded:")) == 1  # one result, from attempt 2
        assert unit_redis.hgetall(f"vcfad:job:{job_id}") == record
        assert httpx.get(f"{gateway.url}/clone/{job_id}/audio", headers=A, timeout=30).content == audio.content
    finally:
        for service in (*workers, gateway):
            service.stop()


def ensure_redis(env: dict[str, str]) -> str:
    result = subprocess.run(
        ["bash", "scripts/ensure_redis.sh"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def stop_redis(pidfile: str) -> None:
    pid = int(Path(pidfile).read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail(f"redis-server {pid} did not stop")


@pytest.mark.slow
@pytest.mark.needs_data
def test_redis_restart_keeps_every_queued_job(logs: Path, tmp_path: Path, real_clip: Path) -> None:
    # A Redis of its own (the machine's may keep nothing on disk), started as `make up` starts one:
    # an absolute state folder, append-only file on.
    port = free_port()
    env = base_env(0) | {"VCFAD_REDIS_URL": f"redis://127.0.0.1:{port}/0", "VCFAD_STATE_DIR": str(tmp_path / "state")}
    env["VCFAD_CLONER_VOICE_CACHE_DIR"] = str(logs / "voices")
    pidfile = ensure_redis(env)
    assert pidfile == str(tmp_path / "state" / "redis" / "redis.pid")
    gateway = start_gateway(free_port(), env | {"VCFAD_DETECTOR_URL": f"http://127.0.0.1:{free_port()}"}, logs)
    services = [gateway]
    try:
        # No worker yet: the jobs wait in the queue.
        jobs = [submit(gateway, real_clip, text=f"Job number {n} is waiting in the queue.") for n in range(1, 4)]
        assert [job(gateway, j)["status"] for j in jobs] == ["queued"] * 3
        stopped_at = time.monotonic()
        stop_redis(pidfile)
        assert ensure_redis(env) == pidfile  # started again, on the same folder
        figure(f"redis: stopped and started again in {time.monotonic() - stopped_at:.1f} s")
        kept = []
        for job_id in jobs:  # the gateway reconnects by itself
            response = httpx.get(f"{gateway.url}/clone/{job_id}", headers=A, timeout=10)
            if response.status_code == 503:  # its first command on a dead connection may fail once
                response = httpx.get(f"{gateway.url}/clone/{job_id}", headers=A, timeout=10)
            kept.append(response.status_code == 200 and response.json()["status"] == "queued")
        figure(f"redis: queued jobs kept after the restart: {sum(kept)}/{len(jobs)}")
        assert all(kept)

        started_at = time.monotonic()
        services.append(start_worker(env, logs))
        for job_id in jobs:
            done = wait_for(gateway, job_id, lambda j: j["status"] in ("succeeded", "failed"), 240, *services)
            assert done["status"] == "succeeded", done
        figure(f"redis: all {len(jobs)} jobs succeeded {time.monotonic() - started_at:.1f} s after a worker started")
    finally:
        for service in services:
            service.stop()
        if Path(pidfile).exists():
            stop_redis(pidfile)


def time_wait_on(port: int) -> int:
    out = subprocess.run(
        ["ss", "-Htan", "state", "time-wait", f"( sport = :{port} )"], capture_output=True, text=True
    ).stdout
    return len(out.splitlines())


def plain_bind_refused(port: int) -> bool:
    """What up.sh's free-port check did before: bind without SO_REUSEADDR."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


@pytest.mark.slow
def test_down_then_up_at_once_after_traffic(tmp_path: Path) -> None:
    gateway_port, detector_port, redis_port = free_port(), free_port(), free_port()
    env = base_env(0) | {
        "VENV": str(Path(sys.executable).parent.parent),
        "VCFAD_STATE_DIR": str(tmp_path / "state"),  # absolute, with a Redis that up.sh starts
        "VCFAD_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "VCFAD_GATEWAY_PORT": str(gateway_port),
        "VCFAD_DETECTOR_PORT": str(detector_port),
        "VCFAD_DETECTOR_URL": f"http://127.0.0.1:{detector_port}",
    }

    def script(name: str) -> tuple[subprocess.CompletedProcess, float]:
        started = time.monotonic()
        result = subprocess.run(
            ["bash", f"scripts/{name}.sh"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400
        )
        return result, time.monotonic() - started

    try:
        up, up_s = script("up")
        assert up.returncode == 0, up.stdout + up.stderr
        # Traffic whose connections the server closes: they stay in TIME-WAIT on its port.
        for _ in range(20):
            assert httpx.get(f"http://127.0.0.1:{gateway_port}/healthz", headers={"Connection": "close"}).is_success
        down, down_s = script("down")
        assert down.returncode == 0, down.stderr
        assert "stopped redis-server" in down.stdout
        assert time_wait_on(gateway_port) > 0 and plain_bind_refused(gateway_port)
        again, again_s = script("up")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "is in use" not in again.stderr
        assert httpx.get(f"http://127.0.0.1:{gateway_port}/readyz", timeout=10).status_code == 200
        figure(f"down/up: first up {up_s:.1f} s; down {down_s:.1f} s; up at once after it {again_s:.1f} s")
    finally:
        subprocess.run(["bash", "scripts/down.sh"], cwd=REPO_ROOT, env=env, capture_output=True, timeout=120)


def detect(gateway: Service, clip: bytes) -> httpx.Response:
    return httpx.post(f"{gateway.url}/detect", headers=A, files={"file": ("clip.flac", clip, "audio/flac")}, timeout=60)


@pytest.mark.needs_data
def test_detector_stopped_503_with_retry_after_then_recovers(
    unit_redis: redis.Redis, logs: Path, real_clip: Path
) -> None:
    port = free_port()
    env = base_env(UNIT_DB)
    detector = start_detector(port, env, logs, name="detector-1")
    gateway = start_gateway(free_port(), env | {"VCFAD_DETECTOR_URL": f"http://127.0.0.1:{port}"}, logs)
    services = [detector, gateway]
    clip = real_clip.read_bytes()
    try:
        first_at = time.monotonic()
        before = detect(gateway, clip)
        assert before.status_code == 200, before.text
        cold_s = time.monotonic() - first_at  # a fresh detector's first request (session warm-up)
        detector.stop()
        stopped_at = time.monotonic()
        down = detect(gateway, clip)
        answered_s = time.monotonic() - stopped_at
        assert down.status_code == 503 and down.headers["retry-after"] == "2", down.text
        assert "detector service is unavailable" in down.json()["detail"]
        figure(f"detector: 503 with Retry-After {down.headers['retry-after']} answered in {answered_s * 1000:.0f} ms")

        restarted_at = time.monotonic()
        services.append(start_detector(port, env, logs, name="detector-2"))
        ready_at = time.monotonic()
        refused = 0
        while (again := detect(gateway, clip)).status_code != 200:
            assert again.status_code == 503 and time.monotonic() - ready_at < 30, again.text
            refused += 1
            time.sleep(0.2)
        recovered_at = time.monotonic()
        assert refused == 0  # the first request after the detector is back is answered
        assert again.json()["score"] == pytest.approx(before.json()["score"], abs=1e-6)
        figure(
            f"detector: started again in {ready_at - restarted_at:.1f} s; the gateway's next request "
            f"answered 200 in {recovered_at - ready_at:.2f} s (a fresh detector's first request took "
            f"{cold_s:.2f} s before the fault), with no gateway restart"
        )
    finally:
        for service in services:
            service.stop()


def rabbitmq_answers(url: str) -> bool:
    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception:
        return False
    return True


@pytest.mark.slow
@pytest.mark.needs_data
def test_clone_path_with_rabbitmq_as_the_broker(unit_redis: redis.Redis, logs: Path, real_clip: Path) -> None:
    if not rabbitmq_answers(RABBITMQ_URL):
        pytest.skip(f"no RabbitMQ answers at {RABBITMQ_URL} (set VCFAD_TEST_RABBITMQ_URL)")
    queue = f"vcfad-clone-test-{uuid.uuid4().hex[:8]}"  # other checkouts may share this RabbitMQ
    env = base_env(UNIT_DB) | {
        "VCFAD_BROKER_URL": RABBITMQ_URL,
        "VCFAD_CLONE_QUEUE": queue,
        "VCFAD_CLONER_VOICE_CACHE_DIR": str(logs / "voices"),
    }
    worker = start_worker(env, logs, queue=queue)
    gateway = start_gateway(free_port(), env | {"VCFAD_DETECTOR_URL": f"http://127.0.0.1:{free_port()}"}, logs)
    try:
        started = time.monotonic()
        job_id = submit(gateway, real_clip, text="Please call me back tomorrow.")
        assert unit_redis.llen(queue) == 0  # the message went to RabbitMQ, not to Redis
        done = wait_for(gateway, job_id, lambda j: j["status"] in ("succeeded", "failed"), 240, worker)
        assert done["status"] == "succeeded", done
        figure(f"rabbitmq: clone job submitted to succeeded in {time.monotonic() - started:.1f} s")
        audio = httpx.get(f"{gateway.url}/clone/{job_id}/audio", headers=A, timeout=30)
        assert audio.status_code == 200 and audio.content[:4] == b"RIFF"
        # The worker logs the success after storing it (it reads the clone's watermark for that line
        # first), so the gateway may report the job done a moment before the line is written.
        line = f"job {job_id} attempt 1 succeeded"
        wait_until(worker, lambda: log_lines([worker], line), 60, line)
    finally:
        worker.stop()
        gateway.stop()
        with Connection(RABBITMQ_URL, connect_timeout=3) as connection:
            connection.default_channel.queue_delete(queue)
