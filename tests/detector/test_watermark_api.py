"""`POST /detect` reads the vcfad watermark: a marked clip is `fake`, with the reason and where."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
from service_stack import DETECTOR_MODEL_DIR

from services.detector.app import create_app
from services.detector.config import Settings
from shared.tts.debian import EspeakNgTTS
from shared.watermark import Watermarker, WatermarkKey, make_payload
from vcfad.cli import main

KEY = WatermarkKey(hashlib.sha256(b"vcfad detector watermark test key").digest())


def _needs_model_and_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip without the shipped model or espeak-ng; otherwise serve with the test key."""
    if not (DETECTOR_MODEL_DIR / "model.json").exists():
        pytest.skip(f"no shipped detector model in {DETECTOR_MODEL_DIR}")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    monkeypatch.setenv("VCFAD_WATERMARK_KEY", KEY.secret.hex())


@pytest.mark.asyncio
async def test_a_watermarked_clip_is_fake_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    _needs_model_and_espeak(monkeypatch)
    speech = EspeakNgTTS().synthesize("Please call Stella and ask her to bring these things with her from the store.")
    speech = speech.resample(24_000).trim_silence().normalize_loudness(-23.0)
    payload = make_payload(KEY, "job-1")
    marked = Watermarker(KEY).embed(speech, payload)
    app = create_app(Settings(threads=1))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://d") as client:
        answers = {}
        for name, clip in (("marked", marked), ("unmarked", speech)):
            response = await client.post("/detect", files={"file": (f"{name}.wav", clip.to_wav_bytes())})
            assert response.status_code == 200, response.text
            answers[name] = response.json()
    body = answers["marked"]
    assert body["label"] == "fake" and body["reason"].startswith("vcfad watermark found")
    mark = body["watermark"]
    assert mark["present"] and mark["confidence"] > 0.99 and mark["payload"] == f"{payload:06x}"
    assert mark["windows"] and all(0 <= w["start_s"] < w["end_s"] <= body["duration_s"] + 1e-6 for w in mark["windows"])
    plain = answers["unmarked"]
    assert plain["watermark"] == {"present": False, "confidence": plain["watermark"]["confidence"], "payload": None,
                                  "windows": []}  # fmt: skip
    assert plain["reason"] is None


@pytest.mark.asyncio
async def test_a_copied_pattern_without_its_payload_leaves_the_label_to_the_classifier(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The sync pattern alone (as a forger who averaged clones copies it onto a recording) is
    reported as found, but only a readable payload makes the label `fake` by itself."""
    _needs_model_and_espeak(monkeypatch)
    speech = EspeakNgTTS().synthesize("The museum opens at nine and closes early on the last Sunday of the month.")
    speech = speech.resample(16_000).trim_silence().normalize_loudness(-23.0)
    genuine = Watermarker(KEY)
    sync = genuine.pattern.role < 0
    copied = genuine.embed_pattern(speech, np.where(sync, genuine.pattern.chips, 0.0)[None])
    app = create_app(Settings(threads=1))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://d") as client:
        response = await client.post("/detect", files={"file": ("copied.wav", copied.to_wav_bytes())})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["watermark"]["present"] and body["watermark"]["payload"] is None, body["watermark"]
    assert body["label"] == ("fake" if body["score"] >= body["threshold"] else "real")
    assert "payload could not be read" in body["reason"] and "classifier" in body["reason"]


def test_vcfad_detect_json_prints_the_watermark(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _needs_model_and_espeak(monkeypatch)
    speech = EspeakNgTTS().synthesize("We walked along the shore until the sun went down over the bay.")
    payload = make_payload(KEY, "job-2")
    path = Watermarker(KEY).embed(speech.trim_silence().normalize_loudness(-23.0), payload).write(tmp_path / "m.wav")
    assert main(["detect", "--json", "--model", str(DETECTOR_MODEL_DIR), str(path)]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert record["label"] == "fake" and "vcfad watermark" in record["reason"]
    assert record["watermark"]["present"] and record["watermark"]["payload"] == f"{payload:06x}"
