"""The default backend: style fitting moves Kokoro's voice toward the reference speaker."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from services.cloner.backends.kokoro_ge2e import StyleParams, sample_params
from services.cloner.config import ClonerSettings
from services.cloner.pipeline import Cloner
from shared.audio import load_audio
from shared.tts.kokoro import text_syllables
from shared.voice_analysis import analyse_voice


def test_style_params_round_trip_and_sampling() -> None:
    rng = np.random.default_rng(0)
    spread = np.full(256, 0.1)
    packs = rng.normal(size=(5, 510, 256)).astype(np.float32)
    params = sample_params(rng, spread, index=1)
    again = StyleParams.from_vector(params.vector())
    np.testing.assert_allclose(again.table(packs), params.table(packs), atol=1e-5)
    assert params.mix.argmax() == 4 or params.mix[4] > 0.2  # odd entries lean on the male pack
    pure = StyleParams(mix=np.eye(5)[2], delta=np.zeros(256))
    np.testing.assert_allclose(pure.table(packs), packs[2], atol=1e-6)


@pytest.mark.slow
def test_fitted_voice_is_closer_than_the_packs(tmp_path: Path, speaker_files: dict[str, list[Path]]) -> None:
    # The channel stage is off: this test is about the style alone, compared with clean packs.
    settings = ClonerSettings(threads=1, fit_iterations=1, voice_cache_dir=tmp_path, match_channel=False)
    cloner = Cloner.from_settings(settings)
    files = speaker_files[sorted(speaker_files)[0]]
    voice = cloner.encode([str(f) for f in files[1:4]])
    enrolled = cloner.enroll(voice)
    assert list(tmp_path.glob("*.npz")), "the fitted voice is cached on disk"
    text = "Please bring the blue folder to the meeting tomorrow morning."
    clone = cloner.speak(enrolled, text)
    encoder = cloner.encoder.speaker_encoder
    reference = voice.embedding
    fitted = float(encoder.embed(clone) @ reference)
    packs = [
        float(encoder.embed(cloner.backend.tts.synthesize(text, voice=name)) @ reference)
        for name in ("jf_alpha", "jm_kumo")
    ]
    assert fitted > max(packs), (fitted, packs)
    assert enrolled.voice.similarity > 0.5
    # Enrolling the same references again comes from the cache (same table).
    again = cloner.backend.enroll(voice)
    np.testing.assert_array_equal(again.table, enrolled.voice.table)
    assert load_audio(clone.to_wav_bytes()).duration_s > 2


@pytest.mark.slow
def test_prosody_fit_moves_pitch_and_pace_to_the_reference(
    tmp_path: Path, speaker_files: dict[str, list[Path]]
) -> None:
    settings = ClonerSettings(threads=1, voice_cache_dir=tmp_path, match_channel=False, watermark=False, pitch_fit=True)
    cloner = Cloner.from_settings(settings)
    backend = cloner.backend
    voice = cloner.encode([str(speaker_files[sorted(speaker_files)[1]][0])])
    plain = backend.fitter.fit(voice)
    own = analyse_voice(backend.meter.speak_table(plain.table))
    # A reference three semitones above the style: the fit must follow.
    target = dataclasses.replace(
        voice, key=voice.key + "-moved", stats={**voice.stats, "median_f0_hz": own.median_f0_hz * 2 ** (3 / 12)}
    )
    enrolled = cloner.enroll(target)
    # The bank may pick another style for the higher voice: the fit is measured against that one's own speech.
    unfitted = dataclasses.replace(enrolled.voice, pitch=1.0, speed=1.0)
    chosen = analyse_voice(backend.meter.speak_table(unfitted.table))
    wanted = target.stats["median_f0_hz"] / chosen.median_f0_hz
    assert enrolled.voice.pitch == pytest.approx(wanted, rel=1e-3) and enrolled.voice.pitch > 1.02
    text = "Please bring the blue folder to the meeting tomorrow morning, and lock the door."
    fitted_f0 = analyse_voice(cloner.speak(enrolled, text)).median_f0_hz
    unfitted_f0 = analyse_voice(backend.synthesize(unfitted, text)).median_f0_hz
    error_st = {
        name: abs(12 * np.log2(f0 / target.stats["median_f0_hz"]))
        for name, f0 in (("fitted", fitted_f0), ("unfitted", unfitted_f0))
    }
    assert error_st["fitted"] < 1.0 and error_st["fitted"] < error_st["unfitted"] - 0.2, error_st
    # Far beyond the caps: the fit stops at them.
    far = dataclasses.replace(
        target, key=voice.key + "-far", stats={**voice.stats, "median_f0_hz": own.median_f0_hz * 4}
    )
    capped = cloner.enroll(far).voice
    assert capped.pitch == pytest.approx(2 ** (settings.pitch_fit_max_st / 12), rel=1e-3)
    # The fitted prosody is part of the cached voice.
    again = backend.enroll(target)
    assert (again.pitch, again.speed) == (enrolled.voice.pitch, enrolled.voice.speed)


@pytest.mark.slow
def test_rate_fit_follows_a_slow_speaker(tmp_path: Path) -> None:
    # The reference: a Kokoro voice reading slowly (speed 0.8). The rate fit hears its words
    # (Whisper) and its phonation, and slows the fitted voice to about the same pace.
    settings = ClonerSettings(threads=1, voice_cache_dir=tmp_path, watermark=False, pitch_fit=False, rate_fit=True)
    cloner = Cloner.from_settings(settings)
    tts = cloner.backend.tts
    words = (
        "The garden behind the old school was full of roses in the summer. "
        "Every morning the children watered them before their lessons began."
    )
    slow = tts.synthesize(words, voice="jm_kumo", speed=0.8)
    enrolled = cloner.enroll(cloner.encode([slow.to_wav_bytes()]))
    assert 0.7 < enrolled.voice.speed < 0.95, enrolled.voice.speed
    assert enrolled.voice.pitch == 1.0  # the pitch fit is off
    text = "Please bring the blue folder to the meeting tomorrow morning."
    reference_rate = analyse_voice(slow).articulation_rate_hz(text_syllables(words))
    fitted_rate = analyse_voice(cloner.synthesize(enrolled, text)).articulation_rate_hz(text_syllables(text))
    plain_rate = analyse_voice(tts.synthesize(text, voice=enrolled.voice.table)).articulation_rate_hz(
        text_syllables(text)
    )
    assert abs(fitted_rate / reference_rate - 1) < abs(plain_rate / reference_rate - 1), (
        fitted_rate,
        plain_rate,
        reference_rate,
    )
