"""The judge's network: an x-vector TDNN with attentive statistics pooling, and its training loss.

Small on purpose (about half a million weights): it trains on two CPU cores from cached features
in minutes, and it shares nothing with GE2E (a 3-layer LSTM over 40 mel bands at 16 kHz, trained on
other data with another loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional


@dataclass(frozen=True)
class NetworkConfig:
    """Shape of the speaker network (stored with the model)."""

    n_mels: int = 64
    channels: int = 256
    embedding_dim: int = 192


class _TdnnLayer(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__(
            nn.Conv1d(
                in_channels,
                out_channels,
                kernel_size=kernel_size,
                dilation=dilation,
                padding=dilation * (kernel_size - 1) // 2,
            ),
            nn.ReLU(),
            nn.BatchNorm1d(out_channels),
        )


class AttentiveStatsPooling(nn.Module):
    """Weighted mean and standard deviation over time, the weights from a small attention net."""

    def __init__(self, channels: int, attention_channels: int = 128) -> None:
        super().__init__()
        self.attention = nn.Sequential(
            nn.Conv1d(channels, attention_channels, kernel_size=1),
            nn.Tanh(),
            nn.Conv1d(attention_channels, channels, kernel_size=1),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:  # (batch, channels, time)
        weights = torch.softmax(self.attention(frames), dim=2)
        mean = torch.sum(weights * frames, dim=2)
        variance = torch.sum(weights * frames * frames, dim=2) - mean * mean
        return torch.cat([mean, torch.sqrt(variance.clamp(min=1e-6))], dim=1)


class SpeakerNetwork(nn.Module):
    """Log-mel ``(batch, n_mels, frames)`` → speaker embedding ``(batch, embedding_dim)``."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.channels
        self.frames = nn.Sequential(
            _TdnnLayer(config.n_mels, channels, kernel_size=5, dilation=1),
            _TdnnLayer(channels, channels, kernel_size=3, dilation=2),
            _TdnnLayer(channels, channels, kernel_size=3, dilation=3),
            _TdnnLayer(channels, channels, kernel_size=1, dilation=1),
            _TdnnLayer(channels, 2 * channels, kernel_size=1, dilation=1),
        )
        self.pooling = AttentiveStatsPooling(2 * channels)
        self.embedding = nn.Sequential(
            nn.Linear(4 * channels, config.embedding_dim), nn.BatchNorm1d(config.embedding_dim)
        )

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        return self.embedding(self.pooling(self.frames(log_mel)))


class AdditiveAngularMargin(nn.Module):
    """AAM-softmax (ArcFace) over speaker classes: pulls a speaker's embeddings to one direction."""

    def __init__(self, embedding_dim: int, speakers: int, margin: float = 0.2, scale: float = 30.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(speakers, embedding_dim) * 0.01)
        self.margin, self.scale = margin, scale

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosine = functional.linear(functional.normalize(embeddings), functional.normalize(self.weight))
        angle = torch.acos(cosine.clamp(-1 + 1e-7, 1 - 1e-7))
        target = torch.cos(angle + self.margin)
        one_hot = functional.one_hot(labels, cosine.shape[1]).to(cosine.dtype)
        logits = self.scale * (one_hot * target + (1 - one_hot) * cosine)
        return functional.cross_entropy(logits, labels)
