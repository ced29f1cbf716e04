"""Networks, features and losses of the small neural vocoders (see ``neural_vocoder.py``).

Two artefact families, both mel → waveform at 16 kHz:

* ``hifigan``: a HiFi-GAN (V3-sized) generator — transposed-convolution upsampling with
  multi-receptive-field residual blocks, working at the sample rate.
* ``vocos``: a Vocos/iSTFTNet-style model — ConvNeXt blocks at the frame rate predict the STFT
  magnitude and phase of every frame, and an inverse STFT makes the waveform.

Everything here is torch; the module is imported only where a vocoder is used or trained.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import librosa
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ARCHITECTURES = ("hifigan", "vocos")


@dataclass
class VocoderConfig:
    """Everything needed to rebuild a vocoder's architecture and its input features.

    Saved as ``config.json`` next to the weights, so :meth:`NeuralVocoder.load` rebuilds the
    exact network that was trained.
    """

    name: str = "hifigan-s"
    arch: str = "hifigan"
    sample_rate_hz: int = 16_000
    # log-mel input (HiFi-GAN convention: magnitude mel, natural log, floor 1e-5)
    n_fft: int = 1024
    hop_length: int = 256
    win_length: int = 1024
    n_mels: int = 80
    fmin_hz: float = 0.0
    fmax_hz: float = 8000.0
    # hifigan
    upsample_initial_channels: int = 256
    upsample_rates: list[int] = field(default_factory=lambda: [8, 8, 4])
    upsample_kernel_sizes: list[int] = field(default_factory=lambda: [16, 16, 8])
    resblock_kernel_sizes: list[int] = field(default_factory=lambda: [3, 5, 7])
    resblock_dilations: list[list[int]] = field(default_factory=lambda: [[1, 2], [2, 6], [3, 12]])
    #: HiFi-GAN only: harmonics of the NSF excitation (the input's F0 from pyworld, plus noise) of
    #: the source-filter prior that the generator refines; 0 = plain HiFi-GAN, which was still
    #: unintelligible after ~10 min of (shared) CPU training.
    nsf_harmonics: int = 8
    # vocos
    dim: int = 256
    intermediate_dim: int = 768
    num_layers: int = 8
    #: Vocos only: predict the log-magnitude as a correction to the mel filterbank's pseudo-inverse
    #: (as FreeV, Lv et al. 2024), so only the fine structure and the phase have to be learned.
    magnitude_prior: bool = True

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown vocoder architecture {self.arch!r}; choose one of {ARCHITECTURES}")
        if self.arch == "hifigan" and int(np.prod(self.upsample_rates)) != self.hop_length:
            raise ValueError(
                f"the HiFi-GAN upsample rates {self.upsample_rates} multiply to "
                f"{int(np.prod(self.upsample_rates))}, not the hop length {self.hop_length}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VocoderConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"config.json has unknown keys {sorted(unknown)}")
        return cls(**data)


# -- features -----------------------------------------------------------------------------------
class LogMel(nn.Module):
    """Natural-log magnitude mel spectrogram; frame ``i`` is centred on sample ``i * hop``.

    A waveform of ``k * hop`` samples gives ``k + 1`` frames (``center=True``, reflect padding).
    """

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        self.n_fft, self.hop, self.win = config.n_fft, config.hop_length, config.win_length
        basis = librosa.filters.mel(
            sr=config.sample_rate_hz,
            n_fft=config.n_fft,
            n_mels=config.n_mels,
            fmin=config.fmin_hz,
            fmax=config.fmax_hz,
        )
        self.register_buffer("basis", torch.from_numpy(basis).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(config.win_length), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, n_mels, frames)
        spec = torch.stft(
            wave,
            n_fft=self.n_fft,
            hop_length=self.hop,
            win_length=self.win,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        magnitude = torch.sqrt(spec.real.square() + spec.imag.square() + 1e-9)
        return torch.log(torch.clamp(self.basis @ magnitude, min=1e-5))


def f0_track(wave: np.ndarray, config: VocoderConfig) -> np.ndarray:
    """F0 in Hz (0 where unvoiced) per mel frame of ``wave`` (a multiple of ``hop`` samples long).

    pyworld DIO + StoneMask with one frame per hop, so frame ``i`` is at sample ``i * hop`` like
    :class:`LogMel`'s frames.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Here, under catch_warnings: pyworld imports the deprecated pkg_resources, which warns.
        import pyworld

    signal = np.asarray(wave, dtype=np.float64)
    frames = len(signal) // config.hop_length + 1
    period_ms = 1000.0 * config.hop_length / config.sample_rate_hz
    f0, times = pyworld.dio(signal, config.sample_rate_hz, f0_floor=60.0, f0_ceil=500.0, frame_period=period_ms)
    f0 = pyworld.stonemask(signal, f0, times, config.sample_rate_hz)
    f0 = np.pad(f0, (0, max(0, frames - len(f0))))[:frames]
    return f0.astype(np.float32)


