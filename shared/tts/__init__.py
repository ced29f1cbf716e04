"""Text-to-speech engines behind one protocol.

Every engine turns text into :class:`shared.audio.Audio` at its own native sample rate::

    from shared.tts.piper import PiperTTS
    from shared.tts.kokoro import KokoroTTS

    audio = PiperTTS(noise_scale=0.5).synthesize("Hello there.")      # 22.05 kHz
    audio = KokoroTTS(voice="jf_alpha").synthesize("Hello there.")    # 24 kHz

Engines load their model once in the constructor (no module-global state); keep one instance
per process and call :meth:`TextToSpeech.synthesize` as often as needed.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from shared.audio import Audio, Hertz
from shared.text import collapse_whitespace


class TextToSpeechError(ValueError):
    """Text an engine cannot speak (empty, or nothing pronounceable); the message says why."""


@runtime_checkable
class TextToSpeech(Protocol):
    """A text-to-speech engine."""

    @property
    def sample_rate_hz(self) -> Hertz:
        """The engine's native output rate."""
        ...

    def synthesize(self, text: str) -> Audio:
        """Speak ``text``; raises :class:`TextToSpeechError` for text with nothing to say."""
        ...


def check_text(text: str) -> str:
    """``text`` with its whitespace collapsed; refused when empty (shared by the engines).

    Engines speak any text with something pronounceable in it; what a cloning job may speak is
    the stricter rule of :func:`shared.text.clone_text`.
    """
    if not isinstance(text, str):
        raise TextToSpeechError(f"text must be a string; got {type(text).__name__}")
    stripped = collapse_whitespace(text)
    if not stripped:
        raise TextToSpeechError("the text is empty")
    return stripped


__all__ = ["TextToSpeech", "TextToSpeechError", "check_text"]
