"""``piper``: the plain Piper joe voice, ignoring the reference (the no-cloning baseline row)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.cloner.voice import ReferenceVoice
from shared.audio import Audio, Hertz
from shared.progress import ProgressCallback
from shared.seeds import stable_int
from shared.tts.piper import PiperTTS

if TYPE_CHECKING:
    from services.cloner.config import ClonerSettings


class PiperPlainBackend:
    """Piper joe reading the text; the reference only passes through the encoder stage."""

    name = "piper"

    def __init__(self, settings: ClonerSettings) -> None:
        self._tts = PiperTTS(threads=settings.threads)
        self.synthesizer_id = f"{self.name}-{self._tts.model_path.stem}"

    @property
    def sample_rate_hz(self) -> Hertz:
        return self._tts.sample_rate_hz

    def enroll(self, voice: ReferenceVoice, progress: ProgressCallback | None = None) -> None:
        return None

    def synthesize(self, enrolled: None, text: str, progress: ProgressCallback | None = None) -> Audio:
        # Seeded by the text: the same request gives the same audio, as with the other backends.
        return self._tts.synthesize(text, seed=stable_int("piper-plain", text))
