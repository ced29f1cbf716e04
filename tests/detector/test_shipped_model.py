"""The shipped `default` model: ONNX equals its torch source, `vcfad detect` keeps its contract."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from services.detector.inference import Detector
from services.detector.model_files import ModelSpec, ProbeHead, default_model_dir
from services.detector.training.export import build_probe_network
from shared.audio import load_audio
from shared.log_mel import whisper_log_mel

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.from_model_dir()


def test_onnx_graph_equals_torch_on_real_speech(detector: Detector, librispeech_clip: Path):
    import torch

    spec = ModelSpec.read(default_model_dir())
    network = build_probe_network(ProbeHead.load(default_model_dir() / "head.npz"), spec.whisper_model)
    audio = load_audio(librispeech_clip, detector.load_policy)
    for start_s, duration_s in ((0.0, 1.0), (1.0, 3.0), (0.0, 5.0)):
        clip = audio.crop(start_s, duration_s)
        with torch.inference_mode():
            expected = network(torch.from_numpy(whisper_log_mel(clip.samples))[None]).numpy()
        assert np.max(np.abs(detector.score_clips([clip]) - expected)) <= 1e-4


def _gaps_to_emulation_and_float(model_dir: Path, detector: Detector, audio) -> tuple[list[float], list[float]]:
    """Max |difference| of an int8 model's served scores to its torch emulation and to its float
    network, on six crops of ``audio`` from 1 to 5 s (three were too few: on one CPU the
    per-channel copy's sums over them were 4.7× apart, on another over 5×)."""
    import torch

    spec = ModelSpec.read(model_dir)
    head = ProbeHead.load(Path(model_dir) / "head.npz")
    emulated = build_probe_network(head, spec.whisper_model, spec.precision)
    float_network = build_probe_network(head, spec.whisper_model)
    to_emulation, to_float = [], []
    for start_s, duration_s in ((0.0, 1.0), (1.0, 3.0), (0.0, 5.0), (2.0, 2.0), (3.0, 4.0), (5.0, 1.5)):
        clip = audio.crop(start_s, duration_s)
        log_mel = torch.from_numpy(whisper_log_mel(clip.samples))[None]
        with torch.inference_mode():
            expected, float_score = emulated(log_mel).numpy(), float_network(log_mel).numpy()
        got = detector.score_clips([clip])
        to_emulation.append(float(np.max(np.abs(got - expected))))
        to_float.append(float(np.max(np.abs(got - float_score))))
    return to_emulation, to_float


def _median_ratio(to_float: list[float], to_emulation: list[float]) -> float:
    """The median over crops of how many times closer the graph is to its emulation than to the
    float network: no single crop (whose quantization happened to move its score much or little)
    decides, as it did in a sum over three crops."""
    return float(np.median(np.asarray(to_float) / np.maximum(np.asarray(to_emulation), 1e-9)))


def test_int8_graph_equals_its_torch_emulation_on_real_speech(librispeech_clip: Path) -> None:

    from services.detector.training.int8 import INT8_TOLERANCE

    model_dir = default_model_dir("default-int8")
    assert ModelSpec.read(model_dir).precision == "int8-matmul"
    detector = Detector.from_model_dir(model_dir)
    audio = load_audio(librispeech_clip, detector.load_policy)
    to_emulation, to_float = _gaps_to_emulation_and_float(model_dir, detector, audio)
    assert max(to_emulation) <= INT8_TOLERANCE, to_emulation
    # The emulation is what the int8 graph computes: far closer to it than the float model is.
    assert _median_ratio(to_float, to_emulation) > 5, (to_emulation, to_float)
    # Windows of equal length score one by one, not as a batch whose range would set their scale.
    windows = [audio.crop(0.0, 2.0), audio.crop(1.0, 2.0)]
    assert np.array_equal(detector.score_clips(windows), np.concatenate([detector.score_clips([w]) for w in windows]))


@pytest.mark.parametrize("name", ["default", "default-int8", "seed-baseline"])
def test_threshold_comes_from_dev_not_test(name: str):
    # Training sets the threshold at dev's EER point; `vcfad set-threshold` may move it later, and
    # records each move: the shipped value is the last one, and it came from a dev split.
    spec = ModelSpec.read(default_model_dir(name))
    moves = spec.training.get("threshold_history", [])
    trained = spec.training.get("selected", {}).get("threshold", spec.threshold)  # seed-baseline: no search
    assert (moves[-1]["threshold"] if moves else trained) == pytest.approx(spec.threshold)
    assert all(move["split"] == "dev" for move in moves)
    assert "test" not in json.dumps(spec.training["dev_fake_systems"])


def _run_detect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vcfad.cli", "detect", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=300
    )


