"""What every synthesis backend shares: the enrolled reference (:class:`ReferenceVoice`) and the
:class:`SynthesisBackend` protocol. A leaf below :mod:`services.cloner.backends`, so the backends and
the package that builds them by name import it without a cycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from shared.audio import Audio, Hertz
from shared.progress import ProgressCallback


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
    #: What makes this backend's speech (its name and model file): changes when either does, so
    #: what was fitted against its speech (the envelope stage) is fitted again.
    synthesizer_id: str

    @property
    def sample_rate_hz(self) -> Hertz: ...

    def enroll(self, voice: ReferenceVoice, progress: ProgressCallback | None = None) -> Any:
        """The backend's description of ``voice`` (cached by the caller per voice key)."""
        ...

    def synthesize(self, enrolled: Any, text: str, progress: ProgressCallback | None = None) -> Audio:
        """Speak ``text`` in the enrolled voice."""
        ...