def batch_f0(waves: torch.Tensor, config: VocoderConfig) -> torch.Tensor:
    """:func:`f0_track` of each row of ``waves`` (B, T) → (B, frames)."""
    rows = waves.detach().cpu().numpy()
    return torch.from_numpy(np.stack([f0_track(row, config) for row in rows]))


def harmonic_excitation(f0: torch.Tensor, config: VocoderConfig, generator: torch.Generator | None) -> torch.Tensor:
    """NSF source: F0 and its harmonics (below Nyquist) where voiced, noise where not.

    ``f0`` (B, frames) in Hz → (B, (frames-1)*hop); sample ``i*hop`` takes frame ``i``'s F0.
    """
    hop = config.hop_length
    per_sample = f0.repeat_interleave(hop, dim=1)[:, : (f0.shape[1] - 1) * hop].unsqueeze(-1)  # (B, T, 1)
    harmonics = torch.arange(1, config.nsf_harmonics + 1, device=f0.device, dtype=f0.dtype)
    frequencies = per_sample * harmonics
    start = torch.rand(f0.shape[0], 1, len(harmonics), device=f0.device, generator=generator)
    phase = torch.cumsum(frequencies / config.sample_rate_hz, dim=1) + start
    audible = (frequencies < config.sample_rate_hz / 2).float()
    voiced = (per_sample[..., 0] > 0).float()
    sines = (torch.sin(2 * torch.pi * torch.frac(phase)) * audible).sum(-1)
    noise = torch.randn(sines.shape, device=f0.device, generator=generator)
    return sines * voiced + noise * (0.1 * voiced + (1 - voiced))


