"""The envelope stage on development speakers: GE2E and Whisper WER with and without it.

    OMP_NUM_THREADS=2 .venv/bin/python bench/envelope_dev.py --first 40 --speakers 14 --texts 4 \\
        --output docs/envelope-dev.json

Development data only (``bench/clone_dev.py``: train-clean-100 speakers, VCTK sentences). Each text is
cloned once by the default backend and scored four ways: without / with the envelope stage, each
without / with the channel stage (``--channel-max-gain-db`` sets that stage's EQ cap). Scores:
GE2E cosine to the reference (resemblyzer) and corpus WER by Whisper base (faster-whisper); the
speaker judge is deliberately not used (it must stay independent of what was chosen here).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The repo root is on the path only from here.
from bench.clone_dev import CloneScorer, add_development_arguments, development_data
from bench.report import emit_json, run_context
from services.cloner.config import ClonerSettings
from services.cloner.pipeline import Cloner


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_development_arguments(parser, first=40, speakers=14, texts=4, voice_cache="var/envelope-dev/voices")
    parser.add_argument("--channel-max-gain-db", type=float, default=12.0)
    parser.add_argument("--envelope-max-gain-db", type=float, default=None, help="default: the cloner's setting")
    args = parser.parse_args()
    if min(args.channel_max_gain_db, args.envelope_max_gain_db or 0.0) < 0:
        parser.error("the gain caps are ≥ 0")
    rows, sentences = development_data(parser, args)
    load_avg_start = os.getloadavg()
    stage = {} if args.envelope_max_gain_db is None else {"envelope_max_gain_db": args.envelope_max_gain_db}
    settings = ClonerSettings(
        watermark=False,
        envelope_fit=True,
        voice_cache_dir=args.voice_cache,
        channel_max_gain_db=args.channel_max_gain_db,
        **stage,
    )
    cloner = Cloner.from_settings(settings)
    scorer = CloneScorer(cloner.encoder.speaker_encoder)
    enroll_s, skipped = [], []
    started = time.perf_counter()
    for index, (speaker, path) in enumerate(rows):
        t0 = time.perf_counter()
        voice = cloner.encode([path])
        enrolled = cloner.enroll(voice)
        enroll_s.append(time.perf_counter() - t0)
        if enrolled.envelope is None:
            skipped.append(speaker)
            continue
        for text in sentences[index * args.texts : (index + 1) * args.texts]:
            plain = cloner.backend.synthesize(enrolled.voice, text)
            for stage, audio in (("default", plain), ("envelope stage", enrolled.envelope.apply(plain))):
                for room, finished in (
                    ("no channel stage", cloner.finish(audio)),
                    ("channel stage", cloner.finish(audio, enrolled, text)),
                ):
                    scorer.score(f"{stage}, {room}", finished, voice, text)
    report = {
        "speakers": [speaker for speaker, _ in rows],
        "skipped_no_envelope": skipped,
        "texts_per_speaker": args.texts,
        "channel_max_gain_db": args.channel_max_gain_db,
        "envelope_max_gain_db": settings.envelope_max_gain_db,
        "rows": scorer.rows(),
        "enroll_s_mean": round(float(np.mean(enroll_s)), 1),
        "elapsed_s": round(time.perf_counter() - started, 1),
        **run_context(load_avg_start),
    }
    emit_json(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
