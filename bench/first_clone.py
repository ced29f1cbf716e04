"""The service's clone latency for a new voice and for a voice it has met: `POST /clone` to `succeeded`.

    .venv/bin/python bench/first_clone.py --json docs/first-clone.json

Starts its own stack with ``scripts/up.sh`` (its own state folder and voice cache, free ports and
a private Redis; `bench/load.py` does the same but for the voice cache) with one worker, and sends one job at a
time, in this order, waiting for each to end:

1. the **first job** after the stack is up (a new voice: whatever the worker loads on its first
   job, plus the reference's encoding and enrollment, plus synthesis);
2. for each of ``--voices`` new voices, a job with a voice never seen (encoding + enrollment +
   synthesis on a warm worker), then ``--repeats`` jobs with the same reference and new texts
   (the voice comes from the worker's voice cache).

Latency is measured at the client, from sending `POST /clone` to reading a `succeeded` status
(polled every 0.2 s); the speech's duration gives a real-time factor per job. References: real
LibriSpeech test-other files from ``../shared/data`` (one per speaker); texts: VCTK sentences.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The repo root is on the path only from here.
from bench.load import REPO_ROOT, Stack, clone_sentences, speech_files, start_stack
from bench.report import emit_json, run_context


def one_job(client: httpx.Client, reference: Path, text: str, timeout_s: float) -> dict:
    """Send one job and wait for it to end: latency at the client, the speech's duration, RTF."""
    started = time.perf_counter()
    response = client.post(
        "/clone", files={"reference": (reference.name, reference.read_bytes(), "audio/flac")}, data={"text": text}
    )
    if response.status_code != 202:
        sys.exit(f"first_clone: POST /clone answered {response.status_code}: {response.text[:200]}")
    job_id = response.json()["job_id"]
    while time.perf_counter() - started < timeout_s:
        status = client.get(f"/clone/{job_id}").json()
        if status["status"] == "succeeded":
            latency_s = time.perf_counter() - started
            speech_s = float(status["duration_s"])
            rtf = round(latency_s / speech_s, 3)
            return {"latency_s": round(latency_s, 2), "speech_s": round(speech_s, 2), "rtf": rtf}
        if status["status"] == "failed":
            sys.exit(f"first_clone: job {job_id} failed: {status.get('error')}")
        time.sleep(0.2)
    sys.exit(f"first_clone: job {job_id} did not end within {timeout_s} s")


def run(stack: Stack, references: list[Path], texts: list[str], repeats: int, timeout_s: float) -> dict:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    lines = iter(texts)
    with httpx.Client(base_url=stack.url, headers=headers, timeout=60) as client:
        first = one_job(client, references[0], next(lines), timeout_s)
        print(f"first job after start: {first}", flush=True)
        new_voice, known_voice = [], []
        for reference in references[1:]:
            new_voice.append(one_job(client, reference, next(lines), timeout_s))
            print(f"new voice {reference.name}: {new_voice[-1]}", flush=True)
            for _ in range(repeats):
                known_voice.append(one_job(client, reference, next(lines), timeout_s))
                print(f"  same voice again: {known_voice[-1]}", flush=True)

    def median(jobs: list[dict], key: str) -> float:
        return round(statistics.median(job[key] for job in jobs), 3)

    return {
        "first_job_after_start": first,
        "new_voice_warm_worker": {
            "jobs": new_voice,
            "latency_s_median": median(new_voice, "latency_s"),
            "rtf_median": median(new_voice, "rtf"),
        },
        "known_voice": {
            "jobs": known_voice,
            "latency_s_median": median(known_voice, "latency_s"),
            "rtf_median": median(known_voice, "rtf"),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", type=int, default=4, help="new voices after the first job")
    parser.add_argument("--repeats", type=int, default=2, help="jobs per voice once it is known")
    parser.add_argument("--cloner-threads", type=int, default=2, help="VCFAD_CLONER_THREADS of the worker")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="per job")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    if args.voices < 1 or args.repeats < 1 or args.cloner_threads < 1:
        parser.error("--voices, --repeats and --cloner-threads must be ≥ 1")
    if args.timeout_s <= 0:
        parser.error("--timeout-s must be > 0")
    references = speech_files(args.voices + 1)  # one per speaker first
    texts = clone_sentences(1 + args.voices * (1 + args.repeats))
    state_dir = Path("var") / "first-clone" / f"run-{os.getpid()}"
    (REPO_ROOT / state_dir).mkdir(parents=True)
    load_avg_start = os.getloadavg()
    try:
        # Its own voice cache, so "new" voices are new to the service, whatever ran before.
        voices = {"VCFAD_CLONER_VOICE_CACHE_DIR": str(REPO_ROOT / state_dir / "voices")}
        stack = start_stack(state_dir, workers=1, cloner_threads=args.cloner_threads, extra_env=voices)
        try:
            result = run(stack, references, texts, args.repeats, args.timeout_s)
        finally:
            stack.stop()
    finally:
        shutil.rmtree(REPO_ROOT / state_dir, ignore_errors=True)
    result |= {
        **run_context(load_avg_start),
        "clone_backend": os.environ.get("VCFAD_CLONER_BACKEND", "kokoro-ge2e (default)"),
        "cloner_threads": args.cloner_threads,
        # The voice search (docs/cloning.md): off by default; set through the environment.
        "fit_iterations": os.environ.get("VCFAD_CLONER_FIT_ITERATIONS", "0 (default)"),
        "fit_time_limit_s": os.environ.get("VCFAD_CLONER_FIT_TIME_LIMIT_S", "default"),
        # The envelope stage (docs/cloning.md): off by default; set through the environment.
        "envelope_fit": os.environ.get("VCFAD_CLONER_ENVELOPE_FIT", "false (default)"),
        # The prosody fit (docs/cloning.md): likewise.
        "pitch_fit": os.environ.get("VCFAD_CLONER_PITCH_FIT", "default"),
        "rate_fit": os.environ.get("VCFAD_CLONER_RATE_FIT", "default"),
    }
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
