"""Real-time factor of a cloning backend (default: the configured default) on this machine.

    OMP_NUM_THREADS=2 .venv/bin/python bench/clone_rtf.py [--backend kokoro-ge2e] [--threads 2]

RTF = synthesis wall time / seconds of speech produced, for texts of several lengths, with the
voice already enrolled (enrollment, a once-per-voice cost, is timed and reported separately).
Prints a JSON summary; ``--output`` also writes it to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXTS = (
    "Please call Stella.",
    "The old lighthouse keeper climbed the stairs every evening to light the lamp.",
    "We walked along the shore until the sun went down. The wind grew colder, and the waves "
    "became louder. Nobody spoke until we reached the harbour, where a small boat was waiting. "
    "It was late, but the captain agreed to take us across the bay.",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--reference", type=Path, default=None, help="default: a LibriSpeech test-other file")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()

    from services.cloner.config import ClonerSettings
    from services.cloner.pipeline import Cloner

    settings = ClonerSettings(threads=args.threads)
    if args.backend:
        settings = settings.model_copy(update={"backend": args.backend})
    reference = (
        args.reference
        or sorted(
            (Path(__file__).resolve().parents[2] / "shared" / "data" / "librispeech" / "test-other").rglob("*.flac")
        )[0]
    )
    started = time.perf_counter()
    cloner = Cloner.from_settings(settings)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    voice = cloner.encode([str(reference)])
    encode_s = time.perf_counter() - started
    started = time.perf_counter()
    enrolled = cloner.enroll(voice)
    enroll_s = time.perf_counter() - started
    cloner.speak(enrolled, "Warm up.")
    runs = []
    for text in TEXTS:
        for _ in range(args.repeats):
            started = time.perf_counter()
            audio = cloner.speak(enrolled, text)
            elapsed = time.perf_counter() - started
            # The channel stage alone (already inside synth_s when match_channel is on): same cost again.
            started = time.perf_counter()
            cloner.channel_matcher.apply(audio, enrolled.channel, seed=0)
            channel_s = time.perf_counter() - started
            runs.append(
                {
                    "chars": len(text),
                    "audio_s": round(audio.duration_s, 2),
                    "synth_s": round(elapsed, 3),
                    "channel_stage_s": round(channel_s, 4),
                }
            )
    total_audio = sum(r["audio_s"] for r in runs)
    total_time = sum(r["synth_s"] for r in runs)
    summary = {
        "backend": cloner.backend_name,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "load_s": round(load_s, 1),
        "encode_reference_s": round(encode_s, 2),
        "enroll_s": round(enroll_s, 1),
        "match_channel": cloner.settings.match_channel,
        "rtf": round(total_time / total_audio, 3),
        "channel_stage_rtf": round(sum(r["channel_stage_s"] for r in runs) / total_audio, 4),
        "runs": runs,
    }
    text = json.dumps(summary, indent=1)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
