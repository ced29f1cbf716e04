"""Stage 1 of SV2TTS: reference audio → a speaker embedding (GE2E, resemblyzer weights)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from services.cloner.voice import ReferenceVoice
from shared.audio import Audio, AudioFile, LoadPolicy, load_audio
from shared.speaker import SpeakerEncoder
from shared.voice_analysis import analyse_voice


class NoSpeechError(ValueError):
    """The reference holds no (or too little) speech."""


class ReferenceEncoder:
    """Loads reference files and embeds the speaker (one clip, or several merged).

    Parameters
    ----------
    max_duration_s
        Longest reference accepted, per file and in total.
    min_speech_s
        Least voiced speech (webrtcvad) the references must hold together.
    threads
        torch threads for the encoder.
    """

    def __init__(self, max_duration_s: float = 300.0, min_speech_s: float = 0.5, threads: int | None = None):
        self.policy = LoadPolicy(max_duration_s=max_duration_s, min_duration_s=0.5)
        self.max_duration_s = max_duration_s
        self.min_speech_s = min_speech_s
        self.speaker_encoder = SpeakerEncoder(threads=threads)

    def load(self, references: Sequence[AudioFile]) -> list[Audio]:
        """Decode and prepare the reference files (AudioError names a bad one)."""
        if isinstance(references, str | bytes) or not references:
            raise NoSpeechError("at least one reference recording is needed")
        clips = [load_audio(reference, self.policy) for reference in references]
        total = sum(clip.duration_s for clip in clips)
        if total > self.max_duration_s:
            raise NoSpeechError(f"the references last {total:.0f} s together; the maximum is {self.max_duration_s:g} s")
        return clips

    def encode(self, clips: Sequence[Audio]) -> ReferenceVoice:
        """Embed prepared clips as one speaker ("long audio" when there are several)."""
        # Speech check and pitch from up to ~40 s of the references (harvest costs ~0.2× real time).
        speech_s, voiced_f0, analysed_s = 0.0, [], 0.0
        for clip in clips:
            if analysed_s >= 40.0:
                break
            part = clip.crop(0.0, 20.0)
            analysis = analyse_voice(part)
            speech_s += analysis.speech_s
            voiced_f0.append(analysis.voiced_f0_hz)
            analysed_s += part.duration_s
        if speech_s < self.min_speech_s:
            raise NoSpeechError(
                f"no speech found in the reference audio ({speech_s:.1f} s voiced; "
                f"at least {self.min_speech_s:g} s of one person speaking is needed)"
            )
        all_f0 = np.concatenate(voiced_f0)
        embedding = self.speaker_encoder.embed(list(clips))
        digest = hashlib.sha256()
        for clip in clips:
            digest.update(np.round(clip.samples * 32767).astype(np.int16).tobytes())
        return ReferenceVoice(
            clips=tuple(clips),
            embedding=embedding,
            key=digest.hexdigest()[:24],
            stats={"median_f0_hz": float(np.median(all_f0)), "speech_s": speech_s},
        )

    def __call__(self, references: Sequence[AudioFile]) -> ReferenceVoice:
        return self.encode(self.load(references))
