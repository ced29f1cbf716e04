"""A corpus of malformed audio uploads, generated (nothing committed): what a hostile or broken
client sends under an audio file name.

Each :class:`Malformed` says what a service must answer: a 4xx whose ``detail`` contains
``expected`` (the problem, named), or — for damage a decoder may rightly read past (a truncated
data chunk, a lying size) — either that or a normal verdict (``sound_ok``). Used by the in-process
tests of both services and by the stack test that watches a real detector process's memory.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import numpy as np
import soundfile as sf

SAMPLE_RATE_HZ = 16_000


@dataclass(frozen=True)
class Malformed:
    kind: str
    filename: str
    data: bytes
    #: The 4xx statuses allowed, and a piece of the ``detail`` that names the problem.
    statuses: tuple[int, ...]
    expected: str
    #: A decoder may read it as (damaged but usable) audio: a normal answer is right too.
    sound_ok: bool = False


def tone(duration_s: float, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Speech-like harmonics with a syllable-rate envelope, loud enough for every service."""
    t = np.arange(int(duration_s * sample_rate_hz)) / sample_rate_hz
    signal = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 6))
    return (0.3 * signal * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) / 2.3).astype(np.float32)


def encode(
    samples: np.ndarray, sample_rate_hz: int = SAMPLE_RATE_HZ, fmt: str = "WAV", subtype: str = "PCM_16"
) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate_hz, format=fmt, subtype=subtype)
    return buffer.getvalue()


def patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    """``data`` with one header field overwritten (offsets of a plain 44-byte WAV header)."""
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def long_silence(hours: float, fmt: str, subtype: str, sample_rate_hz: int = 8_000) -> bytes:
    """``hours`` of digital silence, encoded a minute at a time (never held whole in memory)."""
    buffer = io.BytesIO()
    minute = np.zeros(60 * sample_rate_hz, dtype=np.float32)
    with sf.SoundFile(buffer, "w", sample_rate_hz, 1, format=fmt, subtype=subtype) as out:
        for _ in range(round(hours * 60)):
            out.write(minute)
    return buffer.getvalue()


def corpus(max_upload_bytes: int) -> list[Malformed]:
    """The malformed uploads (about 1 s to generate; the FLAC holds 3 hours of silence)."""
    good = encode(tone(2.0))  # 44-byte header: channels at 22, rate at 24, data size at 40
    t = np.arange(2 * SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    unreadable = "not a readable audio file"
    rng = np.random.default_rng(20)
    return [
        Malformed("truncated header", "cut.wav", good[:20], (415,), "cut short"),
        Malformed("header cut after the format chunk", "cut-fmt.wav", good[:30], (415,), "No 'data' chunk"),
        Malformed("truncated data chunk", "half.wav", good[: len(good) // 2], (422,), "", sound_ok=True),
        Malformed("data chunk size lies (4 GB)", "lying-data.wav", patched(good, 40, "<I", 0xFFFFFFF0), (), "", True),
        Malformed("RIFF size lies (0)", "lying-riff.wav", patched(good, 4, "<I", 0), (), "", sound_ok=True),
        Malformed("zero channels", "zero-channels.wav", patched(good, 22, "<H", 0), (415,), "0 channels"),
        Malformed("65,535 channels", "channels.wav", patched(good, 22, "<H", 65535), (415,), "channels"),
        Malformed("sample rate 0 Hz", "rate0.wav", patched(good, 24, "<I", 0), (415,), "sample rate of 0 Hz"),
        Malformed("sample rate 1 Hz", "rate1.wav", patched(good, 24, "<I", 1), (415,), "sample rate of 1 Hz"),
        Malformed("sample rate 4.29 GHz", "rate-max.wav", patched(good, 24, "<I", 0xFFFFFFFF), (415,), "4294967295 Hz"),
        Malformed(
            "NaN samples",
            "nan.wav",
            encode(np.where(t < 0.5, np.nan, tone(2.0)).astype(np.float32), subtype="FLOAT"),
            (415,),
            "NaN or infinite",
        ),
        Malformed(
            "infinite samples",
            "inf.wav",
            encode(np.where(t > 1.5, -np.inf, tone(2.0)).astype(np.float32), subtype="FLOAT"),
            (415,),
            "NaN or infinite",
        ),
        Malformed(
            "3 hours of silence (FLAC, 0.3 MB)",
            "hours.flac",
            long_silence(3.0, "FLAC", "PCM_16"),
            (422,),
            "longer than the maximum",
        ),
        Malformed(
            "20 minutes of silence (Ogg Vorbis)",
            "minutes.ogg",
            long_silence(1 / 3, "OGG", "VORBIS"),
            (422,),
            "longer than the maximum",
        ),
        Malformed("digital silence", "silence.wav", encode(np.zeros(2 * SAMPLE_RATE_HZ, np.float32)), (422,), "silent"),
        Malformed("a tenth of a second", "blip.wav", encode(tone(0.1)), (422,), "at least"),
        Malformed("header, no samples", "empty-data.wav", encode(np.zeros(0, np.float32)), (422,), "no samples"),
        Malformed("empty file", "nothing.wav", b"", (422,), "empty"),
        Malformed("text under .wav", "notes.wav", b"Dear team, the meeting moved to 3 pm.\n" * 20, (415,), unreadable),
        Malformed("random bytes under .mp3", "noise.mp3", rng.bytes(50_000), (415,), unreadable),
        Malformed("Ogg magic, then garbage", "garbage.ogg", b"OggS" + rng.bytes(5_000), (415,), unreadable),
        Malformed("FLAC magic, then garbage", "garbage.flac", b"fLaC" + rng.bytes(5_000), (415,), unreadable),
        Malformed(
            "an ID3 tag and nothing else", "tag.mp3", b"ID3\x04\x00\x00\x00\x00\x00\x10" + bytes(16), (415,), unreadable
        ),
        Malformed("oversize upload", "huge.wav", good[:44] + bytes(max_upload_bytes), (413,), "maximum"),
    ]


def check_answer(case: Malformed, status: int, detail: str) -> str | None:
    """Why an answer to ``case`` is wrong; None if it is right."""
    if case.sound_ok and status in (200, 202):
        return None
    if status not in case.statuses and not (case.sound_ok and 400 <= status < 500):
        return f"{case.kind}: HTTP {status} ({detail!r}); expected {case.statuses or '200'}"
    if case.expected and case.expected not in detail:
        return f"{case.kind}: detail {detail!r} does not name the problem ({case.expected!r})"
    return None
