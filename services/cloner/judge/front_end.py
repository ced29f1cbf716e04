"""The judge's front end: telephone-band log-mel frames, one definition for training and scoring.

Most many-speaker public speech here is 8 kHz (the Speech Accent Archive copy, the Hyke telephone
set), and clones are judged with and without a simulated channel: scoring every input on the band
that all of them share (60–3,800 Hz at 8 kHz) keeps the judge from telling speakers apart by
sample rate or by the energy above 4 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np

from shared.audio import Audio


@dataclass(frozen=True)
class FrontEnd:
    """Log-mel analysis settings of the judge (stored in the model card's JSON)."""

    sample_rate_hz: int = 8000
    window_s: float = 0.025
    hop_s: float = 0.010
    n_fft: int = 256
    n_mels: int = 64
    fmin_hz: float = 60.0
    fmax_hz: float = 3800.0
    #: Frames this far below the loudest frame are dropped as silence before pooling.
    speech_floor_db: float = 45.0

    def frames(self, audio: Audio) -> np.ndarray:
        """``(frames, n_mels)`` float32 log-mels of the speech in ``audio``, mean-normalised over time.

        Cepstral-style mean normalisation removes a fixed channel (microphone, telephone line), so
        what is left is the voice's spectral shape and its movement.
        """
        samples = audio.resample(self.sample_rate_hz).samples
        if samples.size < self.n_fft:
            samples = np.pad(samples, (0, self.n_fft - samples.size))
        power = (
            np.abs(
                librosa.stft(
                    samples,
                    n_fft=self.n_fft,
                    hop_length=round(self.hop_s * self.sample_rate_hz),
                    win_length=round(self.window_s * self.sample_rate_hz),
                    center=True,
                )
            )
            ** 2
        )
        mel = librosa.feature.melspectrogram(
            S=power, sr=self.sample_rate_hz, n_mels=self.n_mels, fmin=self.fmin_hz, fmax=self.fmax_hz
        )
        log_mel = np.log(mel + 1e-8).T  # (frames, n_mels)
        energy_db = 10.0 * np.log10(power.sum(axis=0) + 1e-12)
        keep = energy_db > energy_db.max() - self.speech_floor_db
        if keep.sum() >= 20:  # keep everything of a clip too short to lose frames
            log_mel = log_mel[keep]
        return (log_mel - log_mel.mean(axis=0, keepdims=True)).astype(np.float32)
