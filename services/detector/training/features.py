"""Training features of the ``whisper-probe`` model (torch).

:class:`WhisperLayerFeatures`: mean and standard deviation over time of the hidden states of
Whisper's encoder (its front end's and every block's), run on the clip's true length (not padded
to 30 s). The ``default`` model picks some of these layers; all are cached so the choice is cheap.
Optionally the log-mel is channel-normalised first (:func:`normalise_channel`), and a third
statistic reads the frames' order (``pooling = "mean-std-delta"``, :func:`pool_statistics`).
The seed baseline's features are :mod:`services.detector.seed_features` (no torch).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from services.detector.model_files import Pooling, check_pooling
from shared.audio import Audio
from shared.log_mel import WHISPER_MAX_FRAMES, whisper_log_mel
from shared.offline_models import whisper_model_dir
from shared.whisper_encoder import WhisperEncoder


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
