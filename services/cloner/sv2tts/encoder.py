"""RTVC's GE2E speaker encoder (``encoder.pt``): 40 mel channels → LSTM 3×256 → 256-d d-vector.

The same architecture and training recipe as resemblyzer, whose ``pretrained.pt`` has the same
keys and shapes; the published ``encoder.pt`` is 17,090,379 bytes like resemblyzer's file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class EncoderHParams:
    sample_rate_hz: int = 16_000
    mel_window_ms: int = 25
    mel_step_ms: int = 10
    mel_channels: int = 40
    partial_frames: int = 160  # 1.6 s windows
    hidden_size: int = 256
    embedding_size: int = 256
    num_layers: int = 3


class SpeakerEncoder(nn.Module):
    """LSTM 3×256 over mel frames; the last layer's final hidden state → linear → ReLU → L2 norm."""

    def __init__(self, hparams: EncoderHParams | None = None) -> None:
        super().__init__()
        self.hparams = hp = hparams or EncoderHParams()
        self.lstm = nn.LSTM(hp.mel_channels, hp.hidden_size, hp.num_layers, batch_first=True)
        self.linear = nn.Linear(hp.hidden_size, hp.embedding_size)
        self.relu = nn.ReLU()
        # GE2E similarity scale and offset (training only, but part of the checkpoint).
        self.similarity_weight = nn.Parameter(torch.tensor([10.0]))
        self.similarity_bias = nn.Parameter(torch.tensor([-5.0]))

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        """(batch, frames, 40) mel power → (batch, 256) L2-normed embeddings."""
        _, (hidden, _) = self.lstm(mels)
        raw = self.relu(self.linear(hidden[-1]))
        return raw / (torch.norm(raw, dim=1, keepdim=True) + 1e-5)

    def mel_frames(self, wav: np.ndarray) -> np.ndarray:
        """(frames, 40) mel power spectrogram (not log) of 16 kHz samples, as RTVC computes it."""
        import librosa  # loads numba: only enrolment needs the mel front end, not the module's users

        hp = self.hparams
        mel = librosa.feature.melspectrogram(
            y=wav.astype(np.float32),
            sr=hp.sample_rate_hz,
            n_fft=hp.sample_rate_hz * hp.mel_window_ms // 1000,
            hop_length=hp.sample_rate_hz * hp.mel_step_ms // 1000,
            n_mels=hp.mel_channels,
        )
        return mel.astype(np.float32).T

    @torch.no_grad()
    def embed_utterance(self, wav: np.ndarray, rate: float = 1.3, min_coverage: float = 0.75) -> np.ndarray:
        """d-vector of preprocessed 16 kHz samples: 1.6 s windows at ``rate`` per second, averaged."""
        hp = self.hparams
        samples_per_frame = hp.sample_rate_hz * hp.mel_step_ms // 1000
        n_frames = int(np.ceil((len(wav) + 1) / samples_per_frame))
        frame_step = max(1, int(np.round((hp.sample_rate_hz / rate) / samples_per_frame)))
        starts = list(range(0, max(1, n_frames - hp.partial_frames + frame_step + 1), frame_step))
        last_end = starts[-1] + hp.partial_frames
        coverage = (n_frames - starts[-1]) / hp.partial_frames
        if coverage < min_coverage and len(starts) > 1:
            starts = starts[:-1]
            last_end = starts[-1] + hp.partial_frames
        needed = last_end * samples_per_frame
        if needed > len(wav):
            wav = np.pad(wav, (0, needed - len(wav)))
        mel = self.mel_frames(wav)
        batch = np.stack([mel[s : s + hp.partial_frames] for s in starts])
        partials = self(torch.from_numpy(batch)).numpy()
        mean = partials.mean(axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> SpeakerEncoder:
        model = cls()
        load_model_state(model, path)
        return model.eval()


def load_model_state(model: nn.Module, path: str | Path) -> None:
    """Load ``{"model_state": ...}`` (or a bare state dict) strictly: every key and shape must match."""
    checkpoint = torch.load(str(path), map_location="cpu", weights_only=False)
    state = checkpoint.get("model_state", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path}: not a matching checkpoint for {type(model).__name__} "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {wrong[:5]})"
        )
    model.load_state_dict(state, strict=True)


def save_model_state(model: nn.Module, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": model.state_dict()}, str(path))
    return path
