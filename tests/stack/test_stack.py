"""The whole stack as separate processes: Redis, detector service, Celery worker, gateway."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf
from service_stack import API_KEY_A, API_KEY_B, AUTH_A, Service, post_clone, wait_until

A = AUTH_A
B = {"Authorization": f"Bearer {API_KEY_B}"}
CLONE_TEXT = "Please call me back tomorrow."
REPO_ROOT = Path(__file__).resolve().parents[2]


def detect(gateway: Service, data: bytes, name: str, timeline: bool = False) -> httpx.Response:
    return httpx.post(
        f"{gateway.url}/detect",
        params={"timeline": str(timeline).lower()},
        headers=A,
        files={"file": (name, data, "application/octet-stream")},
        timeout=60,
    )


@pytest.mark.needs_data
def test_readyz_is_green_with_every_part(gateway_service: Service, detector_service: Service) -> None:
    response = httpx.get(f"{gateway_service.url}/readyz", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "checks": {"redis": "ok", "detector": "ok", "worker": "ok"}}


@pytest.mark.needs_data
def test_detect_real_and_fake_audio(
    gateway_service: Service, detector_service: Service, real_clip: Path, fake_clip: Path
) -> None:
    verdicts = {}
    for kind, clip in (("real", real_clip), ("fake", fake_clip)):
        response = detect(gateway_service, clip.read_bytes(), clip.name, timeline=True)
        assert response.status_code == 200, response.text
        verdict = response.json()
        assert set(verdict) == {"score", "label", "threshold", "model", "duration_s", "timeline", "watermark", "reason"}
        assert 0.0 <= verdict["score"] <= 1.0
        # Neither clip was made by vcfad's cloner, so no watermark decides the label.
        assert verdict["watermark"]["present"] is False and verdict["reason"] is None, verdict
        assert verdict["label"] == ("fake" if verdict["score"] >= verdict["threshold"] else "real")
        assert verdict["duration_s"] > 1.0
        windows = verdict["timeline"]
        assert len(windows) >= 2 and windows[0]["start_s"] == 0.0
        assert all(0.0 <= w["score"] <= 1.0 and w["end_s"] > w["start_s"] for w in windows)
        verdicts[kind] = verdict
    # The shipped classifier must tell these apart (held-out LibriSpeech speaker vs Piper speech).
    assert verdicts["real"]["label"] == "real", verdicts
    assert verdicts["fake"]["label"] == "fake", verdicts
    without = detect(gateway_service, real_clip.read_bytes(), real_clip.name).json()
    assert without["timeline"] is None and without["score"] == pytest.approx(verdicts["real"]["score"], abs=1e-6)


@pytest.mark.needs_data
def test_bad_audio_through_the_stack(gateway_service: Service, detector_service: Service) -> None:
    unreadable = detect(gateway_service, b"%PDF-1.4 definitely not audio", "doc.pdf")
    assert unreadable.status_code == 415 and "not a readable audio file" in unreadable.json()["detail"]
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(32_000, dtype=np.float32), 16_000, format="WAV")
    silent = detect(gateway_service, buffer.getvalue(), "silence.wav")
    assert silent.status_code == 422 and "silent" in silent.json()["detail"]


@pytest.mark.slow
@pytest.mark.needs_data
def test_clone_job_runs_to_audio(
    gateway_service: Service, worker_service: Service, detector_service: Service, real_clip: Path
) -> None:
    url = gateway_service.url
    response = post_clone(url, CLONE_TEXT, real_clip.name, real_clip.read_bytes())
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    status_url = f"{url}{response.headers['location']}"

    seen: list[str] = []
    progress: list[float] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = httpx.get(status_url, headers=A, timeout=10).json()
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        progress.append(job["progress"])
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.2)
    assert seen[-1] == "succeeded", (seen, job, gateway_service.log_tail())
    # queued → running → succeeded, in that order (queued may be over before the first poll).
    assert seen in (["queued", "running", "succeeded"], ["running", "succeeded"]), seen
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert job["audio_url"] == f"/clone/{job_id}/audio" and job["error"] is None

    audio = httpx.get(f"{url}{job['audio_url']}", headers=A, timeout=30)
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    samples, sample_rate_hz = sf.read(io.BytesIO(audio.content), dtype="float32")
    assert sample_rate_hz >= 16_000
    assert len(samples) / sample_rate_hz == pytest.approx(job["duration_s"], abs=0.01)
    assert len(samples) / sample_rate_hz > 1.0 and np.sqrt(np.mean(samples**2)) > 1e-3
    # The clone carries the deployment's watermark; the worker logs its payload with the job, so a
    # payload the detector reports can be traced back to the job.
    verdict = httpx.post(f"{url}/detect", headers=A, files={"file": ("clone.wav", audio.content)}, timeout=60).json()
    assert verdict["label"] == "fake" and verdict["watermark"]["payload"], verdict
    line = f"job {job_id} attempt 1 succeeded"
    wait_until(worker_service, lambda: line in worker_service.log_path.read_text(errors="replace"), 30, line)
    logged = next(row for row in worker_service.log_path.read_text(errors="replace").splitlines() if line in row)
    assert logged.endswith(f"watermark payload {verdict['watermark']['payload']}"), logged
    # Private to the key that created it.
    assert httpx.get(status_url, headers=B, timeout=10).status_code == 404
    assert httpx.get(f"{url}{job['audio_url']}", headers=B, timeout=10).status_code == 404


def steady_tone_wav(duration_s: float = 3.0, sample_rate_hz: int = 16_000) -> bytes:
    """A 220 Hz tone: readable, loud and long enough for the gateway, but no speech for the cloner."""
    t = np.arange(int(duration_s * sample_rate_hz)) / sample_rate_hz
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sample_rate_hz, format="WAV")
    return buffer.getvalue()


@pytest.mark.needs_data
def test_failed_clone_job_keeps_a_readable_error(gateway_service: Service, real_clip: Path) -> None:
    # Text without words is refused by the gateway at once, by the rule the worker applies too.
    response = post_clone(gateway_service.url, "1234 5678 !!!", real_clip.name, real_clip.read_bytes())
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("`text` has no words to speak")
    # Valid for the gateway (readable audio and a text with words), refused by the cloner in the
    # worker: a steady tone holds no speech.
    response = post_clone(gateway_service.url, CLONE_TEXT, "tone.wav", steady_tone_wav(), "audio/wav")
    assert response.status_code == 202, response.text
    status_url = f"{gateway_service.url}{response.headers['location']}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = httpx.get(status_url, headers=A, timeout=10).json()
        if job["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.2)
    assert job["status"] == "failed", job
    assert job["error"].startswith("no speech found in the reference audio") and job["audio_url"] is None
    assert httpx.get(f"{status_url}/audio", headers=A, timeout=10).status_code == 409


@pytest.mark.needs_data
def test_latency_bench_runs_against_the_stack(
    gateway_service: Service, detector_service: Service, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    command = [
        sys.executable, str(REPO_ROOT / "bench" / "gateway_latency.py"), "--url", gateway_service.url,
        "--api-key", API_KEY_A, "--concurrency", "1", "2", "--requests", "4", "--warmup", "2", "--json", str(out),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [level["concurrency"] for level in report["results"]] == [1, 2]
    for level in report["results"]:
        assert level["requests"] == 4 and 0 < level["p50_ms"] <= level["p99_ms"]
