"""Whisper's log-mel front end in numpy (:func:`whisper_log_mel`): what the detector's ONNX graph
takes as input, computed the same way in training and in the service. No torch here: the service
imports it."""

from __future__ import annotations

from functools import cache

import librosa
import numpy as np

WHISPER_SAMPLE_RATE_HZ = 16_000
WHISPER_N_FFT = 400
WHISPER_HOP = 160  # 10 ms frames; the encoder's conv2 halves this to 20 ms
WHISPER_MAX_FRAMES = 3000


@cache
def _mel_filters(n_mels: int) -> np.ndarray:
    return librosa.filters.mel(sr=WHISPER_SAMPLE_RATE_HZ, n_fft=WHISPER_N_FFT, n_mels=n_mels).astype(np.float32)


def whisper_log_mel(samples: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Whisper's log-mel spectrogram (n_mels × frames) of 16 kHz samples, at their own length.

    Same recipe as Whisper (Hann 400, hop 160, Slaney mel, log10, 8 dB dynamic range, scaled by
    1/4 around −4), but the range is taken over the clip itself rather than a 30 s padded window.
    """
    samples = np.asarray(samples, dtype=np.float32)
    stft = librosa.stft(samples, n_fft=WHISPER_N_FFT, hop_length=WHISPER_HOP, window="hann", center=True)
    power = np.abs(stft[:, :-1]) ** 2
    log_spec = np.log10(np.maximum(_mel_filters(n_mels) @ power, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)
