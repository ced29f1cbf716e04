"""The prosody fit on development speakers: pitch and pace errors, GE2E and Whisper WER.

    OMP_NUM_THREADS=2 .venv/bin/python bench/prosody_dev.py --first 60 --speakers 20 --texts 3 \\
        --output docs/prosody-dev.json

Development data only (``bench/clone_dev.py``: train-clean-100 speakers, VCTK sentences). Each
speaker is enrolled once by ``kokoro-ge2e`` without any prosody fit; the same style then speaks
each sentence three ways: as enrolled, with the pitch fit, with the pitch and rate fit
(:func:`services.cloner.backends.kokoro_ge2e.fit_prosody`, the settings' caps), each without and
with the channel stage. Scores against the reference: pitch error (|median F0 difference| in
semitones), pace error (|articulation-rate ratio − 1|: syllables of the words, the clone's text or
Whisper-base's transcript of the reference, per second of phonation), GE2E and Whisper-base WER.
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
from bench.clone_dev import CloneScorer, add_development_arguments, development_data
from bench.report import emit_json, run_context
from services.cloner.backends.kokoro_ge2e import KokoroGE2EBackend, ProsodyFit, fit_prosody
from services.cloner.config import ClonerSettings
from services.cloner.pipeline import Cloner
from shared.voice_analysis import analyse_voice


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_development_arguments(parser, first=60, speakers=20, texts=3, voice_cache="var/prosody-dev/voices")
    args = parser.parse_args()
    rows, sentences = development_data(parser, args)
    load_avg_start = os.getloadavg()
    # Enrolled without any prosody fit (whatever the defaults are): the bench adds each fit itself.
    settings = ClonerSettings(watermark=False, voice_cache_dir=args.voice_cache, pitch_fit=False, rate_fit=False)
    cloner = Cloner.from_settings(settings)
    backend = cloner.backend
    if not isinstance(backend, KokoroGE2EBackend):
        parser.error("the prosody fit is kokoro-ge2e's; unset VCFAD_CLONER_BACKEND")
    caps = {"max_pitch_shift_st": settings.pitch_fit_max_st, "max_speed_ratio": settings.rate_fit_max_ratio}
    both = ProsodyFit(pitch=True, rate=True, **caps)
    scorer = CloneScorer(cloner.encoder.speaker_encoder)
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
                rate = spoken.articulation_rate_hz(backend.tts.syllables(text))
                # Not measurable (no voiced frame, no words heard in the reference): NaN, left out of the means.
                pitch_error = (
                    abs(12 * np.log2(spoken.median_f0_hz / reference["median_f0_hz"]))
                    if spoken.median_f0_hz > 0
                    else np.nan
                )
                pace_error = abs(rate / reference_rate - 1) if rate > 0 and reference_rate > 0 else np.nan
                for room, finished in (
                    ("no channel stage", cloner.finish(audio)),
                    ("channel stage", cloner.finish(audio, enrolled, text)),
                ):
                    extra = {"pitch_error_st": pitch_error, "pace_error": pace_error}
                    scorer.score(f"{name}, {room}", finished, voice, text, **extra)
    report = {
        "speakers": [speaker for speaker, _ in rows],
        "texts_per_speaker": args.texts,
        "caps": caps,
        "rows": scorer.rows(),
        "fitted": fitted_factors,
        "elapsed_s": round(time.perf_counter() - started, 1),
        **run_context(load_avg_start),
    }
    emit_json(report, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