def test_detect_json_contract(tmp_path: Path, librispeech_clip: Path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    missing = tmp_path / "missing.wav"
    result = _run_detect("--json", str(librispeech_clip), str(notes), str(missing), str(librispeech_clip))
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(librispeech_clip), str(notes), str(missing), str(librispeech_clip)]
    for good in (lines[0], lines[3]):
        assert set(good) == {"path", "score", "label", "watermark"}
        assert 0.0 <= good["score"] <= 1.0 and good["label"] in ("fake", "real")
        assert good["watermark"]["present"] is False
    assert lines[0]["score"] == lines[3]["score"]
    assert "not a readable audio file" in lines[1]["error"] and "no such file" in lines[2]["error"]


def test_detect_all_good_exits_zero_and_timeline(librispeech_clip: Path):
    result = _run_detect("--json", "--timeline", str(librispeech_clip))
    assert result.returncode == 0, result.stderr
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    windows = record["timeline"]
    assert len(windows) >= 5
    starts = [window["start_s"] for window in windows]
    assert starts[0] == 0.0 and np.allclose(np.diff(starts), 0.5)
    assert all(0.0 <= window["score"] <= 1.0 for window in windows)


def test_spliced_recording_timeline_turns_synthetic(detector: Detector, librispeech_clip: Path, tmp_path: Path):
    # Real speech followed by espeak-ng speech: the timeline's late windows must score higher.
    fake_path = tmp_path / "espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(fake_path), "This part of the recording was made by a machine."], check=True)
    real = load_audio(librispeech_clip, detector.load_policy).crop(0.0, 5.0)
    spliced = real.concat(load_audio(fake_path, detector.load_policy))
    timeline = detector.detect(spliced, timeline=True).timeline
    assert timeline is not None
    early = [w.score for w in timeline if w.end_s <= 5.0]
    late = [w.score for w in timeline if w.start_s >= 5.0]
    assert np.mean(late) > np.mean(early) + 0.2


def test_quantized_copy_serves_int8_matmuls(detector: Detector, librispeech_clip: Path, tmp_path: Path) -> None:
    import onnx

    from services.detector.training.graphs import probe_onnx_path
    from vcfad.cli import main

    out = tmp_path / "int8"
    assert main(["quantize-detector", "--model", "default", "--out", str(out)]) == 0
    spec = ModelSpec.read(out)
    assert spec.precision == "int8-matmul" and spec.name == "default-int8"
    assert spec.threshold == ModelSpec.read(default_model_dir()).threshold  # until set again on dev
    graph = onnx.load(str(probe_onnx_path(out))).graph
    weights = {initializer.name for initializer in graph.initializer}
    assert any(node.op_type == "MatMulInteger" for node in graph.node)
    # Only activation × activation products (attention) stay float; every weight product is int8.
    assert not [n.name for n in graph.node if n.op_type == "MatMul" and weights.intersection(n.input)]
    audio = load_audio(librispeech_clip, detector.load_policy)
    clips = [audio.crop(start_s, duration_s) for start_s, duration_s in ((0.0, 1.0), (1.0, 3.0), (0.0, 5.0))]
    moved = np.abs(Detector.from_model_dir(out).score_clips(clips) - detector.score_clips(clips))
    assert 0 < moved.max() < 0.15, moved  # another graph, yet the same model within a few hundredths
    assert main(["quantize-detector", "--model", str(out), "--out", str(tmp_path / "twice")]) == 2  # already int8
    assert main(["quantize-detector", "--model", "seed-baseline", "--out", str(tmp_path / "seed")]) == 2
    assert main(["quantize-detector", "--model", "default", "--out", str(out)]) == 2  # exists
    (out / "model.json").write_text((out / "model.json").read_text().replace('"int8-matmul"', '"int8"'))
    with pytest.raises(ValueError, match="precision 'int8'"):
        ModelSpec.read(out)
    missing = ["--manifest", str(tmp_path / "none.tsv")]
    assert main(["quantize-detector", "--model", "default", "--out", str(tmp_path / "m"), *missing]) == 2
    assert not (tmp_path / "m").exists()  # a wrong manifest is found before anything is written
    assert main(["quantize-detector", "--model", "default", "--out", str(tmp_path / "m"), "--split", "dev"]) == 2


