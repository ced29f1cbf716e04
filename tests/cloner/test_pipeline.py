"""The Cloner API: real references, progress, and clear errors for bad input."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from services.cloner.pipeline import CloneInputError, Cloner
from shared.audio import Audio, AudioError, load_audio


def test_clone_one_and_several_references(piper_cloner: Cloner, speaker_files: dict[str, list[Path]]) -> None:
    files = next(iter(speaker_files.values()))
    stages: list[tuple[float, str]] = []
    audio = piper_cloner.clone([str(files[0])], "The quick brown fox.", progress=lambda f, s: stages.append((f, s)))
    assert isinstance(audio, Audio) and audio.sample_rate_hz >= 16_000
    assert 0.8 < audio.duration_s < 5.0
    fractions = [f for f, _ in stages]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert {"encoding reference", "synthesizing", "finishing", "done"} <= {s for _, s in stages}
    # The same request gives the same audio (VITS's noise is seeded by the text).
    assert np.array_equal(piper_cloner.clone([str(files[0])], "The quick brown fox.").samples, audio.samples)
    # Several files (bytes and a file object too) are one "long" reference.
    voice = piper_cloner.encode([files[1].read_bytes(), io.BytesIO(files[2].read_bytes()), str(files[3])])
    assert len(voice.clips) == 3 and voice.duration_s > 5
    assert voice.embedding.shape == (256,) and abs(np.linalg.norm(voice.embedding) - 1) < 1e-3
    assert voice.stats["median_f0_hz"] > 50


def test_bad_text_is_refused(piper_cloner: Cloner, librispeech_clip: Path) -> None:
    for text, message in (("", "empty"), ("   \n", "empty"), ("x" * 3000, "maximum"), ("!!! ...", "no words")):
        with pytest.raises(CloneInputError, match=message):
            piper_cloner.clone([librispeech_clip], text)


def test_bad_references_are_refused(piper_cloner: Cloner, tmp_path: Path) -> None:
    with pytest.raises(CloneInputError, match="at least one reference"):
        piper_cloner.clone([], "Hello there.")
    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")
    with pytest.raises(AudioError, match="not a readable audio file"):
        piper_cloner.clone([not_audio], "Hello there.")
    noise = Audio(np.random.default_rng(0).normal(0, 0.05, 16_000 * 3).astype(np.float32), 16_000)
    with pytest.raises(CloneInputError, match="no speech"):
        piper_cloner.clone([noise.to_wav_bytes()], "Hello there.")
    hum = Audio((0.3 * np.sin(2 * np.pi * 50 * np.arange(48_000) / 16_000)).astype(np.float32), 16_000)
    with pytest.raises(CloneInputError, match="no speech"):
        piper_cloner.clone([hum.to_wav_bytes()], "Hello there.")
    silent = Audio(np.zeros(32_000, np.float32), 16_000)
    with pytest.raises(AudioError, match="silent"):
        piper_cloner.clone([silent.to_wav_bytes()], "Hello there.")


def test_enrollment_is_cached(piper_cloner: Cloner, librispeech_clip: Path) -> None:
    voice = piper_cloner.encode([librispeech_clip])
    again = piper_cloner.encode([load_audio(librispeech_clip).to_wav_bytes()])
    assert voice.key == piper_cloner.encode([str(librispeech_clip)]).key
    assert again.key != "" and len(voice.key) == 24