class _SourceFilterPrior(nn.Module):
    """A DSP first guess the generator refines: the excitation's STFT phase with the magnitude of the
    mel filterbank's pseudo-inverse (a crude source-filter vocoder)."""

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        self.config = config
        basis = librosa.filters.mel(
            sr=config.sample_rate_hz,
            n_fft=config.n_fft,
            n_mels=config.n_mels,
            fmin=config.fmin_hz,
            fmax=config.fmax_hz,
        )
        self.register_buffer("inverse_basis", torch.from_numpy(np.linalg.pinv(basis)).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(config.win_length), persistent=False)

    def forward(self, mel: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:  # -> (B, (frames-1)*hop)
        config = self.config
        # Random phases and noise while training; a fixed seed at inference, so copies are reproducible.
        generator = None if self.training else torch.Generator(device=mel.device).manual_seed(0)
        excitation = harmonic_excitation(f0, config, generator)
        stft = {
            "n_fft": config.n_fft,
            "hop_length": config.hop_length,
            "win_length": config.win_length,
            "window": self.window,
            "center": True,
        }
        spec = torch.stft(excitation, return_complex=True, **stft)
        phase = spec / torch.clamp(spec.abs(), min=1e-6)
        magnitude = torch.clamp(self.inverse_basis @ torch.exp(mel), min=0.0)
        return torch.istft(magnitude * phase, length=excitation.shape[-1], **stft)


# -- family A: HiFi-GAN generator ---------------------------------------------------------------
class _ResBlock2(nn.Module):
    """HiFi-GAN's light residual block: one dilated conv per dilation, each with a skip."""

    def __init__(self, channels: int, kernel_size: int, dilations: list[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=d * (kernel_size - 1) // 2)
            for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(F.leaky_relu(x, 0.1))
        return x


class HiFiGANGenerator(nn.Module):
    """HiFi-GAN (V3-sized); with ``nsf_harmonics > 0`` it refines a source-filter prior waveform,
    which is also fed, downsampled, to every upsampling stage (as NSF-HiFi-GAN feeds its source)."""

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        channels = config.upsample_initial_channels
        self.hop = config.hop_length
        self.conv_pre = nn.Conv1d(config.n_mels, channels, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        self.prior = _SourceFilterPrior(config) if config.nsf_harmonics > 0 else None
        self.source_convs = nn.ModuleList()
        for index, (rate, kernel) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True)):
            self.ups.append(
                nn.ConvTranspose1d(channels, channels // 2, kernel, stride=rate, padding=(kernel - rate) // 2)
            )
            channels //= 2
            if self.prior is not None:  # brings the prior down to this stage's rate
                stride = int(np.prod(config.upsample_rates[index + 1 :]))
                self.source_convs.append(
                    nn.Conv1d(1, channels, 2 * stride, stride=stride, padding=stride // 2)
                    if stride > 1
                    else nn.Conv1d(1, channels, 1)
                )
            self.resblocks.append(
                nn.ModuleList(
                    _ResBlock2(channels, k, d)
                    for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilations, strict=True)
                )
            )
        self.conv_post = nn.Conv1d(channels, 1, 7, padding=3)
        if self.prior is not None:  # start as the prior itself: zero correction
            nn.init.zeros_(self.conv_post.weight)
            nn.init.zeros_(self.conv_post.bias)

    def forward(self, mel: torch.Tensor, f0: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_mels, k+1) log-mel [+ (B, k+1) F0 in Hz with the prior] → (B, k*hop) waveform."""
        # Output block i starts at sample i*hop while mel frame i is centred there: the network's
        # output is shifted by half a hop (and one frame longer) to line the two up.
        half = self.hop // 2
        samples = (mel.shape[-1] - 1) * self.hop
        x = self.conv_pre(mel)
        source = None
        if self.prior is not None:
            if f0 is None:
                raise ValueError("this HiFi-GAN refines a source-filter prior: pass the F0 track (batch_f0)")
            prior = self.prior(mel, f0)
            source = F.pad(prior, (half, self.hop - half)).unsqueeze(1)
        for index, (up, blocks) in enumerate(zip(self.ups, self.resblocks, strict=True)):
            x = up(F.leaky_relu(x, 0.1))
            if source is not None:
                x = x + self.source_convs[index](source)
            x = sum(block(x) for block in blocks) / len(blocks)
        residual = self.conv_post(F.leaky_relu(x, 0.1)).squeeze(1)[:, half : half + samples]
        if self.prior is None:
            return torch.tanh(residual)
        return prior + residual


# -- family B: Vocos-style ConvNeXt + iSTFT --------------------------------------------------------
class _ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int, intermediate_dim: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, T)
        residual = x
        x = self.norm(self.dwconv(x).transpose(1, 2))
        x = self.pwconv2(F.gelu(self.pwconv1(x))) * self.gamma
        return residual + x.transpose(1, 2)


class VocosGenerator(nn.Module):
    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        self.n_fft, self.hop, self.win = config.n_fft, config.hop_length, config.win_length
        self.embed = nn.Conv1d(config.n_mels, config.dim, kernel_size=7, padding=3)
        self.norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.blocks = nn.ModuleList(
            _ConvNeXtBlock(config.dim, config.intermediate_dim, 1.0 / config.num_layers)
            for _ in range(config.num_layers)
        )
        self.final_norm = nn.LayerNorm(config.dim, eps=1e-6)
        self.head = nn.Linear(config.dim, config.n_fft + 2)  # log-magnitude and phase per bin
        self.register_buffer("window", torch.hann_window(config.win_length), persistent=False)
        self.magnitude_prior = config.magnitude_prior
        if self.magnitude_prior:
            basis = librosa.filters.mel(
                sr=config.sample_rate_hz,
                n_fft=config.n_fft,
                n_mels=config.n_mels,
                fmin=config.fmin_hz,
                fmax=config.fmax_hz,
            )
            self.register_buffer("inverse_basis", torch.from_numpy(np.linalg.pinv(basis)).float(), persistent=False)
            with torch.no_grad():  # start from the prior: zero correction
                self.head.weight[: config.n_fft // 2 + 1].zero_()
                self.head.bias[: config.n_fft // 2 + 1].zero_()

    def forward(self, mel: torch.Tensor, f0: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n_mels, k+1) log-mel → (B, k*hop) waveform (``f0`` is unused)."""
        x = self.norm(self.embed(mel).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        x = self.head(self.final_norm(x.transpose(1, 2))).transpose(1, 2)
        log_magnitude, phase = x.chunk(2, dim=1)
        if self.magnitude_prior:
            prior = self.inverse_basis @ torch.exp(mel)
            log_magnitude = log_magnitude + torch.log(torch.clamp(prior, min=1e-5))
        magnitude = torch.exp(torch.clamp(log_magnitude, max=6.0))
        spec = torch.polar(magnitude, phase)
        # center=True: frame i is centred on sample i*hop, as in LogMel, so k+1 frames give k*hop samples.
        return torch.istft(
            spec,
            n_fft=self.n_fft,
            hop_length=self.hop,
            win_length=self.win,
            window=self.window,
            center=True,
            length=(mel.shape[-1] - 1) * self.hop,
        )


def build_generator(config: VocoderConfig) -> nn.Module:
    return HiFiGANGenerator(config) if config.arch == "hifigan" else VocosGenerator(config)


def needs_f0(config: VocoderConfig) -> bool:
    return config.arch == "hifigan" and config.nsf_harmonics > 0


def vocode(generator: nn.Module, log_mel: LogMel, wave: torch.Tensor, config: VocoderConfig) -> torch.Tensor:
    """Copy-synthesis of ``wave`` (B, k*hop): its log-mel (and F0 for NSF) through ``generator``."""
    f0 = batch_f0(wave, config) if needs_f0(config) else None
    return generator(log_mel(wave), f0)


# -- losses -------------------------------------------------------------------------------------
#: (n_fft, hop, win) of the multi-resolution STFT loss (Parallel WaveGAN's, which suit 16 kHz too).
STFT_RESOLUTIONS = ((512, 50, 240), (1024, 120, 600), (2048, 240, 1200))


def _magnitude(wave: torch.Tensor, n_fft: int, hop: int, win: int) -> torch.Tensor:
    spec = torch.stft(
        wave,
        n_fft=n_fft,
        hop_length=hop,
        win_length=win,
        window=torch.hann_window(win, device=wave.device),
        center=True,
        return_complex=True,
    )
    return torch.sqrt(torch.clamp(spec.real.square() + spec.imag.square(), min=1e-7))


def multi_resolution_stft_loss(fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean spectral convergence and mean log-magnitude L1 over :data:`STFT_RESOLUTIONS`."""
    convergence = fake.new_zeros(())
    log_l1 = fake.new_zeros(())
    for n_fft, hop, win in STFT_RESOLUTIONS:
        fake_mag, real_mag = _magnitude(fake, n_fft, hop, win), _magnitude(real, n_fft, hop, win)
        convergence = convergence + torch.linalg.norm(real_mag - fake_mag) / torch.linalg.norm(real_mag)
        log_l1 = log_l1 + F.l1_loss(torch.log(fake_mag), torch.log(real_mag))
    count = len(STFT_RESOLUTIONS)
    return convergence / count, log_l1 / count


def vocoder_loss(fake: torch.Tensor, real: torch.Tensor, log_mel: LogMel) -> dict[str, torch.Tensor]:
    """The training objective: mel L1 + multi-resolution STFT (convergence + log magnitude)."""
    mel_l1 = F.l1_loss(log_mel(fake), log_mel(real))
    convergence, log_l1 = multi_resolution_stft_loss(fake, real)
    total = 2.0 * mel_l1 + convergence + log_l1
    return {"total": total, "mel_l1": mel_l1, "stft_sc": convergence, "stft_logmag": log_l1}
