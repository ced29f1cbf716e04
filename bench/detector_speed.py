"""Milliseconds per 5 s clip (features + model, through ONNX Runtime) for the shipped detectors.

    .venv/bin/python bench/detector_speed.py [--threads 2] [--repeats 30] [--models default seed-baseline] [--int8]

Prints one row per model: median and p90 over repeats, on the same real 5 s LibriSpeech clip,
in one process, so the models are compared on the same machine state, and how much of the
``default`` time is its front end (the Whisper log-mel).

``--int8`` also times an int8 copy of ``default``'s assembled float graph (every MatMul quantized
dynamically, 7-bit per-tensor weights: ``services.detector.models.quantize_matmuls``, what a model
with ``precision = "int8-matmul"`` serves) against the float graph, model call only, interleaved,
and prints how far its scores move on the first 20 clips of LibriSpeech test-other and of
external-dev's SpeechT5 set. A changed graph ships only through the dev rule of docs/detector.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from services.detector.cli import resolve_model
from services.detector.inference import Detector
from services.detector.models import probe_onnx_path, quantize_matmuls
from shared.audio import Audio, load_audio
from shared.whisper_encoder import whisper_log_mel

SHARED_DATA = Path(os.environ.get("VCFAD_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--models", nargs="+", default=["default", "seed-baseline"])
    parser.add_argument("--int8", action="store_true", help="also time an int8 copy of default's graph")
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
    if args.int8:
        _int8_comparison(clip, args.threads, args.repeats)


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


def _int8_comparison(clip: Audio, threads: int, repeats: int) -> None:
    import onnxruntime

    model_dir = resolve_model("default")
    detector = Detector.from_model_dir(model_dir, threads=threads)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    with tempfile.TemporaryDirectory(prefix="detector-int8-") as scratch:
        int8_path = Path(scratch) / "int8.onnx"
        float_path = probe_onnx_path(model_dir)
        quantize_matmuls(float_path, int8_path)
        sessions = {
            name: onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
            for name, path in (("float", float_path), ("int8", int8_path))
        }
        feed = {"log_mel": whisper_log_mel(clip.samples)[None]}
        for _ in range(2):  # interleaved, so a change in the machine's speed hits both alike
            for name, session in sessions.items():
                median, p90 = _timed(lambda session=session: session.run(None, feed), repeats)
                print(f"default graph, {name}: model call {median:.1f} ms median (p90 {p90:.1f})")
        clips = sorted((SHARED_DATA / "librispeech" / "test-other").rglob("*.flac"))[:20]
        clips += sorted((SHARED_DATA / "external-dev" / "speecht5-vctk").rglob("*.wav"))[:20]
        moves = []
        for path in clips:
            log_mel = whisper_log_mel(load_audio(path, detector.load_policy).crop(0.0, 5.0).samples)[None]
            scores = [session.run(None, {"log_mel": log_mel})[0][0] for session in sessions.values()]
            moves.append(abs(float(scores[1] - scores[0])))
        print(f"int8 vs float score on {len(clips)} clips: mean |change| {np.mean(moves):.3f}, max {np.max(moves):.3f}")


if __name__ == "__main__":
    main()
