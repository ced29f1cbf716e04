"""Synthesis backends of the cloner: text + an enrolled voice → speech.

A backend does two things, with models loaded once in its constructor:

* :meth:`SynthesisBackend.enroll` turns a :class:`ReferenceVoice` (the reference audio and its
  GE2E embedding) into the backend's own voice description (a fitted style, an embedding...);
* :meth:`SynthesisBackend.synthesize` speaks text in an enrolled voice.

Backends are built by name through :func:`create_backend` (imports are lazy, so choosing
``piper`` never loads torch models it does not need).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from shared.audio import Audio, Hertz
from shared.progress import ProgressCallback

if TYPE_CHECKING:
    from services.cloner.config import ClonerSettings
    from shared.speaker import SpeakerEncoder


@dataclass(frozen=True)
class ReferenceVoice:
    """What the encoder stage knows about the reference speaker."""

    #: The reference clips (16 kHz, trimmed, loudness-normalised), in the order given.
    clips: tuple[Audio, ...]
    #: GE2E d-vector of the speaker: the clips' d-vectors averaged ("long audio" = all merged).
    embedding: np.ndarray
    #: A content hash of the clips, for caching fitted voices.
    key: str
    #: Extra statistics some backends use (e.g. the reference's median F0).
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return sum(clip.duration_s for clip in self.clips)


class SynthesisBackend(Protocol):
    """Text + enrolled voice → speech."""

    name: str

    @property
    def sample_rate_hz(self) -> Hertz: ...

    def enroll(self, voice: ReferenceVoice, progress: ProgressCallback | None = None) -> Any:
        """The backend's description of ``voice`` (cached by the caller per voice key)."""
        ...

    def synthesize(self, enrolled: Any, text: str, progress: ProgressCallback | None = None) -> Audio:
        """Speak ``text`` in the enrolled voice."""
        ...


BACKENDS = ("kokoro-ge2e", "piper", "sv2tts")


def create_backend(name: str, settings: ClonerSettings, speaker_encoder: SpeakerEncoder) -> SynthesisBackend:
    """Build the backend ``name`` (one of :data:`BACKENDS`).

    Each backend's module is imported here, on demand: they load different heavy runtimes
    (Kokoro/Piper ONNX graphs, torch checkpoints), and a service runs only one of them.
    """
    if name == "kokoro-ge2e":
        from services.cloner.backends.kokoro_ge2e import KokoroGE2EBackend

        return KokoroGE2EBackend(settings, speaker_encoder)
    if name == "piper":
        from services.cloner.backends.piper_plain import PiperPlainBackend

        return PiperPlainBackend(settings)
    if name == "sv2tts":
        from services.cloner.sv2tts.backend import SV2TTSBackend

        return SV2TTSBackend(settings)
    raise ValueError(f"unknown cloning backend {name!r}; choose from {', '.join(BACKENDS)}")
