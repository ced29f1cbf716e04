"""Clip-level features of the two detector models.

* :class:`SeedFeatures` — the reference project's recipe, kept exactly as a comparison row:
  MFCC (40), chroma (12), mel power (128), spectral contrast (7) and tonnetz (6), each averaged
  over time: a 193-number vector.
* :class:`WhisperLayerFeatures` — mean and standard deviation over time of the hidden states of
  Whisper's encoder (its front end's and every block's), run on the clip's true length (not
  padded to 30 s). The ``default`` model picks some of these layers; all are cached so the
  choice is cheap.
  Optionally the log-mel is channel-normalised first (:func:`normalise_channel`), and a third
  statistic reads the frames' order (``pooling = "mean-std-delta"``, :func:`pool_statistics`).
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import torch

from services.detector.models import Pooling, check_pooling
from shared.audio import Audio
from shared.offline_models import whisper_model_dir
from shared.whisper_encoder import WHISPER_MAX_FRAMES, WhisperEncoder, whisper_log_mel

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


def pool_mean_std(hidden: torch.Tensor) -> torch.Tensor:
    """(batch, time, width) -> (batch, 2·width): mean and standard deviation over time."""
    mean = hidden.mean(dim=1)
    std = (hidden - mean[:, None, :]).square().mean(dim=1).clamp_min(1e-8).sqrt()
    return torch.cat([mean, std], dim=-1)


def pool_statistics(hidden: torch.Tensor, pooling: Pooling = "mean-std") -> torch.Tensor:
    """(batch, time, width) -> (batch, k·width) for the statistics ``pooling`` names.

    ``mean-std-delta`` adds the root mean square of each dimension's change from one frame to the
    next. Mean and std ignore the frames' order; this does not: over-smoothed trajectories
    (statistical-parametric synthesis) give it low values, jumps at unit joins and frame-rate
    vocoder artefacts high ones. Needs two frames or more (the detection loader's shortest clip,
    0.3 s, gives 15).
    """
    check_pooling(pooling)
    pooled = pool_mean_std(hidden)
    if pooling == "mean-std":
        return pooled
    step = hidden[:, 1:, :] - hidden[:, :-1, :]
    return torch.cat([pooled, step.square().mean(dim=1).clamp_min(1e-8).sqrt()], dim=-1)


def normalise_channel(log_mel: torch.Tensor, mel_profile: torch.Tensor) -> torch.Tensor:
    """Replace each band's mean over the clip by ``mel_profile``: (batch, mels, frames) -> same.

    A recording channel (microphone, room colouring, a codec's band limit) multiplies the
    spectrum, so it adds one constant per band to the log-mel; taking away the clip's band means
    removes it (cepstral mean normalisation). The profile puts back a typical long-term speech
    spectrum, because the encoder was trained on natural spectra, not flattened ones.
    """
    return log_mel - log_mel.mean(dim=2, keepdim=True) + mel_profile[None, :, None]


class WhisperLayerFeatures:
    """Pooled hidden states of Whisper's encoder for a 16 kHz clip.

    Returns an array (num_layers + 1, k·width), k statistics per :func:`pool_statistics`: row 0
    pools the front end's output, row *i* block *i*'s (:class:`WhisperEncoder`). Clips longer
    than Whisper's 30 s window are cut to it: callers score long recordings window by window.
    With ``mel_profile`` (one value per mel band) the log-mel is channel-normalised before the
    encoder (:func:`normalise_channel`).
    """

    def __init__(
        self,
        model_name: str = "base",
        num_layers: int | None = None,
        model_dir: Path | None = None,
        mel_profile: np.ndarray | None = None,
        pooling: Pooling = "mean-std",
    ) -> None:
        self.model_name = model_name
        self.pooling = check_pooling(pooling)
        self.encoder = WhisperEncoder.from_ct2(model_dir or whisper_model_dir(model_name), num_layers=num_layers)
        self.mel_profile = None if mel_profile is None else torch.from_numpy(np.asarray(mel_profile, np.float32))

    @property
    def cache_id(self) -> str:
        statistics = self.pooling.replace("-", "")
        # "h0-": rows start at the front end (hidden state 0); caches without it started at block 1.
        base = f"whisper-{self.model_name}-h0-l{self.encoder.num_layers}-{statistics}"
        if self.mel_profile is None:
            return base
        return f"{base}-cmn-{hashlib.sha1(self.mel_profile.numpy().tobytes()).hexdigest()[:12]}"

    @torch.inference_mode()
    def __call__(self, audio: Audio) -> np.ndarray:
        if audio.sample_rate_hz != 16_000:
            audio = audio.resample(16_000)
        log_mel = torch.from_numpy(whisper_log_mel(audio.samples)[:, :WHISPER_MAX_FRAMES])[None]
        if self.mel_profile is not None:
            log_mel = normalise_channel(log_mel, self.mel_profile)
        hidden = self.encoder(log_mel)
        return torch.stack([pool_statistics(layer, self.pooling)[0] for layer in hidden]).numpy()
