"""Synthesis backends of the cloner: text + an enrolled voice → speech.

A backend does two things, with models loaded once in its constructor:

* :meth:`SynthesisBackend.enroll` turns a :class:`ReferenceVoice` (the reference audio and its
  GE2E embedding) into the backend's own voice description (a fitted style, an embedding...);
* :meth:`SynthesisBackend.synthesize` speaks text in an enrolled voice.

Backends are built by name through :func:`create_backend`; each loads its models in its
constructor, so importing them all is cheap. The shared types live in :mod:`services.cloner.voice`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.cloner.backends.kokoro_ge2e import KokoroGE2EBackend
from services.cloner.backends.piper_plain import PiperPlainBackend
from services.cloner.sv2tts.backend import SV2TTSBackend
from services.cloner.voice import ReferenceVoice, SynthesisBackend

__all__ = ["BACKENDS", "ReferenceVoice", "SynthesisBackend", "create_backend"]

if TYPE_CHECKING:
    from services.cloner.config import ClonerSettings
    from shared.speaker import SpeakerEncoder


BACKENDS = ("kokoro-ge2e", "piper", "sv2tts")


def create_backend(name: str, settings: ClonerSettings, speaker_encoder: SpeakerEncoder) -> SynthesisBackend:
    """Build the backend ``name`` (one of :data:`BACKENDS`).

    Each backend loads its own runtime (Kokoro/Piper ONNX graphs, torch checkpoints) when built,
    and a service builds only one of them.
    """
    if name == "kokoro-ge2e":
        return KokoroGE2EBackend(settings, speaker_encoder)
    if name == "piper":
        return PiperPlainBackend(settings)
    if name == "sv2tts":
        return SV2TTSBackend(settings)
    raise ValueError(f"unknown cloning backend {name!r}; choose from {', '.join(BACKENDS)}")
