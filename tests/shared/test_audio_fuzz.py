"""Decoder fuzzing with hypothesis: mutated and random bytes through :func:`shared.audio.load_audio`.

Whatever the bytes, the decoder either returns an :class:`Audio` or raises an
:class:`AudioError` with a message; any other exception (or a crash of the process) is a bug.
Seeds are real encodings (WAV of several subtypes, FLAC, OGG) whose bytes are flipped, cut,
spliced and have header fields overwritten. ``FUZZ_DECODER_EXAMPLES`` sets the count (``make fuzz``
runs more; the coverage-guided atheris target is scripts/fuzz_decoder.py).
"""

from __future__ import annotations

import os
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from malformed_audio import encode, tone

from shared.audio import Audio, AudioError, LoadPolicy, load_audio

EXAMPLES = int(os.environ.get("FUZZ_DECODER_EXAMPLES", "500"))
SEEDS = [
    encode(tone(0.6)),
    encode(tone(0.6), subtype="FLOAT"),
    encode(tone(0.6), subtype="PCM_U8"),
    encode(np.stack([tone(0.6), tone(0.6)], axis=1), sample_rate_hz=44_100, subtype="PCM_24"),
    encode(tone(0.6), fmt="FLAC"),
    encode(tone(0.6), fmt="OGG", subtype="VORBIS"),
]
POLICY = LoadPolicy(min_duration_s=0.1, max_duration_s=30.0)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 6))):
        action = draw(st.sampled_from(["flip", "field", "cut", "splice", "insert"]))
        at = draw(st.integers(0, len(data) - 1)) if data else 0
        if action == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "field" and len(data) >= 4:
            at = min(at, len(data) - 4) if draw(st.booleans()) else draw(st.integers(0, min(60, len(data) - 4)))
            struct.pack_into("<I", data, at, draw(st.sampled_from([0, 1, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF])))
        elif action == "cut":
            data = data[:at]
        elif action == "splice":
            data[at : at + draw(st.integers(1, 64))] = draw(st.binary(min_size=1, max_size=64))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=256))
    return bytes(data)


@settings(
    max_examples=EXAMPLES, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)
@given(data=st.one_of(mutated(), st.binary(max_size=2048)))
def test_decoder_returns_audio_or_a_named_audio_error(data: bytes) -> None:
    try:
        audio = load_audio(data, POLICY)
    except AudioError as error:
        assert str(error).strip(), "an AudioError must say what is wrong"
        return
    assert isinstance(audio, Audio) and audio.sample_rate_hz == POLICY.sample_rate_hz
    assert np.all(np.isfinite(audio.samples)) and audio.duration_s <= POLICY.max_duration_s + 0.1
