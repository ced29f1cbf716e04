"""``sv2tts``: the three RTVC networks (encoder → Tacotron → WaveRNN) behind the backend API."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from services.cloner.voice import ReferenceVoice
from shared.audio import Audio, Hertz
from shared.offline_models import cache_dir, package_dir
from shared.progress import ProgressCallback

if TYPE_CHECKING:
    from services.cloner.config import ClonerSettings

CHECKPOINTS = ("encoder.pt", "synthesizer.pt", "vocoder.pt")


def default_checkpoint_dir() -> Path:
    return cache_dir() / "sv2tts"


class MissingCheckpointError(RuntimeError):
    """RTVC checkpoints are absent; the message says how to get them."""


class SV2TTSModels:
    """The three RTVC networks, loaded once."""

    def __init__(self, checkpoint_dir: Path, threads: int | None = None) -> None:
        # torch and the torch networks load only when this backend is chosen.
        import torch

        from services.cloner.sv2tts.encoder import SpeakerEncoder
        from services.cloner.sv2tts.synthesizer import Tacotron
        from services.cloner.sv2tts.vocoder import WaveRNN

        if threads:
            torch.set_num_threads(threads)
        missing = [name for name in CHECKPOINTS[1:] if not (checkpoint_dir / name).exists()]
        if missing:
            raise MissingCheckpointError(
                f"the sv2tts backend needs {', '.join(missing)} in {checkpoint_dir}; "
                "run `vcfad models download sv2tts` (network) or set VCFAD_CLONER_SV2TTS_DIR"
            )
        encoder_path = checkpoint_dir / "encoder.pt"
        if not encoder_path.exists():
            # resemblyzer ships the same GE2E checkpoint layout (and file size) as RTVC's encoder.pt.
            encoder_path = package_dir("resemblyzer") / "pretrained.pt"
        self.encoder = SpeakerEncoder.from_checkpoint(encoder_path)
        self.synthesizer = Tacotron.from_checkpoint(checkpoint_dir / "synthesizer.pt")
        self.vocoder = WaveRNN.from_checkpoint(checkpoint_dir / "vocoder.pt")


class SV2TTSBackend:
    """RTVC's SV2TTS: its own encoder's embedding conditions Tacotron; WaveRNN makes the waveform."""

    name = "sv2tts"

    def __init__(self, settings: ClonerSettings) -> None:
        checkpoints = settings.sv2tts_dir or default_checkpoint_dir()
        self.models = SV2TTSModels(checkpoints, settings.threads)
        self.synthesizer_id = f"{self.name}-{checkpoints.resolve()}"

    @property
    def sample_rate_hz(self) -> Hertz:
        return 16_000

    def enroll(self, voice: ReferenceVoice, progress: ProgressCallback | None = None) -> np.ndarray:
        from resemblyzer.audio import normalize_volume, trim_long_silences  # optional; loads librosa, webrtcvad

        embeddings = []
        for clip in voice.clips:
            wav = normalize_volume(clip.resample(16_000).samples, -30, increase_only=True)
            embeddings.append(self.models.encoder.embed_utterance(trim_long_silences(wav)))
        mean = np.mean(embeddings, axis=0)
        return (mean / np.linalg.norm(mean)).astype(np.float32)

    def synthesize(self, enrolled: np.ndarray, text: str, progress: ProgressCallback | None = None) -> Audio:
        # RTVC synthesises sentence by sentence (Tacotron's attention degrades on long inputs).
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
        gap = np.zeros(int(0.15 * 16_000), np.float32)
        parts: list[np.ndarray] = []
        for index, sentence in enumerate(sentences):
            mel = self.models.synthesizer.synthesize(sentence, enrolled)
            if progress:
                progress((index + 0.3) / len(sentences), "synthesizing mels")
            wav = self.models.vocoder.generate(mel)
            parts += [wav, gap]
            if progress:
                progress((index + 1) / len(sentences), "vocoding")
        samples = np.concatenate(parts[:-1]) if parts else np.zeros(0, np.float32)
        peak = float(np.max(np.abs(samples))) if samples.size else 0.0
        if peak > 0:
            samples = samples * np.float32(0.97 / peak)
        return Audio(samples, 16_000)
