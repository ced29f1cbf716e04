"""The prosody fit on development speakers: pitch and pace errors, GE2E and Whisper WER.

    OMP_NUM_THREADS=2 .venv/bin/python bench/prosody_dev.py --first 60 --speakers 20 --texts 3 \\
        --output docs/prosody-dev.json

Development data only: LibriSpeech **train-clean-100** speakers of ``../shared/data`` (one ~12 s
utterance each, the reference), never the test-other speakers ``vcfad eval-clone`` reports on.
Each speaker is enrolled once by the default ``kokoro-ge2e`` backend; the same style then speaks
each VCTK sentence three ways: as enrolled (no prosody fit), with the pitch fit, with the pitch and
rate fit (:func:`services.cloner.backends.kokoro_ge2e.fit_prosody`, the settings' caps), each
without and with the channel stage. Scores against the reference: pitch error (|median F0
difference| in semitones), pace error (|articulation-rate ratio − 1|: syllables of the words, the
clone's text or Whisper-base's transcript of the reference, per second of phonation), GE2E cosine (resemblyzer)
and corpus WER by Whisper base (faster-whisper). The speaker judge is deliberately not used.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The repo root is on the path only from here.
from bench.report import emit_json, run_context
from services.cloner.backends.kokoro_ge2e import KokoroGE2EBackend, ProsodyFit, fit_prosody
from services.cloner.config import ClonerSettings
from services.cloner.evaluation import default_data_dir, development_references, development_texts
from services.cloner.pipeline import Cloner
from shared.asr import SpeechRecognizer, word_error_rate
from shared.voice_analysis import analyse_voice


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", type=int, default=60, help="first train-clean-100 speaker (manifest order)")
    parser.add_argument("--speakers", type=int, default=20)
    parser.add_argument("--texts", type=int, default=3, help="sentences per speaker")
    parser.add_argument("--voice-cache", type=Path, default=Path("var/prosody-dev/voices"))
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    data_dir = default_data_dir()
    if not (data_dir / "librispeech" / "manifest.tsv").exists():
        parser.error(f"{data_dir / 'librispeech'} not found: the shared speech data is needed (its README)")
    if min(args.first, args.speakers - 1, args.texts - 1) < 0:
        parser.error("--first ≥ 0, --speakers ≥ 1, --texts ≥ 1")
    rows = development_references(data_dir, args.first, args.speakers)
    sentences = development_texts(data_dir)
    load_avg_start = os.getloadavg()
    # Enrolled without any prosody fit (whatever the defaults are): the bench adds each fit itself.
    settings = ClonerSettings(watermark=False, voice_cache_dir=args.voice_cache, pitch_fit=False, rate_fit=False)
    cloner = Cloner.from_settings(settings)
    backend = cloner.backend
    if not isinstance(backend, KokoroGE2EBackend):
        parser.error("the prosody fit is kokoro-ge2e's; unset VCFAD_CLONER_BACKEND")
    caps = {"max_pitch_shift_st": settings.pitch_fit_max_st, "max_speed_ratio": settings.rate_fit_max_ratio}
    both = ProsodyFit(pitch=True, rate=True, **caps)
    recognizer = SpeechRecognizer("base")
    encoder = cloner.encoder.speaker_encoder
    scores: dict[str, list[tuple[float, float, int, float, float]]] = {}
    fitted_factors = []
    started = time.perf_counter()
    for index, (speaker, path) in enumerate(rows):
        voice = cloner.encode([path])
        enrolled = cloner.enroll(voice)
        reference = voice.stats
        reference_rate = backend.reference_rate_hz(voice)
        with_pitch_and_rate = fit_prosody(backend.meter, enrolled.voice, voice, both, reference_rate)
        factors = {"pitch": with_pitch_and_rate.pitch, "speed": with_pitch_and_rate.speed}
        fitted_factors.append({"speaker": speaker, **factors})
        fitted = {
            "no prosody fit": enrolled.voice,
            "pitch fit": dataclasses.replace(enrolled.voice, pitch=with_pitch_and_rate.pitch),
            "pitch and rate fit": with_pitch_and_rate,
        }
        for text in sentences[index * args.texts : (index + 1) * args.texts]:
            for name, style in fitted.items():
                audio = backend.synthesize(style, text)
                spoken = analyse_voice(audio)
                pitch_error = abs(12 * np.log2(spoken.median_f0_hz / reference["median_f0_hz"]))
                pace_error = abs(spoken.articulation_rate_hz(backend.tts.syllables(text)) / reference_rate - 1)
                for room, finished in (
                    ("no channel stage", cloner.finish(audio)),
                    ("channel stage", cloner.finish(audio, enrolled, text)),
                ):
                    similarity = float(encoder.embed(finished) @ voice.embedding)
                    error = word_error_rate(text, recognizer.transcribe(finished))
                    scores.setdefault(f"{name}, {room}", []).append(
                        (similarity, error, len(text.split()), pitch_error, pace_error)
                    )
    rows_out = []
    for name, values in scores.items():
        table = np.array(values)
        rows_out.append(
            {
                "row": name,
                "clones": len(table),
                "pitch_error_st": round(float(table[:, 3].mean()), 3),
                "pace_error": round(float(table[:, 4].mean()), 3),
                "ge2e": round(float(table[:, 0].mean()), 4),
                "wer": round(float((table[:, 1] * table[:, 2]).sum() / table[:, 2].sum()), 4),
            }
        )
    report = {
        "speakers": [speaker for speaker, _ in rows],
        "texts_per_speaker": args.texts,
        "caps": caps,
        "rows": rows_out,
        "fitted": fitted_factors,
        "elapsed_s": round(time.perf_counter() - started, 1),
        **run_context(load_avg_start),
    }
    emit_json(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
