"""Load on loopback: ``POST /detect`` at several concurrencies, then a burst of clone jobs.

Starts its own stack with ``scripts/up.sh`` (its own state folder, free ports and a private
redis-server on a free port, so it touches neither ``make up``'s stack nor a shared Redis), adds
a second Celery worker, and stops all of it at the end::

    .venv/bin/python bench/load.py                                   # 60 s per level, 50 clone jobs
    .venv/bin/python bench/load.py --duration-s 10 --json docs/load.json

Detect: real LibriSpeech test-other FLAC files from ``../shared/data`` (several speakers and
lengths), posted round-robin by ``concurrency`` clients for ``--duration-s`` each; latency is
measured at the client (request sent → whole JSON answer read). Any answer other than 200, or a
transport error, counts as an error. Clone: ``--clone-jobs`` jobs through ``POST /clone`` with the
worker's default backend (``kokoro-ge2e``, no voice fit), each with one real reference and a VCTK
sentence, against two workers (prefork, one process each); all must succeed. Exits 1 when any
request failed or any job did not succeed.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import run_context  # the repo root is on the path only from here

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("VCFAD_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
TERMINAL = {"succeeded", "failed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def speech_files(count: int) -> list[Path]:
    """``count`` LibriSpeech test-other files of 2–20 s, one per speaker first, then more."""
    root = SHARED_DATA / "librispeech" / "test-other"
    files = sorted(root.rglob("*.flac"))
    usable = [path for path in files if 2.0 <= sf.info(path).duration <= 20.0]
    if not usable:
        sys.exit(f"load: no LibriSpeech test-other FLAC files under {root}")
    # Round-robin over speakers, so the set mixes voices and lengths.
    by_speaker: dict[str, list[Path]] = {}
    for path in usable:
        by_speaker.setdefault(path.relative_to(root).parts[0], []).append(path)
    ordered = [
        paths[i] for i in range(max(map(len, by_speaker.values()))) for paths in by_speaker.values() if i < len(paths)
    ]
    return ordered[:count]


def clone_sentences(count: int) -> list[str]:
    """The first ``count`` VCTK sentences of 30–120 characters."""
    path = SHARED_DATA / "text" / "vctk_transcripts.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        texts = [row["transcript"].strip() for row in csv.DictReader(handle)]
    picked = [text for text in dict.fromkeys(texts) if 30 <= len(text) <= 120]
    if len(picked) < count:
        sys.exit(f"load: fewer than {count} usable sentences in {path}")
    return picked[:count]


@dataclass
class Stack:
    """The stack ``scripts/up.sh`` started in ``state_dir``, plus the second worker started here."""

    state_dir: Path
    url: str
    api_key: str
    env: dict[str, str]
    extra_worker: subprocess.Popen | None = None

    def worker_logs(self) -> list[Path]:
        return [self.state_dir / "log" / "worker.log", self.state_dir / "log" / "worker-2.log"]

    def stop(self) -> None:
        if self.extra_worker is not None and self.extra_worker.poll() is None:
            os.killpg(self.extra_worker.pid, signal.SIGTERM)  # its own session: the pool goes too
            try:
                self.extra_worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.extra_worker.pid, signal.SIGKILL)
                self.extra_worker.wait(timeout=10)
        subprocess.run(["bash", "scripts/down.sh"], cwd=REPO_ROOT, env=self.env, check=False)


def start_stack(state_dir: Path, workers: int, cloner_threads: int, extra_env: dict[str, str] | None = None) -> Stack:
    """``scripts/up.sh`` in ``state_dir`` with free ports and a private Redis, ``extra_env`` on top."""
    redis_port, gateway_port, detector_port = free_port(), free_port(), free_port()
    env = (
        dict(os.environ)
        | (extra_env or {})
        | {
            "VCFAD_STATE_DIR": str(state_dir),
            "VCFAD_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "VCFAD_GATEWAY_PORT": str(gateway_port),
            "VCFAD_DETECTOR_PORT": str(detector_port),
            "VCFAD_DETECTOR_URL": f"http://127.0.0.1:{detector_port}",
            "VCFAD_CLONER_THREADS": str(cloner_threads),
            "VCFAD_API_KEYS": "load-bench-key",
            # One key sends all the load: per-key rate limits (docs/security.md) would answer 429 and
            # measure the limiter, not the service.
            "VCFAD_RATE_LIMIT_DETECT_PER_MIN": "0",
            "VCFAD_RATE_LIMIT_CLONE_PER_MIN": "0",
            "VCFAD_RATE_LIMIT_READ_PER_MIN": "0",
            "VCFAD_UP_TIMEOUT_S": "600",
        }
    )
    stack = Stack(REPO_ROOT / state_dir, f"http://127.0.0.1:{gateway_port}", "load-bench-key", env)
    started = subprocess.run(["bash", "scripts/up.sh"], cwd=REPO_ROOT, env=env, check=False)
    if started.returncode != 0:
        stack.stop()
        sys.exit("load: scripts/up.sh failed (its output is above)")
    for index in range(2, workers + 1):
        log = (stack.state_dir / "log" / f"worker-{index}.log").open("wb")
        command = [
            sys.executable, "-m", "celery", "-A", "services.cloner.worker", "worker", "-Q", "vcfad-clone",
            "--pool=prefork", "--concurrency=1", "--loglevel=INFO", "-n", f"load-worker-{index}-{os.getpid()}@%h",
        ]  # fmt: skip
        stack.extra_worker = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
    deadline = time.monotonic() + 120
    while workers > 1 and b"ready." not in (stack.state_dir / "log" / "worker-2.log").read_bytes():
        if time.monotonic() > deadline or stack.extra_worker is None or stack.extra_worker.poll() is not None:
            stack.stop()
            sys.exit("load: the second worker did not start; see its log in " + str(stack.state_dir / "log"))
        time.sleep(0.5)
    return stack


def summary(latencies_s: list[float], errors: int, elapsed_s: float) -> dict:
    values = np.asarray(latencies_s) * 1000.0 if latencies_s else np.asarray([np.nan])
    requests = len(latencies_s) + errors
    return {
        "requests": requests,
        "ok": len(latencies_s),
        "errors": errors,
        "error_rate": errors / requests if requests else 0.0,
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p99_ms": round(float(np.percentile(values, 99)), 1),
        "mean_ms": round(float(np.mean(values)), 1),
        "throughput_rps": round(len(latencies_s) / elapsed_s, 2),
        "elapsed_s": round(elapsed_s, 1),
    }


async def detect_level(stack: Stack, clips: list[tuple[str, bytes]], concurrency: int, duration_s: float) -> dict:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    latencies: list[float] = []
    error_samples: list[str] = []
    errors = 0
    async with httpx.AsyncClient(base_url=stack.url, headers=headers, timeout=120, limits=limits) as client:

        async def post(index: int) -> tuple[float, str | None]:
            name, data = clips[index % len(clips)]
            started = time.perf_counter()
            try:
                response = await client.post("/detect", files={"file": (name, data, "audio/flac")})
                body = response.json()
            except (httpx.HTTPError, ValueError) as error:
                return time.perf_counter() - started, f"{type(error).__name__}: {error}"
            elapsed = time.perf_counter() - started
            if response.status_code != 200 or "score" not in body:
                return elapsed, f"HTTP {response.status_code}: {response.text[:160]}"
            return elapsed, None

        # Warm-up, not counted: every client once, so connections and the detector's threads are up.
        await asyncio.gather(*(post(i) for i in range(concurrency)))
        deadline = time.perf_counter() + duration_s
        started = time.perf_counter()

        async def client_loop(offset: int) -> None:
            nonlocal errors
            index = offset
            while time.perf_counter() < deadline:
                elapsed, error = await post(index)
                index += concurrency
                if error is None:
                    latencies.append(elapsed)
                else:
                    errors += 1
                    if len(error_samples) < 5:
                        error_samples.append(error)

        await asyncio.gather(*(client_loop(i) for i in range(concurrency)))
        elapsed_s = time.perf_counter() - started
    return {"concurrency": concurrency, **summary(latencies, errors, elapsed_s), "error_samples": error_samples}


def clone_burst(stack: Stack, references: list[Path], texts: list[str], timeout_s: float) -> dict:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    jobs: dict[str, dict] = {}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=60) as client:
        started = time.monotonic()
        for index, text in enumerate(texts):
            reference = references[index % len(references)]
            response = client.post(
                "/clone",
                files={"reference": (reference.name, reference.read_bytes(), "audio/flac")},
                data={"text": text},
            )
            if response.status_code != 202:
                sys.exit(f"load: POST /clone answered {response.status_code}: {response.text[:200]}")
            jobs[response.json()["job_id"]] = {"submitted_s": time.monotonic() - started, "status": "queued"}
        submit_s = time.monotonic() - started
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            pending = [job_id for job_id, job in jobs.items() if job["status"] not in TERMINAL]
            if not pending:
                break
            for job_id in pending:
                status = client.get(f"/clone/{job_id}").json()
                jobs[job_id]["status"] = status["status"]
                if status["status"] in TERMINAL:
                    jobs[job_id]["done_s"] = time.monotonic() - started
                    jobs[job_id]["error"] = status.get("error")
                    jobs[job_id]["speech_s"] = status.get("duration_s")
            time.sleep(1.0)
        wall_s = time.monotonic() - started
    counts = {state: sum(job["status"] == state for job in jobs.values()) for state in ("succeeded", "failed")}
    done = [job["done_s"] - job["submitted_s"] for job in jobs.values() if "done_s" in job]
    # Which worker ran how many: Celery logs one "Task ... succeeded" line per job.
    per_worker = [len(re.findall(rb"Task \S+\[\S+\] succeeded", path.read_bytes())) for path in stack.worker_logs()]
    return {
        "jobs": len(jobs),
        "succeeded": counts["succeeded"],
        "failed": counts["failed"],
        "unfinished": len(jobs) - counts["succeeded"] - counts["failed"],
        "submit_s": round(submit_s, 1),
        "wall_s": round(wall_s, 1),
        "jobs_per_min": round(counts["succeeded"] / wall_s * 60.0, 2),
        "job_latency_p50_s": round(float(np.percentile(done, 50)), 1) if done else None,
        "job_latency_max_s": round(max(done), 1) if done else None,
        "speech_s_total": round(sum(job.get("speech_s") or 0.0 for job in jobs.values()), 1),
        "succeeded_per_worker_log": per_worker,
        "errors": sorted({job["error"] for job in jobs.values() if job.get("error")})[:5],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=60.0, help="seconds per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--files", type=int, default=12, help="distinct speech files posted round-robin")
    parser.add_argument("--clone-jobs", type=int, default=50)
    parser.add_argument("--workers", type=int, default=2, choices=(1, 2))
    parser.add_argument("--cloner-threads", type=int, default=1, help="VCFAD_CLONER_THREADS of each worker")
    parser.add_argument("--clone-timeout-s", type=float, default=1800.0)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    load_avg_start = os.getloadavg()
    files = speech_files(args.files)
    clips = [(path.name, path.read_bytes()) for path in files]
    durations_s = [sf.info(path).duration for path in files]
    span = f"{min(durations_s):.1f}–{max(durations_s):.1f} s (mean {np.mean(durations_s):.1f} s)"
    print(f"load: {len(files)} speech files of {span}")
    texts = clone_sentences(args.clone_jobs) if args.clone_jobs else []
    # Relative to the checkout: scripts/ensure_redis.sh builds its Redis paths as $PWD/$VCFAD_STATE_DIR.
    state_dir = Path("var") / "load" / f"run-{os.getpid()}"
    (REPO_ROOT / state_dir).mkdir(parents=True)
    try:
        stack = start_stack(state_dir, args.workers, args.cloner_threads)
        try:
            levels = []
            for concurrency in args.concurrency:
                level = asyncio.run(detect_level(stack, clips, concurrency, args.duration_s))
                levels.append(level)
                print(
                    f"detect c={concurrency:>3}: {level['requests']:>5} requests, p50 {level['p50_ms']:.1f} ms,"
                    f" p99 {level['p99_ms']:.1f} ms, {level['throughput_rps']:.2f} req/s, errors {level['errors']}",
                    flush=True,
                )
            clone = clone_burst(stack, files, texts, args.clone_timeout_s) if texts else None
        finally:
            stack.stop()
    finally:
        shutil.rmtree(REPO_ROOT / state_dir, ignore_errors=True)

    print("\n| concurrency | requests | p50 | p99 | mean | throughput | errors |")
    print("|---|---|---|---|---|---|---|")
    for level in levels:
        print(
            f"| {level['concurrency']} | {level['requests']} | {level['p50_ms']:.1f} ms | {level['p99_ms']:.1f} ms |"
            f" {level['mean_ms']:.1f} ms | {level['throughput_rps']:.2f} req/s | {level['errors']} |"
        )
    if clone:
        print(
            f"\nclone: {clone['succeeded']}/{clone['jobs']} succeeded, {clone['failed']} failed,"
            f" {clone['unfinished']} unfinished in {clone['wall_s']} s ({clone['jobs_per_min']} jobs/min,"
            f" per worker {clone['succeeded_per_worker_log']}, job latency p50 {clone['job_latency_p50_s']} s,"
            f" max {clone['job_latency_max_s']} s)"
        )
    result = {
        **run_context(load_avg_start),
        "files": [str(path.relative_to(SHARED_DATA)) for path in files],
        "file_duration_s": {
            "min": round(min(durations_s), 2),
            "mean": round(float(np.mean(durations_s)), 2),
            "max": round(max(durations_s), 2),
        },
        "duration_s_per_level": args.duration_s,
        "detect": levels,
        "clone": clone,
        "clone_backend": os.environ.get("VCFAD_CLONER_BACKEND", "kokoro-ge2e (default)"),
        "workers": args.workers,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    failed = any(level["errors"] for level in levels) or (clone is not None and clone["succeeded"] != clone["jobs"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
