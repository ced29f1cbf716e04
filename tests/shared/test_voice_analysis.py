"""shared.voice_analysis: speech, pitch and pace of real and synthetic speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.audio import Audio, load_audio
from shared.tts.kokoro import syllable_count, text_syllables
from shared.voice_analysis import _bridged, analyse_voice


@pytest.fixture(scope="module")
def kokoro():
    from shared.tts.kokoro import KokoroTTS

    return KokoroTTS(threads=1)


#: The speech seconds of the first 8 s of the first test-other speaker's first file,
#: as the reference encoder's speech check has measured them since before the phonation measure.
SPEECH_S_OF_FIRST_CLIP = 4.11
TEXT = "The old lighthouse keeper counted every ship that passed the rocky harbour last winter."


def test_rate_follows_the_speakers_pace(kokoro) -> None:
    # Kokoro's speed scales its phone durations: the measured rate must follow, pauses aside.
    syllables = text_syllables(TEXT)
    rates = {
        speed: analyse_voice(kokoro.synthesize(TEXT, speed=speed)).articulation_rate_hz(syllables)
        for speed in (0.8, 1.0, 1.25)
    }
    assert rates[0.8] < rates[1.0] < rates[1.25], rates
    assert 3.0 < rates[1.0] < 8.0, rates  # syllables per second of read English
    assert rates[1.25] / rates[0.8] == pytest.approx(1.25 / 0.8, rel=0.2), rates
    assert text_syllables(TEXT) == 21 == kokoro.syllables(TEXT)  # "lighthouse", "every", "harbour": two each
    assert analyse_voice(kokoro.synthesize(TEXT)).articulation_rate_hz(0) == 0.0  # no words, no rate


def test_pauses_do_not_count_as_slow_speech(speaker_files: dict[str, list[Path]]) -> None:
    clip = load_audio(speaker_files[sorted(speaker_files)[0]][0]).crop(0.0, 8.0)
    half = len(clip.samples) // 2
    silence = np.zeros(clip.sample_rate_hz, np.float32)  # one second
    paused = Audio(np.concatenate([clip.samples[:half], silence, clip.samples[half:]]), clip.sample_rate_hz)
    plain, with_pause = analyse_voice(clip), analyse_voice(paused)
    assert 1.0 < plain.phonation_s <= clip.duration_s
    assert with_pause.phonation_s == pytest.approx(plain.phonation_s, abs=0.1)  # not + 1 s
    assert with_pause.articulation_rate_hz(30) == pytest.approx(plain.articulation_rate_hz(30), rel=0.03)
    # The speech check's figure for this clip, as before the phonation measure was added (its
    # detector still hears only the voiced frames).
    assert plain.speech_s == pytest.approx(SPEECH_S_OF_FIRST_CLIP) and plain.median_f0_hz > 60


def test_no_voice_means_no_rate() -> None:
    rng = np.random.default_rng(0)
    noise = analyse_voice(Audio((0.1 * rng.normal(size=32_000)).astype(np.float32), 16_000))
    tone = analyse_voice(Audio(0.3 * np.sin(2 * np.pi * 150 * np.arange(32_000) / 16_000).astype(np.float32), 16_000))
    for analysis in (noise, tone):
        assert analysis.speech_s == 0 and analysis.articulation_rate_hz(10) == 0.0 and analysis.median_f0_hz == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.booleans(), max_size=200), st.integers(min_value=1, max_value=20))
def test_phonation_fills_short_gaps_only(frames: list[bool], max_gap: int) -> None:
    active = np.array(frames, bool)
    phonation = _bridged(active, max_gap)
    assert phonation >= int(active.sum())
    if active.any():
        first, last = np.flatnonzero(active)[[0, -1]]
        assert phonation <= last - first + 1  # never the silence before the first or after the last sound
    # A pause as long as max_gap or longer adds nothing; silence around the clip adds nothing.
    padded = np.concatenate([np.zeros(max_gap, bool), active, np.zeros(max_gap, bool), active])
    assert _bridged(padded, max_gap) == 2 * phonation


def test_syllables_are_runs_of_vowels() -> None:
    assert syllable_count("ðə ɹˈɑki hˈɑɹbəɹ") == 5 and syllable_count("") == 0
    assert syllable_count("ˈOld") == 1  # a one-letter diphthong is one nucleus
    assert syllable_count("ɡˈOɪŋ") == 2 and syllable_count("Idˈiə") == 3  # "going", "idea"