def test_per_channel_copy_equals_its_torch_emulation(librispeech_clip: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    from services.detector.training.graphs import probe_onnx_path
    from services.detector.training.int8 import INT8_TOLERANCE
    from vcfad.cli import main

    out = tmp_path / "int8-channel"
    assert main(["quantize-detector", "--model", "default", "--out", str(out), "--per-channel"]) == 0
    spec = ModelSpec.read(out)
    assert spec.precision == "int8-matmul-channel"
    assert "per output channel" in (out / "MODEL_CARD.md").read_text()
    graph = onnx.load(str(probe_onnx_path(out))).graph
    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    # One scale per output column of each quantized weight, and only the head's vector product float.
    weights = [initializers[n.input[1]] for n in graph.node if n.op_type == "MatMulInteger"]
    assert weights and all(value.ndim == 2 and value.dtype == np.int8 for value in weights)
    weight_scales = [v for k, v in initializers.items() if k.endswith("_scale") and v.ndim == 1 and v.size > 1]
    assert weight_scales, "no per-channel weight scale in the graph"
    float_products = [n for n in graph.node if n.op_type == "MatMul" and set(n.input) & set(initializers)]
    assert [initializers[next(i for i in n.input if i in initializers)].ndim for n in float_products] == [1]
    copy = Detector.from_model_dir(out)
    audio = load_audio(librispeech_clip, copy.load_policy)
    to_emulation, to_float = _gaps_to_emulation_and_float(out, copy, audio)
    assert max(to_emulation) <= INT8_TOLERANCE, to_emulation
    assert _median_ratio(to_float, to_emulation) > 5, (to_emulation, to_float)


def test_input_floor_is_applied_before_scoring_and_repeatable(
    detector: Detector, librispeech_clip: Path, tmp_path: Path
) -> None:
    import shutil

    from shared.audio import Audio
    from vcfad.cli import main

    model = tmp_path / "floored"
    shutil.copytree(default_model_dir(), model)
    assert main(["set-input-floor", "--model", str(model), "--dbfs", "-49"]) == 0
    assert ModelSpec.read(model).input_floor_dbfs == -49.0
    floored = Detector.from_model_dir(model)
    speech = load_audio(librispeech_clip, detector.load_policy).crop(0.0, 3.0)
    # Digital silence around the speech (as synthetic speech often has): the floor fills it.
    silence = np.zeros(8000, dtype=np.float32)
    padded = Audio(np.concatenate([silence, speech.samples, silence]), speech.sample_rate_hz)
    first, again = floored.score_clips([padded]), floored.score_clips([padded])
    assert first[0] == again[0]  # a fixed seed: the same clip gets the same score
    assert abs(first[0] - detector.score_clips([padded])[0]) > 1e-4
    assert main(["set-input-floor", "--model", str(model), "--dbfs", "-10"]) == 2  # would bury speech
    assert main(["set-input-floor", "--model", str(model), "--off"]) == 0
    assert ModelSpec.read(model).input_floor_dbfs is None
    history = ModelSpec.read(model).training["input_floor_history"]
    assert [entry["input_floor_dbfs"] for entry in history] == [-49.0, None]
    spec_path = model / "model.json"
    spec_path.write_text(spec_path.read_text().replace('"input_floor_dbfs": null', '"input_floor_dbfs": 5'))
    with pytest.raises(ValueError, match="input_floor_dbfs 5 is outside"):
        ModelSpec.read(model)
    # Commands that load such a model say so in one line (exit code 2), as for an unknown field.
    assert main(["detect", str(librispeech_clip), "--model", str(model)]) == 2
    spec_path.write_text(spec_path.read_text().replace('"input_floor_dbfs": 5', '"input_floor": -49'))
    with pytest.raises(ValueError, match="not a model description"):
        ModelSpec.read(model)
    assert main(["detect", str(librispeech_clip), "--model", str(model)]) == 2
