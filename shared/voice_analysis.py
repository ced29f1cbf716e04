"""Voice analysis of a recording: how much of it is speech, its pitch (F0) and its phonation time.

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

from shared.audio import Audio

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pyworld imports pkg_resources, which warns on import
    import pyworld


@dataclass(frozen=True)
class VoiceAnalysis:
    """How much of a clip is speech, at what pitch, and how long its phonation lasts."""

    #: Seconds that webrtcvad calls speech *and* WORLD harvest finds voiced.
    speech_s: float
    #: F0 of the voiced 10 ms frames, in Hz.
    voiced_f0_hz: np.ndarray
    #: Seconds webrtcvad calls speech, pauses of under 0.3 s included (stops, short breaths) and
    #: longer ones left out: the time an articulation rate divides by.
    phonation_s: float

    @property
    def median_f0_hz(self) -> float:
        return float(np.median(self.voiced_f0_hz)) if self.voiced_f0_hz.size else 0.0

    def articulation_rate_hz(self, syllables: int) -> float:
        """``syllables`` (of what the clip says: e.g. :func:`shared.tts.kokoro.text_syllables` of its
        words, which noise and reverberation do not blur as they blur intensity peaks) per second of
        phonation; 0.0 without words or speech."""
        return syllables / self.phonation_s if syllables > 0 and self.phonation_s > 0 else 0.0


_NO_SPEECH = VoiceAnalysis(0.0, np.zeros(0), 0.0)
#: The longest silence inside phonation (a stop closure or a short breath), in seconds.
_MAX_INNER_PAUSE_S = 0.3


def analyse_voice(audio: Audio, aggressiveness: int = 3, frame_ms: int = 30) -> VoiceAnalysis:
    """Speech, pitch and phonation time of a clip (harvest costs ~0.2× real time).

    Speech = frames webrtcvad calls speech *and* WORLD harvest finds voiced (periodic): webrtcvad
    alone accepts steady noise, voicing alone accepts a hum or a tone. A steady tone (no pitch
    movement at all) counts as no speech. Harvest, not dio: dio loses the voicing of noisy
    read speech (LibriSpeech "other"). Phonation is webrtcvad's alone (unvoiced sounds are
    spoken too), with its short gaps filled: an articulation rate's denominator.
    """
    samples = audio.resample(16_000).samples
    f0 = _f0_track(samples)  # 10 ms frames
    voiced_f0 = f0[f0 > 0]
    if voiced_f0.size < 10 or float(np.std(np.log(voiced_f0))) < 0.01:
        return _NO_SPEECH
    # Two detectors: webrtcvad adapts to what it has heard, so the speech check's detector hears
    # only the voiced frames (as it always has) and the phonation's hears every frame.
    speech_vad, phonation_vad = webrtcvad.Vad(aggressiveness), webrtcvad.Vad(aggressiveness)
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    frame = 16_000 * frame_ms // 1000
    step = frame_ms // 10
    talking, speech = [], 0
    for index, start in enumerate(range(0, len(pcm) - frame + 1, frame)):
        chunk = pcm[start : start + frame].tobytes()
        talking.append(phonation_vad.is_speech(chunk, 16_000))
        periodic = np.mean(f0[index * step : (index + 1) * step] > 0) >= 0.5
        if periodic and speech_vad.is_speech(chunk, 16_000):
            speech += 1
    phonation = _bridged(np.array(talking, bool), round(_MAX_INNER_PAUSE_S * 1000 / frame_ms))
    return VoiceAnalysis(speech * frame_ms / 1000, voiced_f0, phonation * frame_ms / 1000)


def _bridged(active: np.ndarray, max_gap: int) -> int:
    """Active frames, counting the gaps of fewer than ``max_gap`` frames between active runs."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    runs = list(zip(edges[::2], edges[1::2], strict=True))
    inner = sum(start - end for (_, end), (start, _) in itertools.pairwise(runs) if start - end < max_gap)
    return int(active.sum()) + inner


def _f0_track(samples: np.ndarray) -> np.ndarray:
    f0, _ = pyworld.harvest(samples.astype(np.float64), 16_000, f0_floor=60.0, f0_ceil=400.0, frame_period=10.0)
    return f0


def median_f0_hz(audio: Audio) -> float:
    """Median F0 of the voiced frames (WORLD dio: fast, fine on clean synthetic speech), 0.0 if none."""
    x = audio.resample(16_000).samples.astype(np.float64)
    f0, _ = pyworld.dio(x, 16_000, f0_floor=60.0, f0_ceil=400.0, frame_period=10.0)
    voiced = f0[f0 > 0]
    return float(np.median(voiced)) if voiced.size else 0.0
