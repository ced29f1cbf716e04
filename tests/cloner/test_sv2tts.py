"""The sv2tts backend's networks: published shapes, checkpoint round trip, text → waveform."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from services.cloner.sv2tts.encoder import SpeakerEncoder, load_model_state, save_model_state
from services.cloner.sv2tts.synthesizer import Tacotron, griffin_lim
from services.cloner.sv2tts.text import SYMBOLS, english_cleaners, text_to_sequence
from services.cloner.sv2tts.vocoder import WaveRNN, fold_with_overlap, xfade_and_unfold
from shared.offline_models import package_dir


@pytest.fixture(scope="module")
def tacotron() -> Tacotron:
    torch.manual_seed(0)
    return Tacotron().eval()


@pytest.fixture(scope="module")
def wavernn() -> WaveRNN:
    torch.manual_seed(0)
    return WaveRNN().eval()


def test_published_shapes(tacotron: Tacotron, wavernn: WaveRNN) -> None:
    taco = {k: tuple(v.shape) for k, v in tacotron.state_dict().items()}
    assert len(SYMBOLS) == 66
    assert taco["encoder.embedding.weight"] == (66, 512)
    # The speaker embedding (256) is concatenated to the 256-d encoder outputs.
    assert taco["encoder_proj.weight"] == (128, 256 + 256)
    assert taco["decoder.attn_rnn.weight_ih"] == (3 * 128, 512 + 256)
    assert taco["decoder.res_rnn1.weight_ih"] == (4 * 1024, 1024)
    assert taco["decoder.mel_proj.weight"] == (80 * 20, 1024)
    assert taco["decoder.stop_proj.weight"] == (1, 512 + 1024)
    assert taco["postnet.pre_highway.weight"] == (512, 80)
    assert taco["post_proj.weight"] == (80, 512)
    assert int(tacotron.decoder.r) == 2
    # ~30.9 M parameters: with Adam's two moments, RTVC's synthesizer.pt is ~371 MB.
    assert 30.5e6 < sum(p.numel() for p in tacotron.parameters()) < 31.2e6
    voc = {k: tuple(v.shape) for k, v in wavernn.state_dict().items()}
    assert voc["fc3.weight"] == (512, 512)  # RAW 9-bit: 2^9 classes
    assert voc["I.weight"] == (512, 80 + 32 + 1)
    assert voc["rnn2.weight_ih_l0"] == (3 * 512, 512 + 32)
    assert [voc[f"upsample.up_layers.{i}.weight"] for i in (1, 3, 5)] == [(1, 1, 1, 11), (1, 1, 1, 11), (1, 1, 1, 17)]
    assert 4.4e6 < sum(p.numel() for p in wavernn.parameters()) < 4.6e6


def test_state_dict_round_trip(tmp_path, tacotron: Tacotron, wavernn: WaveRNN) -> None:
    for model, cls in ((tacotron, Tacotron), (wavernn, WaveRNN)):
        path = save_model_state(model, tmp_path / f"{cls.__name__}.pt")
        loaded = cls.from_checkpoint(path)
        for key, value in model.state_dict().items():
            assert torch.equal(value, loaded.state_dict()[key]), key
    embedding = np.random.default_rng(0).random(256).astype(np.float32)
    torch.manual_seed(1)
    first = tacotron.synthesize("A short test.", embedding, max_steps=12)
    reloaded = Tacotron.from_checkpoint(tmp_path / "Tacotron.pt")  # (construction draws random numbers)
    torch.manual_seed(1)
    second = reloaded.synthesize("A short test.", embedding, max_steps=12)
    np.testing.assert_allclose(first, second, atol=1e-5)


def test_mismatched_checkpoint_is_refused(tmp_path, wavernn: WaveRNN) -> None:
    path = save_model_state(wavernn, tmp_path / "vocoder.pt")
    with pytest.raises(ValueError, match="not a matching checkpoint"):
        Tacotron.from_checkpoint(path)


def test_encoder_matches_resemblyzer() -> None:
    """Our encoder on resemblyzer's weights (same layout as RTVC's encoder.pt) gives its embeddings."""
    from resemblyzer import VoiceEncoder

    weights = package_dir("resemblyzer") / "pretrained.pt"
    ours = SpeakerEncoder.from_checkpoint(weights)
    theirs = VoiceEncoder(device="cpu", verbose=False)
    wav = np.random.default_rng(0).normal(0, 0.1, 16_000 * 3).astype(np.float32)
    np.testing.assert_allclose(ours.embed_utterance(wav), theirs.embed_utterance(wav), atol=1e-4)
    state = torch.load(str(weights), map_location="cpu", weights_only=False)["model_state"]
    fresh = SpeakerEncoder()
    load_model_state(fresh, weights)
    assert set(state) == set(fresh.state_dict())


def test_text_front_end() -> None:
    cleaned = english_cleaners("Dr. Smith paid $12 in 1984!")
    assert cleaned == "doctor smith paid twelve dollars in nineteen eighty four!"
    sequence = text_to_sequence("Hi, you.")
    assert sequence[-1] == SYMBOLS.index("~")
    assert "".join(SYMBOLS[i] for i in sequence[:-1]) == "hi, you."


def test_text_to_waveform_forward_pass(tacotron: Tacotron, wavernn: WaveRNN) -> None:
    torch.manual_seed(0)
    embedding = np.random.default_rng(1).random(256).astype(np.float32)
    mel = tacotron.synthesize("Hello.", embedding, max_steps=6)
    assert mel.shape[0] == 80 and 1 <= mel.shape[1] <= 6
    assert np.all(np.isfinite(mel))
    wav = wavernn.generate(mel[:, :3])
    assert wav.dtype == np.float32 and len(wav) == (3 - 1) * 200
    assert np.all(np.isfinite(wav))
    assert len(griffin_lim(mel, iterations=2)) > 0


def test_fold_and_unfold_are_inverse() -> None:
    signal = torch.arange(30_000, dtype=torch.float32).reshape(1, -1, 1)
    folded = fold_with_overlap(signal, target=8000, overlap=400)
    assert folded.shape[1] == 8800
    unfolded = xfade_and_unfold(folded[:, :, 0].numpy().astype(np.float64), overlap=400)
    # Away from the cross-fades the samples come back unchanged.
    np.testing.assert_allclose(unfolded[400:8000], signal[0, 400:8000, 0].numpy())
