"""Milliseconds per 5 s clip (features + model, through ONNX Runtime) for the shipped detectors.

    .venv/bin/python bench/detector_speed.py [--threads 2] [--repeats 30] [--models default default-int8 seed-baseline]

Prints one row per model: median and p90 over repeats, on the same real 5 s LibriSpeech clip,
in one process, so the models are compared on the same machine state, and how much of the
``default`` time is its front end (the Whisper log-mel).

``default-int8`` is ``default`` with its weight MatMuls quantized to int8 (``vcfad
quantize-detector``; how its scores compare: docs/detector.md).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from services.detector.cli import resolve_model
from services.detector.inference import Detector
from shared.audio import load_audio
from shared.log_mel import whisper_log_mel

SHARED_DATA = Path(os.environ.get("VCFAD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--models", nargs="+", default=["default", "default-int8", "seed-baseline"])
    args = parser.parse_args()
    clip_path = sorted((SHARED_DATA / "librispeech" / "test-other").rglob("*.flac"))[0]
    detectors = [Detector.from_model_dir(resolve_model(name), threads=args.threads) for name in args.models]
    clip = load_audio(clip_path, detectors[0].load_policy).crop(0.0, 5.0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads {args.threads}")
    print(f"clip: {clip_path.name}, {clip.duration_s:.2f} s")
    print("| model | median ms / 5 s clip | p90 ms | real-time factor |")
    print("|---|---|---|---|")
    for detector in detectors:
        median, p90 = _timed(lambda detector=detector: detector.score_clips([clip]), args.repeats)
        print(f"| {detector.name} | {median:.1f} | {p90:.1f} | {median / 1000 / clip.duration_s:.4f} |")
    log_mel_ms, _ = _timed(lambda: whisper_log_mel(clip.samples), args.repeats)
    print(f"Whisper log-mel alone (default's front end): {log_mel_ms:.1f} ms median")


def _timed(call: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and p90 milliseconds of ``call()`` over ``repeats`` runs, after one warm-up run."""
    call()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        timings.append(1000 * (time.perf_counter() - start))
    timings.sort()
    return statistics.median(timings), timings[int(0.9 * (len(timings) - 1))]


if __name__ == "__main__":
    main()
