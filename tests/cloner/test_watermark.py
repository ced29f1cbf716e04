"""Every clone is watermarked by default; switching it off is explicit and logged."""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import pytest

from services.cloner.config import ClonerSettings
from services.cloner.pipeline import Cloner
from shared.audio import LoadPolicy, load_audio
from shared.tts.debian import EspeakNgTTS
from shared.watermark import Watermarker, WatermarkKey

KEY = WatermarkKey(hashlib.sha256(b"vcfad cloner watermark test key").digest())
TEXT = "The quick brown fox jumps over the lazy dog, and then it runs back into the forest."


def test_clones_are_marked_unless_switched_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    # A synthetic reference (LibriSpeech is reserved for other work); the piper backend ignores its voice.
    reference = EspeakNgTTS(variant="f3").synthesize("This is my voice, recorded for the test of the cloner.")
    reference_path = reference.write(tmp_path / "reference.wav")
    monkeypatch.setenv("VCFAD_WATERMARK_KEY", KEY.secret.hex())
    settings = ClonerSettings(backend="piper", threads=1, voice_cache_dir=tmp_path / "voices")
    cloner = Cloner.from_settings(settings)
    reader = Watermarker(KEY)

    report = reader.detect(load_audio(cloner.clone([str(reference_path)], TEXT).to_wav_bytes(), LoadPolicy()))
    assert report.present and report.payload is not None and report.payload >> 16 == KEY.key_id

    with caplog.at_level(logging.WARNING, logger="services.cloner.pipeline"):
        plain = Cloner(settings.model_copy(update={"watermark": False}), cloner.encoder, cloner.backend)
    assert "NOT watermarked" in caplog.text and plain.watermarker is None
    report = reader.detect(load_audio(plain.clone([str(reference_path)], TEXT).to_wav_bytes(), LoadPolicy()))
    assert not report.present
