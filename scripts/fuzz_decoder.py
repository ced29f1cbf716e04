"""Coverage-guided fuzzing of the audio decoder (:func:`shared.audio.load_audio`) with atheris.

Any input must end as an ``Audio`` or an ``AudioError``; another exception is reported by
atheris as a crash (with the input saved as ``crash-*``), and so is a crash of libsndfile or of
its codecs underneath. Seeds: real WAV/FLAC/OGG encodings, written to the corpus folder first.

    .venv/bin/python scripts/fuzz_decoder.py var/fuzz/decoder -atheris_runs=200000 -rss_limit_mb=2048

(``make fuzz`` runs it with a bounded count; results in docs/reliability.md.)
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import atheris
import numpy as np
import soundfile as sf

with atheris.instrument_imports():
    from shared.audio import AudioError, LoadPolicy, load_audio

POLICY = LoadPolicy(min_duration_s=0.1, max_duration_s=30.0)


def seeds() -> dict[str, bytes]:
    t = np.arange(9_600) / 16_000
    speechy = (0.3 * np.sin(2 * np.pi * 140 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)
    out = {}
    for name, fmt, subtype in (
        ("pcm16.wav", "WAV", "PCM_16"),
        ("float.wav", "WAV", "FLOAT"),
        ("clip.flac", "FLAC", "PCM_16"),
        ("clip.ogg", "OGG", "VORBIS"),
    ):
        buffer = io.BytesIO()
        sf.write(buffer, speechy, 16_000, format=fmt, subtype=subtype)
        out[name] = buffer.getvalue()
    return out


def test_one_input(data: bytes) -> None:
    # An AudioError is the right answer to bad bytes; anything else propagates and is a finding.
    with contextlib.suppress(AudioError):
        load_audio(data, POLICY)


def main() -> None:
    corpus = next((Path(arg) for arg in sys.argv[1:] if not arg.startswith("-")), None)
    if corpus is not None:
        corpus.mkdir(parents=True, exist_ok=True)
        for name, data in seeds().items():
            (corpus / name).write_bytes(data)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
