"""Features of the ``seed-baseline`` model (librosa, no torch): the reference project's recipe,
kept exactly as a comparison row. MFCC (40), chroma (12), mel power (128), spectral contrast (7)
and tonnetz (6), each averaged over time: a 193-number vector. Used by training and serving."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import librosa
import numpy as np

from shared.audio import Audio

SEED_FEATURE_NAMES = ("mfcc40", "chroma12", "mel128", "contrast7", "tonnetz6")


@dataclass(frozen=True)
class SeedFeatures:
    """The reference recipe (librosa defaults, features averaged over time)."""

    n_mfcc: int = 40

    @property
    def dimension(self) -> int:
        return self.n_mfcc + 12 + 128 + 7 + 6

    def __call__(self, audio: Audio) -> np.ndarray:
        y, sr = audio.samples, audio.sample_rate_hz
        stft = np.abs(librosa.stft(y))
        with warnings.catch_warnings():
            # tonnetz's constant-Q transform warns on clips shorter than its lowest octave's window.
            warnings.simplefilter("ignore", UserWarning)
            tonnetz = librosa.feature.tonnetz(y=librosa.effects.harmonic(y), sr=sr)
        parts = [
            librosa.feature.mfcc(y=y, sr=sr, n_mfcc=self.n_mfcc),
            librosa.feature.chroma_stft(S=stft, sr=sr),
            librosa.feature.melspectrogram(y=y, sr=sr),
            librosa.feature.spectral_contrast(S=stft, sr=sr),
            tonnetz,
        ]
        return np.concatenate([part.mean(axis=1) for part in parts]).astype(np.float32)
