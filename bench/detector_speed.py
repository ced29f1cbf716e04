"""Milliseconds per 5 s clip (features + model, through ONNX Runtime) for the shipped detectors.

    .venv/bin/python bench/detector_speed.py [--threads 2] [--repeats 30] [--models default seed-baseline]

Prints one row per model: median and p90 over repeats, on the same real 5 s LibriSpeech clip,
in one process, so the models are compared on the same machine state.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

from services.detector.cli import resolve_model
from services.detector.inference import Detector
from shared.audio import load_audio

SHARED_DATA = Path(os.environ.get("VCFAD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--models", nargs="+", default=["default", "seed-baseline"])
    args = parser.parse_args()
    clip_path = sorted((SHARED_DATA / "librispeech" / "test-other").rglob("*.flac"))[0]
    detectors = [Detector.from_model_dir(resolve_model(name), threads=args.threads) for name in args.models]
    clip = load_audio(clip_path, detectors[0].load_policy).crop(0.0, 5.0)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; threads {args.threads}")
    print(f"clip: {clip_path.name}, {clip.duration_s:.2f} s")
    print("| model | median ms / 5 s clip | p90 ms | real-time factor |")
    print("|---|---|---|---|")
    for detector in detectors:
        detector.score_clips([clip])  # warm-up
        timings = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            detector.score_clips([clip])
            timings.append(1000 * (time.perf_counter() - start))
        timings.sort()
        median = statistics.median(timings)
        p90 = timings[int(0.9 * (len(timings) - 1))]
        print(f"| {detector.name} | {median:.1f} | {p90:.1f} | {median / 1000 / clip.duration_s:.4f} |")


if __name__ == "__main__":
    main()
