"""The PyTorch Whisper encoder rebuilt from CTranslate2 weights matches CTranslate2 itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.audio import LoadPolicy, load_audio
from shared.log_mel import WHISPER_MAX_FRAMES, whisper_log_mel
from shared.offline_models import whisper_model_dir
from shared.whisper_encoder import WhisperEncoder, read_ct2_variables


def test_ct2_reader_finds_the_encoder():
    weights = read_ct2_variables(whisper_model_dir("base") / "model.bin", prefix="encoder/")
    assert weights["encoder/conv1/weight"].shape == (512, 80, 3)
    assert weights["encoder/position_encodings/encodings"].shape == (1500, 512)
    assert sum(name.endswith("self_attention/linear_0/weight") for name in weights) == 6


@pytest.mark.slow
def test_last_layer_matches_ctranslate2(librispeech_clip: Path):
    import ctranslate2
    import torch

    model_dir = whisper_model_dir("base")
    audio = load_audio(librispeech_clip, LoadPolicy(trim_silence=False, normalize_loudness=False))
    padded = np.zeros(16_000 * 30, dtype=np.float32)
    padded[: audio.num_samples] = audio.samples[: padded.size]
    log_mel = whisper_log_mel(padded)[:, :WHISPER_MAX_FRAMES]
    encoder = WhisperEncoder.from_ct2(model_dir)
    with torch.inference_mode():
        ours = encoder(torch.from_numpy(log_mel)[None])[-1][0].numpy()
    reference = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32")
    theirs = np.array(reference.encode(ctranslate2.StorageView.from_array(log_mel[None]), to_cpu=True))[0]
    # fp16 weights, different kernels: agreement to ~1e-3 on activations of magnitude ~1.
    assert np.max(np.abs(ours - theirs)) < 5e-3
    assert np.corrcoef(ours.ravel(), theirs.ravel())[0, 1] > 0.99999


def test_partial_encoder_returns_requested_layers():
    import torch

    encoder = WhisperEncoder.from_ct2(whisper_model_dir("base"), num_layers=2)
    hidden = encoder(torch.randn(1, 80, 200))
    assert len(hidden) == 3 and all(state.shape == (1, 100, 512) for state in hidden)
    # Element 0 is the front end's output; block 1 changes it; a front-end-only encoder gives it alone.
    front_end_only = WhisperEncoder.from_ct2(whisper_model_dir("base"), num_layers=0)
    log_mel = torch.randn(1, 80, 120)
    with torch.inference_mode():
        stem, first = encoder(log_mel)[:2]
        (stem_alone,) = front_end_only(log_mel)
    assert torch.equal(stem, stem_alone) and not torch.allclose(stem, first)
