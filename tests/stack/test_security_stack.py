"""Security and malformed input against the real processes (detector, Celery worker, gateway).

The malformed-audio corpus through the gateway with the detector process's memory watched;
a clone job deleted while the worker runs it; and every service's log file, after a whole
detect + clone, searched for API keys, clone texts and audio bytes.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from malformed_audio import check_answer, corpus, encode, tone
from service_stack import API_KEY_A, API_KEY_B, Service

A = {"Authorization": f"Bearer {API_KEY_A}"}
SECRET_TEXT = "Tell Philomena the orchard gate code changed."
#: The gateway's default upload limit (the stack runs with default settings).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def memory_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


def reset_peak_memory(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def wait_for_job(url: str, job_id: str, until: tuple[str, ...], timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/clone/{job_id}", headers=A, timeout=10).json()
        if job["status"] in until:
            return job
        time.sleep(0.2)
    pytest.fail(f"job {job_id} not {until} in {timeout_s:.0f} s: {job}")


@pytest.mark.needs_data
def test_malformed_corpus_through_the_real_stack(gateway_service: Service, detector_service: Service) -> None:
    cases = corpus(MAX_UPLOAD_BYTES)
    pid = detector_service.process.pid
    # Warm up first: the first inference allocates ONNX Runtime's arenas, which is not the corpus's doing.
    warm_up = {"file": ("ok.wav", encode(tone(3.0)), "audio/wav")}
    assert httpx.post(f"{gateway_service.url}/detect", headers=A, files=warm_up, timeout=60).status_code == 200
    can_measure = reset_peak_memory(pid)
    rss_before_mb = memory_mb(pid, "VmRSS")
    problems, answers = [], 0
    for case in cases:
        files = {"file": (case.filename, case.data, "application/octet-stream")}
        detect = httpx.post(f"{gateway_service.url}/detect", headers=A, files=files, timeout=60)
        clone = httpx.post(
            f"{gateway_service.url}/clone",
            headers=A,
            files={"reference": (case.filename, case.data, "application/octet-stream")},
            data={"text": "Hello there."},
            timeout=60,
        )
        if clone.status_code == 202:  # damaged but readable: not worth a clone, and it is deletable
            assert httpx.delete(f"{gateway_service.url}/clone/{clone.json()['job_id']}", headers=A).status_code == 204
        for where, response in (("POST /detect", detect), ("POST /clone", clone)):
            answers += 1
            detail = response.json().get("detail", "") if response.status_code >= 400 else ""
            if (problem := check_answer(case, response.status_code, str(detail))) is not None:
                problems.append(f"{where}: {problem}")
    peak_mb = memory_mb(pid, "VmHWM") - rss_before_mb
    print(f"stack malformed corpus: {len(cases)} kinds, {answers} answers, {len(problems)} wrong; "
          f"detector RSS {rss_before_mb:.0f} MB before, peak +{peak_mb:.0f} MB")  # fmt: skip
    assert not problems, "\n".join(problems)
    for service in (gateway_service, detector_service):
        assert service.process.poll() is None, f"{service.name} died:\n{service.log_tail()}"
        assert httpx.get(f"{service.url}/healthz", timeout=5).status_code == 200
    if can_measure:
        assert peak_mb < 200, peak_mb


@pytest.mark.slow
@pytest.mark.needs_data
def test_deleted_running_job_stays_deleted_and_logs_hold_no_secrets(
    gateway_service: Service, detector_service: Service, worker_service: Service, real_clip: Path, service_logs: Path
) -> None:
    url = gateway_service.url
    reference = real_clip.read_bytes()
    files = [("reference", (real_clip.name, reference, "audio/flac"))]
    assert httpx.post(f"{url}/detect", headers=A, files={"file": (real_clip.name, reference)}, timeout=60).is_success

    # Deleted while the worker runs it: its result must not come back.
    job_id = httpx.post(f"{url}/clone", headers=A, files=files, data={"text": SECRET_TEXT}, timeout=30).json()["job_id"]
    wait_for_job(url, job_id, ("running", "succeeded", "failed"), 120)
    assert httpx.delete(f"{url}/clone/{job_id}", headers=A, timeout=10).status_code == 204
    deadline = time.monotonic() + 300
    while f"job {job_id} was deleted while it ran" not in worker_service.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, worker_service.log_tail()
        time.sleep(0.5)
    assert httpx.get(f"{url}/clone/{job_id}", headers=A, timeout=10).status_code == 404
    assert httpx.get(f"{url}/clone/{job_id}/audio", headers=A, timeout=10).status_code == 404

    # A whole clone, downloaded, detected, then deleted by its owner.
    job_id = httpx.post(f"{url}/clone", headers=A, files=files, data={"text": SECRET_TEXT}, timeout=30).json()["job_id"]
    assert wait_for_job(url, job_id, ("succeeded", "failed"), 300)["status"] == "succeeded"
    audio = httpx.get(f"{url}/clone/{job_id}/audio", headers=A, timeout=30).content
    verdict = httpx.post(f"{url}/detect", headers=A, files={"file": ("clone.wav", audio)}, timeout=60)
    assert verdict.status_code == 200
    assert httpx.delete(f"{url}/clone/{job_id}", headers=A, timeout=10).status_code == 204
    assert httpx.get(f"{url}/clone/{job_id}/audio", headers=A, timeout=10).status_code == 404

    logs = {path.name: path.read_bytes() for path in service_logs.glob("*.log")}
    assert {"gateway.log", "detector.log", "worker.log"} <= set(logs)
    assert b"succeeded" in logs["worker.log"]  # the log is really written: the check is not empty
    for name, text in logs.items():
        for secret in (API_KEY_A, API_KEY_B, SECRET_TEXT, "orchard gate"):
            assert secret.encode() not in text, f"{secret!r} in {name}"
        for chunk in (reference[4096:4128], audio[4096:4128]):
            assert chunk not in text and chunk.hex().encode() not in text, f"audio bytes in {name}"
