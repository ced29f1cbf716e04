"""RTVC's Tacotron synthesizer (``synthesizer.pt``): characters + speaker embedding → 80-band mels.

Tacotron 1 layout with SV2TTS conditioning: character embedding → pre-net → CBHG encoder; the
256-d speaker embedding is concatenated to every encoder output; a location-sensitive attention
decoder (GRU attention RNN + two residual LSTMs) emits r = 2 mel frames per step with a stop
token; a CBHG post-net refines the mels. Mels are in RTVC's symmetric [-4, 4] dB scale, 16 kHz,
hop 200 (12.5 ms), window 800, fmin 55 Hz, fmax 7600 Hz, pre-emphasis 0.97.

Parameter names follow the published checkpoint exactly, so its state dict loads strictly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.signal import lfilter
from torch import nn

from services.cloner.sv2tts.encoder import load_model_state
from services.cloner.sv2tts.text import SYMBOLS, text_to_sequence


@dataclass(frozen=True)
class SynthesizerHParams:
    sample_rate_hz: int = 16_000
    n_fft: int = 800
    hop_size: int = 200
    win_size: int = 800
    num_mels: int = 80
    fmin_hz: float = 55.0
    fmax_hz: float = 7600.0
    min_level_db: float = -100.0
    ref_level_db: float = 20.0
    max_abs_value: float = 4.0
    preemphasis: float = 0.97
    embed_dims: int = 512
    encoder_dims: int = 256
    decoder_dims: int = 128
    postnet_dims: int = 512
    encoder_k: int = 5
    lstm_dims: int = 1024
    postnet_k: int = 5
    num_highways: int = 4
    dropout: float = 0.5
    stop_threshold: float = -3.4
    speaker_embedding_size: int = 256
    reduction_factor: int = 2
    max_r: int = 20


class HighwayNetwork(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.W1 = nn.Linear(size, size)
        self.W2 = nn.Linear(size, size)
        self.W1.bias.data.fill_(0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.W2(x))
        return gate * F.relu(self.W1(x)) + (1.0 - gate) * x


class BatchNormConv(nn.Module):
    """Conv1d (same padding, no bias) → optional ReLU → BatchNorm (RTVC's order)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=1, padding=kernel // 2, bias=False)
        self.bnorm = nn.BatchNorm1d(out_channels)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.bnorm(F.relu(x) if self.relu else x)


class CBHG(nn.Module):
    """Conv bank (k = 1..K) → max-pool → two projections + residual → highways → bi-GRU."""

    def __init__(self, k: int, in_channels: int, channels: int, proj_channels: list[int], num_highways: int) -> None:
        super().__init__()
        self.conv1d_bank = nn.ModuleList([BatchNormConv(in_channels, channels, kernel) for kernel in range(1, k + 1)])
        self.maxpool = nn.MaxPool1d(kernel_size=2, stride=1, padding=1)
        self.conv_project1 = BatchNormConv(k * channels, proj_channels[0], 3)
        self.conv_project2 = BatchNormConv(proj_channels[0], proj_channels[1], 3, relu=False)
        self.highway_mismatch = proj_channels[-1] != channels
        if self.highway_mismatch:
            self.pre_highway = nn.Linear(proj_channels[-1], channels, bias=False)
        self.highways = nn.ModuleList([HighwayNetwork(channels) for _ in range(num_highways)])
        self.rnn = nn.GRU(channels, channels // 2, batch_first=True, bidirectional=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, channels_in, time) → (batch, time, channels)."""
        residual = x
        length = x.size(-1)
        bank = torch.cat([conv(x)[:, :, :length] for conv in self.conv1d_bank], dim=1)
        x = self.maxpool(bank)[:, :, :length]
        x = self.conv_project2(self.conv_project1(x)) + residual
        x = x.transpose(1, 2)
        if self.highway_mismatch:
            x = self.pre_highway(x)
        for highway in self.highways:
            x = highway(x)
        x, _ = self.rnn(x)
        return x


class PreNet(nn.Module):
    """Two ReLU layers with dropout that stays on at inference (Tacotron's source of variation)."""

    def __init__(self, in_dims: int, fc1_dims: int = 256, fc2_dims: int = 128, dropout: float = 0.5) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_dims, fc1_dims)
        self.fc2 = nn.Linear(fc1_dims, fc2_dims)
        self.p = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(F.relu(self.fc1(x)), self.p, training=True)
        return F.dropout(F.relu(self.fc2(x)), self.p, training=True)


class Encoder(nn.Module):
    def __init__(self, embed_dims: int, num_chars: int, encoder_dims: int, k: int, num_highways: int, dropout: float):
        super().__init__()
        self.embedding = nn.Embedding(num_chars, embed_dims)
        self.pre_net = PreNet(embed_dims, fc1_dims=encoder_dims, fc2_dims=encoder_dims, dropout=dropout)
        self.cbhg = CBHG(k, encoder_dims, encoder_dims, [encoder_dims, encoder_dims], num_highways)

    def forward(self, chars: torch.Tensor, speaker_embedding: torch.Tensor) -> torch.Tensor:
        """(batch, chars) ids + (batch, 256) embedding → (batch, chars, encoder_dims + 256)."""
        x = self.pre_net(self.embedding(chars)).transpose(1, 2)
        x = self.cbhg(x)
        # SV2TTS: the same speaker embedding next to every character's encoding.
        tiled = speaker_embedding.unsqueeze(1).expand(-1, x.size(1), -1)
        return torch.cat([x, tiled], dim=2)


class LSA(nn.Module):
    """Location-sensitive attention over the encoder outputs (cumulative weights as location)."""

    def __init__(self, attn_dim: int, kernel_size: int = 31, filters: int = 32) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, filters, padding=(kernel_size - 1) // 2, kernel_size=kernel_size, bias=True)
        self.L = nn.Linear(filters, attn_dim, bias=False)
        self.W = nn.Linear(attn_dim, attn_dim, bias=True)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def forward(
        self, encoder_seq_proj: torch.Tensor, query: torch.Tensor, cumulative: torch.Tensor, chars: torch.Tensor
    ) -> torch.Tensor:
        processed_query = self.W(query).unsqueeze(1)
        processed_location = self.L(self.conv(cumulative.unsqueeze(1)).transpose(1, 2))
        u = self.v(torch.tanh(processed_query + encoder_seq_proj + processed_location)).squeeze(-1)
        u = u * (chars != 0).float()  # as published: padding scores zeroed (not -inf)
        return F.softmax(u, dim=1)


class Decoder(nn.Module):
    r: torch.Tensor  # a registered buffer (the reduction factor), typed for the checker

    def __init__(self, hp: SynthesizerHParams) -> None:
        super().__init__()
        self.register_buffer("r", torch.tensor(1, dtype=torch.int))
        self.n_mels = hp.num_mels
        self.max_r = hp.max_r
        context_dims = hp.encoder_dims + hp.speaker_embedding_size
        prenet_dims = (hp.decoder_dims * 2, hp.decoder_dims * 2)
        self.prenet = PreNet(hp.num_mels, fc1_dims=prenet_dims[0], fc2_dims=prenet_dims[1], dropout=hp.dropout)
        self.attn_net = LSA(hp.decoder_dims)
        self.attn_rnn = nn.GRUCell(context_dims + prenet_dims[1], hp.decoder_dims)
        self.rnn_input = nn.Linear(context_dims + hp.decoder_dims, hp.lstm_dims)
        self.res_rnn1 = nn.LSTMCell(hp.lstm_dims, hp.lstm_dims)
        self.res_rnn2 = nn.LSTMCell(hp.lstm_dims, hp.lstm_dims)
        self.mel_proj = nn.Linear(hp.lstm_dims, hp.num_mels * hp.max_r, bias=False)
        self.stop_proj = nn.Linear(context_dims + hp.lstm_dims, 1)


class Tacotron(nn.Module):
    """The SV2TTS synthesizer; :meth:`generate` is inference (teacher-forced training is not needed)."""

    def __init__(self, hparams: SynthesizerHParams | None = None) -> None:
        super().__init__()
        self.hparams = hp = hparams or SynthesizerHParams()
        self.encoder = Encoder(hp.embed_dims, len(SYMBOLS), hp.encoder_dims, hp.encoder_k, hp.num_highways, hp.dropout)
        self.encoder_proj = nn.Linear(hp.encoder_dims + hp.speaker_embedding_size, hp.decoder_dims, bias=False)
        self.decoder = Decoder(hp)
        self.postnet = CBHG(hp.postnet_k, hp.num_mels, hp.postnet_dims, [hp.postnet_dims, hp.num_mels], hp.num_highways)
        self.post_proj = nn.Linear(hp.postnet_dims, hp.num_mels, bias=False)
        self.register_buffer("step", torch.zeros(1, dtype=torch.long))
        self.register_buffer("stop_threshold", torch.tensor(hp.stop_threshold, dtype=torch.float32))
        self.decoder.r = torch.tensor(hp.reduction_factor, dtype=torch.int)
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    @property
    def r(self) -> int:
        return int(self.decoder.r.item())

    @torch.no_grad()
    def generate(
        self, chars: torch.Tensor, speaker_embedding: torch.Tensor, max_steps: int = 2000
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(batch, chars) + (batch, 256) → (post-net mels (batch, 80, frames), attention (batch, steps, chars)).

        Stops when every item's stop token exceeds 0.5 (after 10 frames) or at ``max_steps`` frames.
        """
        self.eval()
        hp, dec = self.hparams, self.decoder
        batch = chars.size(0)
        attn_hidden = torch.zeros(batch, hp.decoder_dims)
        rnn1 = (torch.zeros(batch, hp.lstm_dims), torch.zeros(batch, hp.lstm_dims))
        rnn2 = (torch.zeros(batch, hp.lstm_dims), torch.zeros(batch, hp.lstm_dims))
        context = torch.zeros(batch, hp.encoder_dims + hp.speaker_embedding_size)
        encoder_seq = self.encoder(chars, speaker_embedding)
        encoder_seq_proj = self.encoder_proj(encoder_seq)
        cumulative = torch.zeros(batch, chars.size(1))
        frame = torch.zeros(batch, hp.num_mels)  # <GO>
        r = self.r
        mels, scores_all = [], []
        for t in range(0, max_steps, r):
            prenet_out = dec.prenet(frame)
            attn_hidden = dec.attn_rnn(torch.cat([context, prenet_out], dim=-1), attn_hidden)
            scores = dec.attn_net(encoder_seq_proj, attn_hidden, cumulative, chars)
            cumulative = cumulative + scores
            context = (scores.unsqueeze(1) @ encoder_seq).squeeze(1)
            x = dec.rnn_input(torch.cat([context, attn_hidden], dim=1))
            rnn1 = dec.res_rnn1(x, rnn1)
            x = x + rnn1[0]
            rnn2 = dec.res_rnn2(x, rnn2)
            x = x + rnn2[0]
            out = dec.mel_proj(x).view(batch, hp.num_mels, dec.max_r)[:, :, :r]
            stop = torch.sigmoid(dec.stop_proj(torch.cat([x, context], dim=1)))
            mels.append(out)
            scores_all.append(scores.unsqueeze(1))
            frame = out[:, :, -1]
            if t > 10 and bool((stop > 0.5).all()):
                break
        mel = torch.cat(mels, dim=2)
        linear = self.post_proj(self.postnet(mel)).transpose(1, 2)
        return linear, torch.cat(scores_all, dim=1)

    def synthesize(self, text: str, speaker_embedding: np.ndarray, max_steps: int = 2000) -> np.ndarray:
        """Text + 256-d embedding → (80, frames) mels, trailing frames under the stop threshold trimmed."""
        chars = torch.tensor([text_to_sequence(text)], dtype=torch.long)
        embedding = torch.from_numpy(np.asarray(speaker_embedding, np.float32)).reshape(1, -1)
        mels, _ = self.generate(chars, embedding, max_steps=max_steps)
        mel = mels[0].numpy()
        while mel.shape[1] > 1 and np.max(mel[:, -1]) < self.hparams.stop_threshold:
            mel = mel[:, :-1]
        return mel

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> Tacotron:
        model = cls()
        load_model_state(model, path)
        return model.eval()


def griffin_lim(mel: np.ndarray, hp: SynthesizerHParams | None = None, iterations: int = 32) -> np.ndarray:
    """Fallback vocoder: RTVC mels → waveform by Griffin-Lim (no vocoder checkpoint needed)."""
    import librosa  # loads numba: only this fallback vocoder needs it

    hp = hp or SynthesizerHParams()
    db = (np.clip(mel, -hp.max_abs_value, hp.max_abs_value) + hp.max_abs_value) * -hp.min_level_db / (
        2 * hp.max_abs_value
    ) + hp.min_level_db
    amplitude = np.power(10.0, (db + hp.ref_level_db) * 0.05)
    basis = librosa.filters.mel(
        sr=hp.sample_rate_hz, n_fft=hp.n_fft, n_mels=hp.num_mels, fmin=hp.fmin_hz, fmax=hp.fmax_hz
    )
    linear = np.maximum(1e-10, np.linalg.pinv(basis) @ amplitude)
    wav = librosa.griffinlim(linear**1.5, n_iter=iterations, hop_length=hp.hop_size, win_length=hp.win_size)
    return lfilter([1], [1, -hp.preemphasis], wav).astype(np.float32)
