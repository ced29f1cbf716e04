"""What every copy-synthesis vocoder shares (trained and pretrained alike): the interface the
builder, the evaluation and the commands use (:class:`CopySynthesizer`), the copy step around a
vocoder (:func:`copy_through`) and the spectral distances vocoders are measured by."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from shared.audio import Audio, SilentAudioError

if TYPE_CHECKING:
    from services.detector.dataset.neural_vocoder_nets import VocoderConfig

REPO_ROOT = Path(__file__).resolve().parents[3]
#: The shared real speech (../shared/data) that vocoders are trained, measured and fitted on.
DEFAULT_SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


class CopySynthesizer(Protocol):
    """What evaluation, the copy command and the dataset builder need of a vocoder."""

    name: str
    #: Changes when the weights or the analysis change (part of the dataset build's resume key).
    content_id: str

    def copy_synthesize(self, audio: Audio) -> Audio:
        """Vocode ``audio`` from its own mel: as many seconds out as in."""
        ...


def copy_through(
    audio: Audio, sample_rate_hz: int, hop_length: int, waveform: Callable[[np.ndarray], np.ndarray]
) -> Audio:
    """Copy-synthesis around any vocoder: ``audio`` at the vocoder's rate, padded to whole hops,
    through ``waveform`` (samples → vocoded samples), trimmed to the input's length, non-finite
    values zeroed and clipped to [-1, 1]; returned at ``sample_rate_hz``.

    Raises
    ------
    SilentAudioError
        ``audio`` has no samples.
    """
    speech = audio.resample(sample_rate_hz)
    count = speech.num_samples
    if count == 0:
        raise SilentAudioError("copy-synthesis needs audio with samples; got an empty clip")
    wave = waveform(np.pad(speech.samples, (0, -count % hop_length)))[:count]
    wave = np.clip(np.nan_to_num(wave, nan=0.0, posinf=0.0, neginf=0.0), -1.0, 1.0)
    return Audio(wave.astype(np.float32), sample_rate_hz)


def spectral_distances(copy: Audio, original: Audio, config: VocoderConfig) -> dict[str, float]:
    """Log-mel L1 (``config``'s analysis) and multi-resolution STFT (convergence, log-magnitude L1)
    between two clips, both at ``config``'s rate."""
    # Torch and the vocoder networks load only when a distance is measured.
    import torch

    from services.detector.dataset.neural_vocoder_nets import LogMel, multi_resolution_stft_loss

    log_mel = LogMel(config)
    fake_audio, real_audio = copy.resample(config.sample_rate_hz), original.resample(config.sample_rate_hz)
    count = min(fake_audio.num_samples, real_audio.num_samples)
    fake = torch.from_numpy(fake_audio.samples[:count])[None]
    real = torch.from_numpy(real_audio.samples[:count])[None]
    with torch.no_grad():
        mel_l1 = float((log_mel(fake) - log_mel(real)).abs().mean())
        convergence, log_l1 = multi_resolution_stft_loss(fake, real)
    return {"mel_l1": mel_l1, "stft_sc": float(convergence), "stft_logmag": float(log_l1)}
