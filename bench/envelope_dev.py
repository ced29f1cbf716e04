"""The envelope stage on development speakers: GE2E and Whisper WER with and without it.

    OMP_NUM_THREADS=2 .venv/bin/python bench/envelope_dev.py --first 40 --speakers 14 --texts 4 \\
        --output docs/envelope-dev.json

Development data only: LibriSpeech **train-clean-100** speakers of ``../shared/data`` (one ~12 s
utterance each, the reference), never the test-other speakers ``vcfad eval-clone`` reports on.
Texts: VCTK sentences (a fixed stride through the file, none of them eval-clone's). Each text is
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
from bench.report import emit_json, run_context
from services.cloner.config import ClonerSettings
from services.cloner.evaluation import default_data_dir, development_references, development_texts
from services.cloner.pipeline import Cloner
from shared.asr import SpeechRecognizer, word_error_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=40, help="first train-clean-100 speaker (manifest order)")
    parser.add_argument("--speakers", type=int, default=14)
    parser.add_argument("--texts", type=int, default=4, help="sentences per speaker")
    parser.add_argument("--channel-max-gain-db", type=float, default=12.0)
    parser.add_argument("--envelope-max-gain-db", type=float, default=None, help="default: the cloner's setting")
    parser.add_argument("--voice-cache", type=Path, default=Path("var/envelope-dev/voices"), help="one per run")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    data_dir = default_data_dir()
    manifest = data_dir / "librispeech" / "manifest.tsv"
    if not manifest.exists():
        parser.error(f"{manifest} not found: the shared speech data is needed (see ../shared/data/README.md)")
    gains = [args.channel_max_gain_db, args.envelope_max_gain_db or 0.0]
    if min(args.first, args.speakers - 1, args.texts - 1, *gains) < 0:
        parser.error("--first ≥ 0, --speakers ≥ 1, --texts ≥ 1 and the gain caps ≥ 0")
    rows = development_references(data_dir, args.first, args.speakers)
    sentences = development_texts(data_dir)
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
    recognizer = SpeechRecognizer("base")
    encoder = cloner.encoder.speaker_encoder
    scores: dict[str, list[tuple[float, float, int]]] = {}
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
                    similarity = float(encoder.embed(finished) @ voice.embedding)
                    error = word_error_rate(text, recognizer.transcribe(finished))
                    scores.setdefault(f"{stage}, {room}", []).append((similarity, error, len(text.split())))
    rows_out = []
    for name, values in scores.items():
        table = np.array(values)
        rows_out.append(
            {
                "row": name,
                "clones": len(table),
                "ge2e": round(float(table[:, 0].mean()), 4),
                "wer": round(float((table[:, 1] * table[:, 2]).sum() / table[:, 2].sum()), 4),
            }
        )
    report = {
        "speakers": [speaker for speaker, _ in rows],
        "skipped_no_envelope": skipped,
        "texts_per_speaker": args.texts,
        "channel_max_gain_db": args.channel_max_gain_db,
        "envelope_max_gain_db": settings.envelope_max_gain_db,
        "rows": rows_out,
        "enroll_s_mean": round(float(np.mean(enroll_s)), 1),
        "elapsed_s": round(time.perf_counter() - started, 1),
        **run_context(load_avg_start),
    }
    emit_json(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
