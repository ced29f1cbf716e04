"""The cloner: reference recordings + text → speech in the reference speaker's voice.

SV2TTS in three swappable stages, each a small class with one job:

1. :class:`~services.cloner.encoder.ReferenceEncoder` — reference audio → GE2E speaker embedding;
2. a synthesis backend (:mod:`services.cloner.backends`) — enrolls the voice once (cached per
   reference set) and speaks text in it; its vocoder is part of the backend; then, when
   ``envelope_fit`` is on, the envelope stage (:mod:`services.cloner.envelope`: the speaker's
   envelope phone by phone, fitted once per voice);
3. output — the reference's recording channel (:mod:`shared.channel`: long-term
   spectrum and room tone; on by default), the requested rate and loudness, then the provenance
   watermark (:mod:`shared.watermark`; on unless ``VCFAD_CLONER_WATERMARK=false``, research only).

::

    cloner = Cloner.from_settings()                 # loads every model once
    audio = cloner.clone(["a.wav", "b.wav"], "Text to read.", progress=print)
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.cloner.backends import create_backend
from services.cloner.config import ClonerSettings
from services.cloner.encoder import NoSpeechError, ReferenceEncoder
from services.cloner.envelope import EnvelopeCorrection, EnvelopeFitter, EnvelopeSettings
from services.cloner.voice import ReferenceVoice, SynthesisBackend
from shared.audio import Audio, AudioFile
from shared.channel import ChannelMatcher, ChannelProfile
from shared.progress import ProgressCallback
from shared.seeds import stable_int
from shared.text import CloneTextError, clone_text
from shared.tts import TextToSpeechError
from shared.watermark import Watermarker, make_payload

logger = logging.getLogger(__name__)


class CloneInputError(ValueError):
    """Input the cloner cannot use (bad text, no speech in the reference...); the message says why."""


def _quiet(fraction: float, stage: str) -> None:
    return None


@dataclass(frozen=True)
class Enrollment:
    """An enrolled voice: the backend's description of it and the reference's channel."""

    key: str
    voice: Any
    #: The reference's recording channel (always profiled: milliseconds; applied when asked).
    channel: ChannelProfile
    #: The envelope stage fitted to this voice (None when the stage is off or found too little speech).
    envelope: EnvelopeCorrection | None = None


class Cloner:
    """Clones a voice: :meth:`clone` (reference files + text → :class:`Audio`).

    Build it once per process with :meth:`from_settings`; enrolled voices are kept in a small
    in-memory cache (and on disk by backends that fit something), so cloning many texts with the
    same references pays for the enrollment once.
    """

    def __init__(
        self,
        settings: ClonerSettings,
        encoder: ReferenceEncoder,
        backend: SynthesisBackend,
        max_cached_voices: int = 32,
        watermarker: Watermarker | None = None,
        envelope_fitter: EnvelopeFitter | None = None,
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.backend = backend
        #: Fits the envelope stage per voice; None = the stage is off.
        self.envelope_fitter = envelope_fitter
        #: Marks every clone; None only when ``settings.watermark`` is off (research).
        self.watermarker: Watermarker | None = None
        if settings.watermark:
            self.watermarker = watermarker or Watermarker.from_settings()
        else:
            logger.warning("clones are NOT watermarked (VCFAD_CLONER_WATERMARK=false): for research only")
        self.channel_matcher = ChannelMatcher(max_gain_db=settings.channel_max_gain_db)
        self._voices: OrderedDict[str, Enrollment] = OrderedDict()
        self._max_cached_voices = max_cached_voices

    @classmethod
    def from_settings(cls, settings: ClonerSettings | None = None) -> Cloner:
        """Load the encoder and the configured backend (``settings.backend``) once."""
        settings = settings or ClonerSettings()
        import torch  # heavy: only a process that clones pays for it

        torch.set_num_threads(settings.threads)
        encoder = ReferenceEncoder(
            max_duration_s=settings.max_reference_duration_s,
            min_speech_s=settings.min_reference_speech_s,
            threads=settings.threads,
        )
        backend = create_backend(settings.backend, settings, encoder.speaker_encoder)
        return cls(settings, encoder, backend, envelope_fitter=envelope_fitter(settings))

    @property
    def backend_name(self) -> str:
        return self.backend.name

    # -- validation ---------------------------------------------------------------------------
    def check_text(self, text: str) -> str:
        """``text`` in normal form by the clone-text rule (:func:`shared.text.clone_text`), the gateway's rule."""
        try:
            return clone_text(text, self.settings.max_text_chars)
        except CloneTextError as error:
            raise CloneInputError(str(error)) from None

    # -- stages -------------------------------------------------------------------------------
    def encode(self, references: Sequence[AudioFile]) -> ReferenceVoice:
        """Stage 1: load and embed the references (raises AudioError / CloneInputError)."""
        try:
            return self.encoder(references)
        except NoSpeechError as error:
            raise CloneInputError(str(error)) from None

    def enroll(self, voice: ReferenceVoice, progress: ProgressCallback | None = None) -> Enrollment:
        """Stage 2a: the backend's description of the voice and its channel, cached by the references' content."""
        if voice.key in self._voices:
            self._voices.move_to_end(voice.key)
            return self._voices[voice.key]
        channel = self.channel_matcher.profile(voice.clips)
        share = 0.5 if self.envelope_fitter is not None else 1.0  # of the enrollment's progress
        fitted = self.backend.enroll(voice, (lambda f, s: progress(share * f, s)) if progress else None)
        envelope = None
        if self.envelope_fitter is not None:
            # The voice id names both the synthesizer's voice and the reference: either changing refits.
            fitted_id = hashlib.sha256(pickle.dumps(fitted)).hexdigest()
            voice_id = f"{self.backend.synthesizer_id}|{voice.key}|{fitted_id}"
            envelope = self.envelope_fitter.fit(
                voice.clips,
                lambda words: self.backend.synthesize(fitted, words),
                voice_id,
                (lambda f, s: progress(0.5 + 0.5 * f, s)) if progress else None,
            )
        enrolled = Enrollment(voice.key, fitted, channel, envelope)
        self._voices[voice.key] = enrolled
        while len(self._voices) > self._max_cached_voices:
            self._voices.popitem(last=False)
        return enrolled

    def clone(
        self,
        references: Sequence[AudioFile],
        text: str,
        progress: ProgressCallback | None = None,
        match_channel: bool | None = None,
    ) -> Audio:
        """Speak ``text`` in the voice of ``references`` (one or several recordings of one speaker).

        Parameters
        ----------
        references
            Paths, bytes or binary files (WAV, FLAC, MP3, OGG); several = "long" reference audio.
        text
            What to say (at most ``settings.max_text_chars`` characters).
        progress
            Called with (fraction 0..1, stage name) as the job advances.
        match_channel
            Give the clone the references' recording channel (long-term spectrum and room tone);
            None = ``settings.match_channel``.

        Raises
        ------
        CloneInputError
            Empty or over-long text; no speech in the references.
        shared.audio.AudioError
            A reference that is unreadable, silent, too short or too long.
        """
        report = progress or _quiet
        text = self.check_text(text)
        report(0.0, "encoding reference")
        voice = self.encode(references)
        report(0.15, "enrolling voice")
        enrolled = self.enroll(voice, lambda f, s: report(0.15 + 0.45 * f, s))
        report(0.6, "synthesizing")
        audio = self.speak(enrolled, text, lambda f, s: report(0.6 + 0.35 * f, s), match_channel)
        report(1.0, "done")  # speak() reported "finishing" at 0.95
        return audio

    def synthesize(self, enrolled: Enrollment, text: str, progress: ProgressCallback | None = None) -> Audio:
        """Stage 2b: ``text`` in the enrolled voice (the backend, then the envelope stage when fitted),
        before the channel, rate, loudness and watermark of :meth:`finish`."""
        try:
            audio = self.backend.synthesize(enrolled.voice, text, progress)
        except TextToSpeechError as error:
            raise CloneInputError(str(error)) from None
        return enrolled.envelope.apply(audio) if enrolled.envelope is not None else audio

    def speak(
        self,
        enrolled: Enrollment,
        text: str,
        progress: ProgressCallback | None = None,
        match_channel: bool | None = None,
    ) -> Audio:
        """Stages 2b and 3 for an enrolled voice: :meth:`synthesize` ``text``, then :meth:`finish` it."""
        audio = self.synthesize(enrolled, text, progress)
        if progress is not None:
            progress(1.0, "finishing")
        if match_channel is None:
            match_channel = self.settings.match_channel
        return self.finish(audio, enrolled if match_channel else None, text)

    def finish(self, audio: Audio, enrolled: Enrollment | None = None, text: str = "") -> Audio:
        """Stage 3: the reference's channel (when ``enrolled`` is given), output rate (≥ 16 kHz) and
        loudness, then the watermark (payload: the key id and a hash of the voice and the text)."""
        if enrolled is not None:
            audio = self.channel_matcher.apply(audio, enrolled.channel, seed=stable_int(enrolled.key, text))
        rate = self.settings.output_sample_rate_hz or max(audio.sample_rate_hz, 16_000)
        audio = audio.resample(rate).normalize_loudness(-23.0)
        if self.watermarker is None:
            return audio
        job = f"{enrolled.key if enrolled is not None else ''}\x1f{text}"
        return self.watermarker.embed(audio, make_payload(self.watermarker.key, job))


def envelope_fitter(settings: ClonerSettings) -> EnvelopeFitter | None:
    """The envelope stage's fitter as ``settings`` ask for it (None when ``envelope_fit`` is off)."""
    if not settings.envelope_fit:
        return None
    stage = EnvelopeSettings(
        neighbours=settings.envelope_neighbours,
        max_gain_db=settings.envelope_max_gain_db,
        max_reference_s=settings.envelope_max_reference_s,
    )
    return EnvelopeFitter(stage, settings.voices_dir(), threads=settings.threads)
