"""RTVC's WaveRNN vocoder (``vocoder.pt``): 80-band mels → 16 kHz waveform.

fatchord's WaveRNN as RTVC trained it: RAW mode (softmax over 2^9 classes of 9-bit mu-law),
mel upsampling network (a MelResNet for auxiliary features + stretch/conv layers with factors
5·5·8 = hop 200), two GRUs (512) and three dense layers. Generation is batched ("folded")
with cross-fades, as RTVC does (target 8000 samples, overlap 400), then mu-law decoded and
de-emphasised.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import lfilter
from torch import nn

from services.cloner.sv2tts.encoder import load_model_state


@dataclass(frozen=True)
class VocoderHParams:
    sample_rate_hz: int = 16_000
    hop_length: int = 200
    num_mels: int = 80
    mel_max_abs_value: float = 4.0
    preemphasis: float = 0.97
    bits: int = 9
    upsample_factors: tuple[int, ...] = (5, 5, 8)
    rnn_dims: int = 512
    fc_dims: int = 512
    compute_dims: int = 128
    res_out_dims: int = 128
    res_blocks: int = 10
    pad: int = 2
    gen_target: int = 8000
    gen_overlap: int = 400


class ResBlock(nn.Module):
    def __init__(self, dims: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(dims, dims, kernel_size=1, bias=False)
        self.conv2 = nn.Conv1d(dims, dims, kernel_size=1, bias=False)
        self.batch_norm1 = nn.BatchNorm1d(dims)
        self.batch_norm2 = nn.BatchNorm1d(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.batch_norm1(self.conv1(x)))
        return self.batch_norm2(self.conv2(y)) + x


class MelResNet(nn.Module):
    def __init__(self, res_blocks: int, in_dims: int, compute_dims: int, res_out_dims: int, pad: int) -> None:
        super().__init__()
        self.conv_in = nn.Conv1d(in_dims, compute_dims, kernel_size=pad * 2 + 1, bias=False)
        self.batch_norm = nn.BatchNorm1d(compute_dims)
        self.layers = nn.ModuleList([ResBlock(compute_dims) for _ in range(res_blocks)])
        self.conv_out = nn.Conv1d(compute_dims, res_out_dims, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.batch_norm(self.conv_in(x)))
        for layer in self.layers:
            x = layer(x)
        return self.conv_out(x)


class Stretch2d(nn.Module):
    """Nearest-neighbour upsampling of the last axis by ``x_scale`` (and the one before by ``y_scale``)."""

    def __init__(self, x_scale: int, y_scale: int) -> None:
        super().__init__()
        self.x_scale = x_scale
        self.y_scale = y_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.repeat_interleave(self.y_scale, dim=2).repeat_interleave(self.x_scale, dim=3)


class UpsampleNetwork(nn.Module):
    def __init__(self, hp: VocoderHParams) -> None:
        super().__init__()
        total_scale = int(np.prod(hp.upsample_factors))
        self.indent = hp.pad * total_scale
        self.resnet = MelResNet(hp.res_blocks, hp.num_mels, hp.compute_dims, hp.res_out_dims, hp.pad)
        self.resnet_stretch = Stretch2d(total_scale, 1)
        layers: list[nn.Module] = []
        for scale in hp.upsample_factors:
            conv = nn.Conv2d(1, 1, kernel_size=(1, scale * 2 + 1), padding=(0, scale), bias=False)
            conv.weight.data.fill_(1.0 / (scale * 2 + 1))
            layers += [Stretch2d(scale, 1), conv]
        self.up_layers = nn.ModuleList(layers)

    def forward(self, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, 80, frames + 2·pad) → upsampled mels (batch, samples, 80) and aux (batch, samples, 128)."""
        aux = self.resnet_stretch(self.resnet(mels).unsqueeze(1)).squeeze(1)
        m = mels.unsqueeze(1)
        for layer in self.up_layers:
            m = layer(m)
        m = m.squeeze(1)[:, :, self.indent : -self.indent]
        return m.transpose(1, 2), aux.transpose(1, 2)


