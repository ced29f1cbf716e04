"""The default backend: style fitting moves Kokoro's voice toward the reference speaker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.cloner.backends.kokoro_ge2e import StyleParams, sample_params
from services.cloner.config import ClonerSettings
from services.cloner.pipeline import Cloner
from shared.audio import load_audio


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
