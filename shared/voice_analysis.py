"""Voice analysis of a recording: how much of it is speech, its pitch (F0) and how fast it is spoken.

Used by the cloner's reference encoder (is there a voice to clone?), by its style fitting and
prosody fit (does the synthetic voice sit at the reference's pitch and pace?) and by
``vcfad eval-clone`` (how far the clones' pitch and pace are from the reference's).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np
import webrtcvad
from scipy.signal import find_peaks

from shared.audio import Audio

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pyworld imports pkg_resources, which warns on import
    import pyworld


@dataclass(frozen=True)
class VoiceAnalysis:
    """How much of a clip is speech, at what pitch and how fast it is spoken."""

    #: Seconds that webrtcvad calls speech *and* WORLD harvest finds voiced.
    speech_s: float
    #: F0 of the voiced 10 ms frames, in Hz.
    voiced_f0_hz: np.ndarray
    #: Syllable nuclei: intensity peaks ≥ 2 dB above the dips either side, voiced, above the floor.
    syllables: int
    #: Seconds of sound above the floor (the loudest frames − 25 dB, and 8 dB over the background),
    #: pauses of ≥ 0.3 s excluded.
    phonation_s: float

    @property
    def articulation_rate_hz(self) -> float:
        """Syllables per second of phonation (pauses excluded), 0.0 without speech."""
        return self.syllables / self.phonation_s if self.syllables and self.phonation_s > 0 else 0.0

    @property
    def median_f0_hz(self) -> float:
        return float(np.median(self.voiced_f0_hz)) if self.voiced_f0_hz.size else 0.0


_NO_SPEECH = VoiceAnalysis(0.0, np.zeros(0), 0, 0.0)


def analyse_voice(audio: Audio, aggressiveness: int = 3, frame_ms: int = 30) -> VoiceAnalysis:
    """Speech, pitch and articulation rate of a clip (harvest costs ~0.2× real time).

    Speech = frames webrtcvad calls speech *and* WORLD harvest finds voiced (periodic): webrtcvad
    alone accepts steady noise, voicing alone accepts a hum or a tone. A steady tone (no pitch
    movement at all) counts as no speech. Harvest, not dio: dio loses the voicing of noisy
    read speech (LibriSpeech "other"). The rate counts syllable nuclei as de Jong & Wempe (2009)
    do (intensity peaks that stand out from their dips and are voiced) per second of phonation.
    """
    samples = audio.resample(16_000).samples
    f0 = _f0_track(samples)  # 10 ms frames
    voiced_f0 = f0[f0 > 0]
    if voiced_f0.size < 10 or float(np.std(np.log(voiced_f0))) < 0.01:
        return _NO_SPEECH
    vad = webrtcvad.Vad(aggressiveness)
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    frame = 16_000 * frame_ms // 1000
    step = frame_ms // 10
    speech = 0
    for index, start in enumerate(range(0, len(pcm) - frame + 1, frame)):
        periodic = np.mean(f0[index * step : (index + 1) * step] > 0) >= 0.5
        if periodic and vad.is_speech(pcm[start : start + frame].tobytes(), 16_000):
            speech += 1
    syllables, phonation_s = _syllable_nuclei(samples, f0)
    return VoiceAnalysis(speech * frame_ms / 1000, voiced_f0, syllables, phonation_s)


def voice_activity(audio: Audio) -> tuple[float, np.ndarray]:
    """(seconds of speech, F0 of the voiced 10 ms frames in Hz) of a clip: :func:`analyse_voice`."""
    analysis = analyse_voice(audio)
    return analysis.speech_s, analysis.voiced_f0_hz


def _syllable_nuclei(samples: np.ndarray, f0: np.ndarray) -> tuple[int, float]:
    """(syllable nuclei, phonation seconds) from a 16 kHz clip and its 10 ms F0 track."""
    window, hop = 640, 160  # 40 ms Hann windows every 10 ms, on the F0 track's grid
    if len(samples) < window:
        return 0, 0.0
    frames = np.lib.stride_tricks.sliding_window_view(samples.astype(np.float64), window)[::hop]
    level_db = 10 * np.log10(np.mean((frames * np.hanning(window)) ** 2, axis=1) + 1e-12)
    level_db = np.convolve(level_db, np.ones(3) / 3, mode="same")
    # The floor: 25 dB under the loudest frames, and clear of a noisy recording's background.
    floor_db = max(float(np.percentile(level_db, 99)) - 25.0, float(np.percentile(level_db, 10)) + 8.0)
    sounding = level_db > floor_db
    # Pauses shorter than 0.3 s are part of the phonation (stops, short breaths).
    edges = np.flatnonzero(np.diff(np.concatenate([[0], sounding.astype(np.int8), [0]])))
    runs = list(zip(edges[::2], edges[1::2], strict=True))
    phonation = sum(end - start for start, end in runs)
    phonation += sum(start - end for (_, end), (start, _) in itertools.pairwise(runs) if start - end < 30)
    peaks, _ = find_peaks(level_db, prominence=2.0)
    voiced = np.zeros(len(level_db), bool)
    voiced[: min(len(f0), len(voiced))] = f0[: len(voiced)] > 0
    return int(np.sum(sounding[peaks] & voiced[peaks])), phonation * hop / 16_000


def _f0_track(samples: np.ndarray) -> np.ndarray:
    f0, _ = pyworld.harvest(samples.astype(np.float64), 16_000, f0_floor=60.0, f0_ceil=400.0, frame_period=10.0)
    return f0


def median_f0_hz(audio: Audio) -> float:
    """Median F0 of the voiced frames (WORLD dio: fast, fine on clean synthetic speech), 0.0 if none."""
    x = audio.resample(16_000).samples.astype(np.float64)
    f0, _ = pyworld.dio(x, 16_000, f0_floor=60.0, f0_ceil=400.0, frame_period=10.0)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if voiced.size else 0.0