class WaveRNN(nn.Module):
    """RAW-mode WaveRNN; :meth:`generate` turns RTVC mels into samples."""

    def __init__(self, hparams: VocoderHParams | None = None) -> None:
        super().__init__()
        self.hparams = hp = hparams or VocoderHParams()
        if int(np.prod(hp.upsample_factors)) != hp.hop_length:
            raise ValueError("the upsampling factors must multiply to the hop length")
        self.n_classes = 2**hp.bits
        self.aux_dims = hp.res_out_dims // 4
        self.upsample = UpsampleNetwork(hp)
        self.I = nn.Linear(hp.num_mels + self.aux_dims + 1, hp.rnn_dims)
        self.rnn1 = nn.GRU(hp.rnn_dims, hp.rnn_dims, batch_first=True)
        self.rnn2 = nn.GRU(hp.rnn_dims + self.aux_dims, hp.rnn_dims, batch_first=True)
        self.fc1 = nn.Linear(hp.rnn_dims + self.aux_dims, hp.fc_dims)
        self.fc2 = nn.Linear(hp.fc_dims + self.aux_dims, hp.fc_dims)
        self.fc3 = nn.Linear(hp.fc_dims, self.n_classes)
        self.step = nn.Parameter(torch.zeros(1).long(), requires_grad=False)

    @staticmethod
    def _cell(gru: nn.GRU) -> nn.GRUCell:
        cell = nn.GRUCell(gru.input_size, gru.hidden_size)
        weights = dict(gru.named_parameters())
        cell.weight_ih.data = weights["weight_ih_l0"].data
        cell.weight_hh.data = weights["weight_hh_l0"].data
        cell.bias_ih.data = weights["bias_ih_l0"].data
        cell.bias_hh.data = weights["bias_hh_l0"].data
        return cell

    @torch.no_grad()
    def generate(
        self,
        mel: np.ndarray,
        batched: bool = True,
        progress: Callable[[float], None] | None = None,
        seed: int | None = 0,
    ) -> np.ndarray:
        """(80, frames) RTVC mels ([-4, 4]) → float32 samples at 16 kHz."""
        self.eval()
        hp = self.hparams
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        mels = torch.from_numpy(np.asarray(mel, np.float32) / hp.mel_max_abs_value).unsqueeze(0)
        wave_len = (mels.size(-1) - 1) * hp.hop_length
        mels = F.pad(mels, (hp.pad, hp.pad))
        mels, aux = self.upsample(mels)
        # Folding only pays off beyond one fold; a short clip is generated in one piece.
        batched = batched and mels.size(1) > hp.gen_target + 2 * hp.gen_overlap
        if batched:
            mels = fold_with_overlap(mels, hp.gen_target, hp.gen_overlap)
            aux = fold_with_overlap(aux, hp.gen_target, hp.gen_overlap)
        batch, length, _ = mels.size()
        rnn1, rnn2 = self._cell(self.rnn1), self._cell(self.rnn2)
        h1 = torch.zeros(batch, hp.rnn_dims)
        h2 = torch.zeros(batch, hp.rnn_dims)
        x = torch.zeros(batch, 1)
        d = self.aux_dims
        a1, a2, a3, a4 = (aux[:, :, d * i : d * (i + 1)] for i in range(4))
        output = torch.empty(batch, length)
        for i in range(length):
            inp = self.I(torch.cat([x, mels[:, i], a1[:, i]], dim=1))
            h1 = rnn1(inp, h1)
            inp = inp + h1
            h2 = rnn2(torch.cat([inp, a2[:, i]], dim=1), h2)
            inp = inp + h2
            inp = F.relu(self.fc1(torch.cat([inp, a3[:, i]], dim=1)))
            inp = F.relu(self.fc2(torch.cat([inp, a4[:, i]], dim=1)))
            probabilities = F.softmax(self.fc3(inp), dim=1)
            sample = torch.multinomial(probabilities, 1, generator=generator).float()
            sample = 2 * sample / (self.n_classes - 1.0) - 1.0
            output[:, i] = sample[:, 0]
            x = sample
            if progress and i % 1000 == 0:
                progress(i / length)
        samples = output.numpy().astype(np.float64)
        samples = xfade_and_unfold(samples, hp.gen_overlap) if batched else samples[0]
        samples = decode_mu_law(samples, self.n_classes)
        samples = de_emphasis(samples, hp.preemphasis)
        samples = samples[:wave_len]
        fade = min(len(samples), 20 * hp.hop_length)
        if fade:
            samples[-fade:] *= np.linspace(1, 0, fade)
        return samples.astype(np.float32)

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> WaveRNN:
        model = cls()
        load_model_state(model, path)
        return model.eval()


def decode_mu_law(y: np.ndarray, classes: int) -> np.ndarray:
    """[-1, 1] mu-law values → linear [-1, 1]."""
    mu = classes - 1
    return np.sign(y) / mu * ((1 + mu) ** np.abs(y) - 1)


def de_emphasis(x: np.ndarray, coefficient: float) -> np.ndarray:
    return lfilter([1], [1, -coefficient], x)


def fold_with_overlap(x: torch.Tensor, target: int, overlap: int) -> torch.Tensor:
    """(1, T, C) → (folds, target + 2·overlap, C): overlapping segments generated as a batch."""
    total = x.size(1)
    folds = (total - overlap) // (target + overlap)
    extended = folds * (overlap + target) + overlap
    remaining = total - extended
    if remaining != 0:
        folds += 1
        x = F.pad(x, (0, 0, 0, target + 2 * overlap - remaining))
    span = target + 2 * overlap
    return torch.stack([x[0, i * (target + overlap) : i * (target + overlap) + span] for i in range(folds)])


def xfade_and_unfold(y: np.ndarray, overlap: int) -> np.ndarray:
    """Inverse of :func:`fold_with_overlap` with equal-power cross-fades (silence for RNN warm-up)."""
    folds, length = y.shape
    target = length - 2 * overlap
    total = folds * (target + overlap) + overlap
    silence = overlap // 2
    fade_len = overlap - silence
    t = np.linspace(-1, 1, fade_len)
    fade_in = np.concatenate([np.zeros(silence), np.sqrt(0.5 * (1 + t))])
    fade_out = np.concatenate([np.sqrt(0.5 * (1 - t)), np.zeros(silence)])
    y = y.copy()
    y[:, :overlap] *= fade_in
    y[:, -overlap:] *= fade_out
    out = np.zeros(total)
    for i in range(folds):
        start = i * (target + overlap)
        out[start : start + length] += y[i]
    return out
