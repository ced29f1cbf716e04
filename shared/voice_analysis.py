"""Voice analysis of a recording: how much of it is speech, and its pitch (F0).

Used by the cloner's reference encoder (is there a voice to clone?) and by its style fitting
(does the synthetic voice sit at the reference's pitch?).
"""

from __future__ import annotations

import warnings

import numpy as np
import webrtcvad

from shared.audio import Audio

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pyworld imports pkg_resources, which warns on import
    import pyworld


def voice_activity(audio: Audio, aggressiveness: int = 3, frame_ms: int = 30) -> tuple[float, np.ndarray]:
    """(seconds of speech, F0 of the voiced 10 ms frames in Hz) of a clip.

    Speech = frames webrtcvad calls speech *and* WORLD harvest finds voiced (periodic): webrtcvad
    alone accepts steady noise, voicing alone accepts a hum or a tone. A steady tone (no pitch
    movement at all) counts as no speech. Harvest, not dio: dio loses the voicing of noisy
    read speech (LibriSpeech "other").
    """
    samples = audio.resample(16_000).samples
    f0 = _f0_track(samples)  # 10 ms frames
    voiced_f0 = f0[f0 > 0]
    if voiced_f0.size < 10 or float(np.std(np.log(voiced_f0))) < 0.01:
        return 0.0, np.zeros(0)
    vad = webrtcvad.Vad(aggressiveness)
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    frame = 16_000 * frame_ms // 1000
    step = frame_ms // 10
    speech = 0
    for index, start in enumerate(range(0, len(pcm) - frame + 1, frame)):
        periodic = np.mean(f0[index * step : (index + 1) * step] > 0) >= 0.5
        if periodic and vad.is_speech(pcm[start : start + frame].tobytes(), 16_000):
            speech += 1
    return speech * frame_ms / 1000, voiced_f0


def _f0_track(samples: np.ndarray) -> np.ndarray:
    f0, _ = pyworld.harvest(samples.astype(np.float64), 16_000, f0_floor=60.0, f0_ceil=400.0, frame_period=10.0)
    return f0


def median_f0_hz(audio: Audio) -> float:
    """Median F0 of the voiced frames (WORLD dio: fast, fine on clean synthetic speech), 0.0 if none."""
    x = audio.resample(16_000).samples.astype(np.float64)
    f0, _ = pyworld.dio(x, 16_000, f0_floor=60.0, f0_ceil=400.0, frame_period=10.0)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if voiced.size else 0.0
