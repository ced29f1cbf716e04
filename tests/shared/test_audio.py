"""The audio value type and loader, on real speech."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.audio import (
    Audio,
    AudioTooLongError,
    AudioTooShortError,
    LoadPolicy,
    SilentAudioError,
    UnreadableAudioError,
    decode_audio,
    load_audio,
)


@pytest.fixture(scope="module")
def speech(librispeech_clip: Path) -> Audio:
    return decode_audio(librispeech_clip)


@pytest.mark.parametrize(
    ("fmt", "subtype", "suffix"),
    [
        ("WAV", "PCM_16", ".wav"),
        ("FLAC", "PCM_16", ".flac"),
        ("OGG", "VORBIS", ".ogg"),
        ("MP3", "MPEG_LAYER_III", ".mp3"),
    ],
)
def test_every_format_loads_to_16k_mono_normalised(speech: Audio, tmp_path: Path, fmt, subtype, suffix):
    stereo_44k = speech.resample(44_100).samples
    path = tmp_path / f"clip{suffix}"
    sf.write(path, np.stack([stereo_44k, 0.5 * stereo_44k], axis=1), 44_100, format=fmt, subtype=subtype)
    audio = load_audio(path)
    assert audio.sample_rate_hz == 16_000
    assert audio.samples.ndim == 1
    assert abs(audio.duration_s - speech.duration_s) < 0.6  # trimming takes at most the edges
    level = 20 * np.log10(np.sqrt(np.mean(audio._active_samples() ** 2)))
    assert level == pytest.approx(-23.0, abs=1.0)
    assert np.max(np.abs(audio.samples)) <= 0.99 + 1e-6


def test_bytes_and_file_objects_load_like_paths(speech: Audio, librispeech_clip: Path):
    from_path = load_audio(librispeech_clip)
    data = librispeech_clip.read_bytes()
    assert np.allclose(load_audio(data).samples, from_path.samples)
    assert np.allclose(load_audio(io.BytesIO(data)).samples, from_path.samples)


def test_errors_name_what_is_wrong(tmp_path: Path, speech: Audio):
    text = tmp_path / "notes.txt"
    text.write_text("not audio at all")
    with pytest.raises(UnreadableAudioError, match=r"notes\.txt: not a readable audio file"):
        load_audio(text)
    with pytest.raises(UnreadableAudioError, match="no such file"):
        load_audio(tmp_path / "missing.wav")
    truncated = tmp_path / "truncated.flac"
    truncated.write_bytes(speech.to_wav_bytes()[:30])
    with pytest.raises(UnreadableAudioError):
        load_audio(truncated)
    with pytest.raises(SilentAudioError, match="empty"):
        load_audio(b"")
    silent = Audio(np.zeros(16_000 * 2), 16_000).to_wav_bytes()
    with pytest.raises(SilentAudioError, match="silent"):
        load_audio(silent)
    with pytest.raises(AudioTooShortError, match=r"at least 0\.5 s"):
        load_audio(speech.crop(1.0, 0.2).to_wav_bytes())
    with pytest.raises(AudioTooLongError, match="maximum of 5 s"):
        load_audio(speech.to_wav_bytes(), LoadPolicy(max_duration_s=5))


def test_trim_removes_added_silence(speech: Audio):
    padded = Audio(np.zeros(16_000), 16_000).concat(speech, Audio(np.zeros(32_000), 16_000))
    trimmed = padded.trim_silence()
    assert trimmed.duration_s < padded.duration_s - 2.5
    assert trimmed.duration_s > speech.duration_s - 0.6


@settings(max_examples=40, deadline=None)
@given(
    duration_s=st.floats(min_value=0.05, max_value=12.0),
    window_s=st.floats(min_value=0.2, max_value=4.0),
    hop_fraction=st.floats(min_value=0.1, max_value=1.0),
)
def test_windows_cover_the_clip(duration_s: float, window_s: float, hop_fraction: float):
    audio = Audio(np.ones(round(duration_s * 16_000), dtype=np.float32), 16_000)
    windows = list(audio.windows(window_s, window_s * hop_fraction))
    assert windows, "at least one window"
    starts = [start for start, _ in windows]
    assert starts == sorted(starts) and starts[0] == 0.0
    last_start, last = windows[-1]
    assert last_start + last.duration_s >= audio.duration_s - window_s * hop_fraction - 1e-3
    assert all(window.duration_s <= window_s + 1e-3 for _, window in windows)


@settings(max_examples=30, deadline=None)
@given(rate=st.sampled_from([8_000, 22_050, 24_000, 44_100, 48_000]), seconds=st.floats(0.1, 3.0))
def test_resample_keeps_duration(rate: int, seconds: float):
    audio = Audio(np.random.default_rng(0).uniform(-0.5, 0.5, round(seconds * rate)), rate)
    assert audio.resample(16_000).duration_s == pytest.approx(audio.duration_s, abs=1e-3)
